//! Starting linkgate in-process for the end-to-end tests.

use clap::Parser;
use linkgate::config::Settings;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// `linkgate serve`'s settings, parsed from flags so every setting a test does not name keeps
/// its default.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    settings: Settings,
}

/// The settings `linkgate serve` would run with given `flags`.
pub fn serve_settings(flags: &[(&str, &str)]) -> Settings {
    let args = std::iter::once("serve").chain(flags.iter().flat_map(|(flag, value)| [*flag, *value]));
    Serve::try_parse_from(args).expect("test flags parse").settings
}

/// Waits until the server behind `channel` reports SERVING.
pub async fn wait_until_serving(channel: &Channel) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
        if status.is_ok_and(|s| {
            s.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "linkgate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
