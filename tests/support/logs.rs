//! Capturing what linkgate logs, to prove secrets never reach it.

use std::sync::{Arc, Mutex};

/// A writer appending to a buffer the test reads.
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures everything logged in this process from now on, at TRACE level. nextest runs each
/// test in its own process, so a test that calls this owns its process's logging.
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    let sink = Sink::default();
    let buffer = sink.0.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .try_init()
        .expect("this test owns its process's logging (nextest runs each test in its own process)");
    buffer
}
