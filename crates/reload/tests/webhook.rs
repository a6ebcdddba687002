//! The `pitcrew-reload` binary reloading through a webhook, as configmap-reload users run it:
//! a ConfigMap volume updated the kubelet's way, pitcrew-testkit's HTTP receiver as the app's
//! reload endpoint, counting exactly how many POSTs each scenario gives. Outages and error
//! answers check the retries of the whole reload (`--webhook-retries 0` leaves them all to the
//! loop's backoff, 1s doubling); credentials check that no secret reaches the log.

mod support;

use std::time::Duration;

use pitcrew_testkit::configmap::ConfigMapVolume;
use pitcrew_testkit::http_receiver::{Action, HttpReceiver, ReceivedRequest};
use support::{Running, eventually, s};

/// A watched ConfigMap and a receiver standing in for the app's `/-/reload`.
struct Setup {
    _dir: tempfile::TempDir,
    volume: ConfigMapVolume,
    root: std::path::PathBuf,
    receiver: HttpReceiver,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let volume = ConfigMapVolume::with_texts(&root, &[("prometheus.yml", "global: {}\n")]);
        Setup {
            volume,
            root,
            receiver: HttpReceiver::start(),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.receiver.url("/-/reload")
    }

    fn posts(&self) -> Vec<ReceivedRequest> {
        self.receiver
            .requests()
            .into_iter()
            .filter(|request| request.method == "POST" && request.path == "/-/reload")
            .collect()
    }

    fn update(&mut self, text: &str) {
        self.volume.update_texts(&[("prometheus.yml", text)]);
    }
}

#[test]
fn a_burst_of_fifty_swaps_posts_once_or_twice() {
    let mut setup = Setup::new();
    let url = setup.url();
    let run = Running::start(&["--watch", s(&setup.root), "--webhook", &url], &[]);
    run.wait_ready();
    for version in 1..=50 {
        setup.update(&format!("global: {{scrape_interval: {version}s}}\n"));
    }
    eventually("a POST", || !setup.posts().is_empty());
    run.wait_for("the reload to be counted", |run| run.reloads_ok() >= 1);
    // Ten debounce periods: a late second reload would have happened by now.
    std::thread::sleep(Duration::from_secs(3));
    let posts = setup.posts();
    assert!((1..=2).contains(&posts.len()), "{} POSTs", posts.len());
    assert!(posts.iter().all(ReceivedRequest::succeeded));
    assert_eq!(run.reloads_ok(), posts.len() as u64);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(": webhook POST {url} → 200")) && stderr.contains("reload ok in "),
        "{stderr}"
    );
}

