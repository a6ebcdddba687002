//! Throughput of the engine alone: reads FILE once (`once` mode) and counts bytes and lines
//! the way a raw stdout sink would see them. `cargo run --release -p pitcrew-follow --example
//! follow_throughput -- FILE`. For comparing with `tail -n +1 FILE > /dev/null`.

use std::time::Instant;

use pitcrew_follow::{Event, FollowConfig, Follower};

fn main() {
    let path = std::env::args().nth(1).expect("usage: follow_throughput FILE");
    let mut config = FollowConfig::new(vec![path.into()]);
    config.once = true;
    let started = Instant::now();
    let (mut follower, _control) = Follower::start(config).expect("start");
    let (mut bytes, mut lines) = (0_u64, 0_u64);
    while let Some(event) = follower.blocking_next() {
        if let Event::Lines(chunk) = event {
            bytes += chunk.data.len() as u64;
            lines += memchr::memchr_iter(b'\n', &chunk.data).count() as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let (megabytes, lines_f) = (bytes as f64 / 1_048_576.0, lines as f64);
    println!(
        "{bytes} bytes, {lines} lines in {seconds:.3}s: {:.0} MiB/s, {:.1} M lines/s",
        megabytes / seconds,
        lines_f / seconds / 1e6
    );
}
