//! A 100 MB line: cut to `max_line_bytes` plus the marker, the rest skipped, and memory stays
//! bounded (the line is never buffered whole). In a test binary of its own so the process's
//! peak memory is this test's alone.

mod common;

use common::{Run, append, config, cuts, text};
use pitcrew_follow::{Cut, TRUNCATION_MARKER};

/// Peak resident memory of this process, from /proc (kB).
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn a_100_mb_line_is_cut_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("huge.log");
    append(&log, b"before\n");
    let before = peak_rss_kb();
    let run = Run::start(config(&[&log]));
    run.wait_for_text("before\n");
    let piece = vec![b'z'; 1024 * 1024];
    for _ in 0..100 {
        append(&log, &piece);
    }
    append(&log, b"\nafter\n");
    run.wait_for("the line after the long one", |events| {
        text(events).ends_with("after\n")
    });
    let events = run.snapshot();
    let max = 1024 * 1024;
    assert_eq!(
        cuts(&events),
        vec![Cut::Truncated {
            dropped: 100 * 1024 * 1024 - max as u64
        }]
    );
    let all = text(&events);
    assert_eq!(
        all.len(),
        "before\n".len() + max + TRUNCATION_MARKER.len() + 1 + "after\n".len()
    );
    let growth_mb = (peak_rss_kb() - before) / 1024;
    assert!(
        growth_mb < 40,
        "peak memory grew by {growth_mb} MB following a 100 MB line"
    );
}
