//! The limit of the unary benchmarks: a bare tonic server that answers each call with its own
//! message, with tonic's defaults and the same runtime shape as linkgate (tokio multi-thread,
//! one worker per core). Anything linkgate spends beyond this is linkgate's own work.
//!
//! `echo_server 127.0.0.1:50199`

use linkgate_bench_tools::echo::Message;
use linkgate_bench_tools::echo::echo_server::{Echo, EchoServer};
use tonic::{Request, Response, Status};

struct Mirror;

#[tonic::async_trait]
impl Echo for Mirror {
    async fn unary(&self, request: Request<Message>) -> Result<Response<Message>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:50199".into()).parse()?;
    tonic::transport::Server::builder().tcp_nodelay(true).add_service(EchoServer::new(Mirror)).serve(addr).await?;
    Ok(())
}
