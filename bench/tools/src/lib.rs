//! Generated code shared by the benchmark tools: the echo service (linkgate's own messages and
//! stubs come from `linkgate-client`).

pub mod echo {
    tonic::include_proto!("bench.echo");
}
