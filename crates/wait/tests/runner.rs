//! The waiting behaviour through the library: late dependencies, timeouts and their summary,
//! `--any`, `--invert`, shutdown and what gets logged. Real loopback sockets and files;
//! generous deadlines, or tokio's paused clock where the schedule itself is tested.

use std::net::TcpListener;
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;
use pitcrew_wait::cli::Args;
use pitcrew_wait::{Config, WaitError, run};

use clap::Parser as _;

fn config(args: &[&str]) -> Config {
    Args::try_parse_from(std::iter::once("pitcrew-wait").chain(args.iter().copied()))
        .expect("valid arguments")
        .config()
        .expect("valid config")
}

/// A port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    pitcrew_testkit::free_port()
}

fn never_stops() -> Shutdown {
    let (trigger, shutdown) = Shutdown::manual();
    // Leak the trigger: dropping it would make `recv` pend forever anyway, but keeping it
    // alive mirrors a real process that could still be signalled.
    std::mem::forget(trigger);
    shutdown
}

#[tokio::test]
async fn a_dependency_that_comes_up_late_is_detected() {
    let port = closed_port();
    let target = format!("tcp://127.0.0.1:{port}");
    let config = config(&["--timeout", "2m", &target]);
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        TcpListener::bind(("127.0.0.1", port)).expect("port still free")
    });
    let ready = run(&config, never_stops()).await.expect("ready");
    let _listener = opener.await.unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].target, target);
    assert!(ready[0].attempts > 1, "it was down at first: {ready:?}");
    assert!(ready[0].elapsed >= Duration::from_millis(700), "{ready:?}");
}

#[tokio::test]
async fn timeout_summary_names_each_target_that_is_not_ready_and_its_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present");
    std::fs::write(&present, "x").unwrap();
    let missing = dir.path().join("missing");
    let port = closed_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let config = config(&[
        "--timeout",
        "1s",
        &tcp,
        &format!("file://{}", present.display()),
        &format!("file://{}", missing.display()),
    ]);
    let err = run(&config, never_stops()).await.unwrap_err();
    let WaitError::TimedOut { summary } = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert_eq!(err.exit_code().code(), 124);
    assert!(
        summary.starts_with("timed out after 1s: 2 of 3 target(s) not ready"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{tcp} (connection refused,")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("file://{} (does not exist,", missing.display())),
        "{summary}"
    );
    assert!(
        !summary.contains("present"),
        "ready targets are not listed: {summary}"
    );
}

#[tokio::test]
async fn any_mode_returns_as_soon_as_one_target_is_ready() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let closed = format!("tcp://127.0.0.1:{}", closed_port());
    let config = config(&["--any", "--timeout", "2m", &closed, &open]);
    let ready = run(&config, never_stops()).await.expect("one is ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].target, open);
}

#[tokio::test]
async fn all_mode_waits_for_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = config(&["--timeout", "2m", &open, &format!("file://{}", late.display())]);
    let writer = {
        let late = late.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            std::fs::write(late, "done").unwrap();
        })
    };
    let ready = run(&config, never_stops()).await.expect("both ready");
    writer.await.unwrap();
    assert_eq!(ready.len(), 2);
    assert_eq!(ready[0].target, open, "the open port is ready first");
}

#[tokio::test]
async fn invert_waits_until_the_target_stops_answering() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = config(&["--invert", "--timeout", "2m", &target]);
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(listener);
    });
    let gone = run(&config, never_stops()).await.expect("gone");
    closer.await.unwrap();
    assert!(gone[0].attempts > 1, "it answered at first: {gone:?}");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = self::config(&["--invert", "--timeout", "500ms", &target]);
    let err = run(&config, never_stops()).await.unwrap_err().to_string();
    assert!(err.contains("still answering"), "{err}");
}

