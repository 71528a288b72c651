//! Generated code shared by the benchmark tools.

pub mod echo {
    tonic::include_proto!("bench.echo");
}

pub mod linkgate {
    tonic::include_proto!("linkgate.v1");
}