#[test]
fn a_swap_to_identical_content_posts_nothing() {
    let mut setup = Setup::new();
    let url = setup.url();
    let run = Running::start(&["--watch", s(&setup.root), "--webhook", &url], &[]);
    run.wait_ready();
    for _ in 0..3 {
        setup.update("global: {}\n");
    }
    run.wait_for("the events", |run| {
        run.metric("pitcrew_reload_watch_events_total") >= 3
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(setup.posts().is_empty(), "{:?}", setup.posts());
    // And a real change afterwards still posts.
    setup.update("global: {scrape_interval: 5s}\n");
    eventually("the POST for the real change", || setup.posts().len() == 1);
}

#[test]
fn initial_posts_once_and_a_restart_with_the_state_file_posts_nothing() {
    let setup = Setup::new();
    let url = setup.url();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state");
    let args = [
        "--watch",
        s(&setup.root),
        "--webhook",
        &url,
        "--initial",
        "--state-file",
        s(&state),
    ];
    let mut first = Running::start(&args, &[]);
    first.wait_ready();
    assert_eq!(setup.posts().len(), 1, "--initial: one POST before ready");
    first.stop();

    let mut second = Running::start(&args, &[]);
    second.wait_ready();
    second.wait_for_log("already applied");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(setup.posts().len(), 1, "no POST after a restart for nothing");
    second.stop();
}

#[test]
fn a_webhook_down_then_up_is_retried_to_success() {
    let mut setup = Setup::new();
    let url = setup.url();
    let run = Running::start(
        &[
            "--watch",
            s(&setup.root),
            "--webhook",
            &url,
            "--webhook-retries",
            "0",
        ],
        &[],
    );
    run.wait_ready();
    setup.receiver.stop();
    setup.update("global: {scrape_interval: 7s}\n");
    let failed = format!("failed: webhook POST {url}: cannot connect: connection refused");
    for (attempt, pause) in [(1, "1"), (2, "2")] {
        let wanted = format!("WARN reload attempt {attempt} failed: ");
        let wanted_pause = format!("; retrying in {pause}");
        run.wait_for(&format!("failure {attempt}"), |run| {
            run.stderr()
                .lines()
                .any(|line| line.contains(&failed) && line.contains(&wanted) && line.contains(&wanted_pause))
        });
    }
    setup.receiver.resume();
    eventually("the successful POST", || {
        setup.posts().iter().any(ReceivedRequest::succeeded)
    });
    run.wait_for("the reload to be counted", |run| run.reloads_ok() == 1);
    assert!(run.metric("pitcrew_reload_reloads_total{result=\"failed\"}") >= 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(setup.posts().len(), 1, "no POST after the success");
}

#[test]
fn error_answers_are_retried_until_the_webhook_accepts() {
    let mut setup = Setup::new();
    let url = setup.url();
    setup.receiver.fail_next(503, 2);
    let run = Running::start(
        &[
            "--watch",
            s(&setup.root),
            "--webhook",
            &url,
            "--webhook-retries",
            "0",
        ],
        &[],
    );
    run.wait_ready();
    setup.update("global: {scrape_interval: 9s}\n");
    run.wait_for("the reload to succeed", |run| run.reloads_ok() == 1);
    let statuses: Vec<Option<u16>> = setup.posts().iter().map(|post| post.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    assert_eq!(run.metric("pitcrew_reload_reloads_total{result=\"failed\"}"), 2);
}

#[test]
fn url_credentials_and_header_values_reach_the_webhook_and_never_the_log() {
    let mut setup = Setup::new();
    let url = setup
        .receiver
        .url("/-/reload")
        .replace("http://", "http://admin:s3cr%40t-pw@");
    let run = Running::start(
        &[
            "--watch",
            s(&setup.root),
            "--webhook",
            &url,
            "--webhook-header",
            "X-Reload-Token: t0ken-value",
        ],
        &[],
    );
    run.wait_ready();
    setup.update("global: {scrape_interval: 11s}\n");
    eventually("the POST", || setup.posts().len() == 1);
    let post = &setup.posts()[0];
    assert_eq!(post.header("x-reload-token"), Some("t0ken-value"));
    // admin:s3cr@t-pw, base64.
    assert_eq!(post.header("authorization"), Some("Basic YWRtaW46czNjckB0LXB3"));
    run.wait_for("the reload to be counted", |run| run.reloads_ok() == 1);
    let stderr = run.stderr();
    for secret in ["s3cr", "t0ken-value", "YWRtaW46"] {
        assert!(!stderr.contains(secret), "{secret} in:\n{stderr}");
    }
}

#[test]
fn a_process_that_cannot_be_seen_fails_the_reload_naming_the_fix() {
    let setup = Setup::new();
    let run = Running::start(
        &[
            "--watch",
            s(&setup.root),
            "--initial",
            "--signal",
            "HUP",
            "--process-name",
            "no-such-app-4d2f",
        ],
        &[],
    );
    run.wait_for_log("failed: signal HUP");
    let stderr = run.stderr();
    assert!(stderr.contains("shareProcessNamespace: true"), "{stderr}");
    assert!(stderr.contains("retrying in 1"), "{stderr}");
    assert_eq!(run.get("/readyz").0, 503, "--initial has not worked yet");
    assert_eq!(run.get("/healthz").0, 200, "the sidecar itself is fine");
}

#[test]
fn bad_action_flags_exit_64_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    for (args, wanted) in [
        (&["--webhook", "not a url"][..], "invalid --webhook \"not a url\""),
        (
            &["--signal", "HUPP", "--process-name", "nginx"],
            "unknown --signal \"HUPP\"",
        ),
        (
            &[
                "--verify-url",
                "http://127.0.0.1:1/",
                "--verify-body",
                "(unclosed",
            ],
            "invalid --verify-body \"(unclosed\"",
        ),
    ] {
        let mut all = vec!["--watch", s(dir.path()), "--admin-addr", "off"];
        all.extend_from_slice(args);
        let output = support::command(&all, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}\n{stderr}");
        assert!(stderr.contains(wanted), "{wanted:?} not in\n{stderr}");
    }
}

#[test]
fn sigterm_during_a_hanging_webhook_exits_0_at_once() {
    let mut setup = Setup::new();
    let url = setup.url();
    setup.receiver.script(Action::Hang, 1);
    let mut run = Running::start(
        &[
            "--watch",
            s(&setup.root),
            "--webhook",
            &url,
            "--webhook-timeout",
            "10m",
        ],
        &[],
    );
    run.wait_ready();
    setup.update("global: {scrape_interval: 13s}\n");
    eventually("the hanging POST", || setup.receiver.requests().len() == 1);
    run.signal("TERM");
    let (code, took) = run.wait_exit();
    assert_eq!(code, 0, "{}", run.stderr());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        run.stderr().contains("the reload in progress is abandoned"),
        "{}",
        run.stderr()
    );
}