#[tokio::test]
async fn a_signal_stops_the_wait_with_the_signal_exit_code() {
    let target = format!("tcp://127.0.0.1:{}", closed_port());
    let config = config(&["--timeout", "0", &target]);
    let (trigger, shutdown) = Shutdown::manual();
    let waiting = tokio::spawn(async move { run(&config, shutdown).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    trigger.trigger(15);
    let err = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.exit_code().code(), 143);
    let text = err.to_string();
    assert!(text.starts_with("stopped by SIGTERM"), "{text}");
    assert!(text.contains(&target), "{text}");
}

#[tokio::test]
async fn an_attempt_that_hangs_is_cut_by_the_attempt_timeout() {
    // A server that accepts connections but never answers (the kernel completes the
    // handshake; nobody reads): the Redis probe's PING gets no reply, as with a hung server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("redis://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = config(&["--attempt-timeout", "200ms", "--timeout", "1s", &target]);
    let err = run(&config, never_stops()).await.unwrap_err().to_string();
    // The probe names the step it was in; the runner adds the flag that set the limit.
    assert!(err.contains("no reply to PING within"), "{err}");
    assert!(err.contains("(--attempt-timeout)"), "{err}");
    drop(listener);
}

/// Every log line emitted on this thread while the guard lives, as `LEVEL message field=…`.
// The runner logs from the task that calls `run`, so a current-thread runtime sees them all
// in `Logs::capture()`.
use pitcrew_testkit::logs::Logs;

/// What the log holds after a file target failed for 25 s of tokio's paused clock: "does not
/// exist" for the first second, then "exists but is empty" (`--file-non-empty`) until the
/// timeout. Returns the lines and the attempts the timeout summary counted.
async fn failing_for_25s(flags: &[&str]) -> (Vec<String>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready");
    let target = format!("file://{}", path.display());
    let mut args = vec!["--timeout", "25s", "--file-non-empty"];
    args.extend_from_slice(flags);
    args.push(&target);
    let config = config(&args);
    let (logs, _guard) = Logs::capture();
    let (result, ()) = tokio::join!(run(&config, never_stops()), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::write(&path, "").unwrap();
    });
    let summary = result.unwrap_err().to_string();
    let attempts = summary
        .strip_suffix(" attempts)")
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {summary:?}"));
    assert!(summary.contains("(exists but is empty, "), "{summary}");
    (logs.lines(), attempts)
}

fn matching<'a>(lines: &'a [String], what: &str) -> Vec<&'a String> {
    lines.iter().filter(|line| line.contains(what)).collect()
}

/// From a newcomer's report: every failed attempt had a line, 45 in the first 5 s.
#[tokio::test(start_paused = true)]
async fn by_default_a_failing_target_logs_its_changes_and_a_line_every_10s_not_every_attempt() {
    let (lines, attempts) = failing_for_25s(&[]).await;
    assert!(attempts > 100, "{attempts} attempts: {lines:#?}");
    let failures = matching(&lines, "; retrying in");
    assert_eq!(
        failures.len(),
        2,
        "the first failure and the new reason: {lines:#?}"
    );
    assert!(
        failures[0].contains("attempt 1: file://") && failures[0].contains(": does not exist;"),
        "{lines:#?}"
    );
    assert!(failures[1].contains(": exists but is empty;"), "{lines:#?}");
    let still = matching(&lines, "still not ready after");
    assert_eq!(
        still.len(),
        2,
        "one 10 s after the new reason, one 10 s later: {lines:#?}"
    );
    for line in &still {
        assert!(
            line.contains(" attempts so far; last: exists but is empty"),
            "{line}"
        );
    }
    assert_eq!(
        lines.len(),
        5,
        "the start, 2 changes, 2 still waiting: {lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn verbose_logs_every_attempt() {
    let (lines, attempts) = failing_for_25s(&["--verbose"]).await;
    let failures = matching(&lines, "; retrying in").len();
    // The last attempt may still be running when the timeout strikes.
    assert!(
        failures == attempts || failures + 1 == attempts,
        "{failures} lines for {attempts} attempts: {lines:#?}"
    );
    assert!(failures > 100, "{lines:#?}");
    assert!(matching(&lines, "still not ready").is_empty(), "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn quiet_logs_only_the_changes() {
    let (lines, attempts) = failing_for_25s(&["--quiet"]).await;
    assert!(attempts > 100, "{attempts} attempts: {lines:#?}");
    assert_eq!(matching(&lines, "; retrying in").len(), 2, "{lines:#?}");
    assert!(matching(&lines, "still not ready").is_empty(), "{lines:#?}");
}

#[test]
fn verbose_and_quiet_cannot_go_together() {
    let err = Args::try_parse_from(["pitcrew-wait", "--quiet", "--verbose", "tcp://a:1"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{err}");
}
