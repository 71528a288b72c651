//! The physical floor of a round trip on this machine: a 64-byte message over loopback TCP and
//! back, one at a time, with blocking sockets and TCP_NODELAY (no runtime, no framing).
//!
//! `tcp_pingpong server 127.0.0.1:50198` and
//! `tcp_pingpong client 127.0.0.1:50198 20000` (prints JSON: p50/p99 in µs).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

const SIZE: usize = 64;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, addr) = (args.get(1).map(String::as_str), args.get(2).cloned().unwrap_or_default());
    match mode {
        Some("server") => serve(&addr),
        Some("client") => ping(&addr, args.get(3).map(|n| n.parse()).transpose()?.unwrap_or(20_000)),
        _ => anyhow::bail!("usage: tcp_pingpong server|client ADDR [COUNT]"),
    }
}

/// Answers every connection in its own thread, for as long as it sends.
fn serve(addr: &str) -> anyhow::Result<()> {
    for stream in TcpListener::bind(addr)?.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        std::thread::spawn(move || {
            let mut buffer = [0u8; SIZE];
            while stream.read_exact(&mut buffer).is_ok() {
                if stream.write_all(&buffer).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn ping(addr: &str, count: usize) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buffer = [7u8; SIZE];
    // Warm the path (caches, scheduler placement) before timing.
    for _ in 0..count / 10 {
        stream.write_all(&buffer)?;
        stream.read_exact(&mut buffer)?;
    }
    let mut micros = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        stream.write_all(&buffer)?;
        stream.read_exact(&mut buffer)?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    println!("{}", serde_json::json!({"count": count, "p50_us": at(0.5), "p99_us": at(0.99)}));
    Ok(())
}
