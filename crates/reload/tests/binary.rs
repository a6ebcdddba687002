//! The `pitcrew-reload` binary as a pod runs it, against a directory laid out and updated
//! exactly as the kubelet does a ConfigMap volume (`pitcrew_testkit::configmap`).
//!
//! A reload is observed through the render step (its output holds the new content, rendered
//! with the container's environment) and the `/metrics` counters; the webhook-based versions
//! of these tests are in `webhook.rs`.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pitcrew_testkit::configmap::ConfigMapVolume;
use support::{Running, command, eventually, read, s, shared_tempdir};

/// A ConfigMap holding a template, and where the binary renders it.
struct Rendered {
    _dir: tempfile::TempDir,
    volume: ConfigMapVolume,
    root: PathBuf,
    template: PathBuf,
    output: PathBuf,
}

impl Rendered {
    fn new(text: &str) -> Rendered {
        let dir = tempfile::tempdir().unwrap();
        // A mount path with a space and a non-ASCII letter: nothing may split or mangle it.
        let root = dir.path().join("config dir ü");
        let volume = ConfigMapVolume::with_texts(&root, &[("app.conf.tmpl", text)]);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        Rendered {
            template: root.join("app.conf.tmpl"),
            output: out.join("app.conf"),
            root,
            volume,
            _dir: dir,
        }
    }

    fn args<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--watch",
            s(&self.root),
            "--render-template",
            s(&self.template),
            "--render-output",
            s(&self.output),
        ];
        args.extend_from_slice(more);
        args
    }

    fn update(&mut self, text: &str) {
        self.volume.update_texts(&[("app.conf.tmpl", text)]);
    }
}

#[test]
fn a_burst_of_fifty_swaps_is_one_or_two_reloads_of_the_last_content() {
    let mut config = Rendered::new("version 0 ${APP_ENV}\n");
    let mut run = Running::start(&config.args(&[]), &[("APP_ENV", "prod")]);
    run.wait_ready();
    assert_eq!(read(&config.output), "version 0 prod\n", "rendered at start");
    assert_eq!(run.reloads_ok(), 0, "no reload at start without --initial");

    for version in 1..=50 {
        config.update(&format!("version {version} ${{APP_ENV}}\n"));
    }
    eventually("the last version rendered", || {
        read(&config.output) == "version 50 prod\n"
    });
    run.wait_for("the reload to be counted", |run| run.reloads_ok() >= 1);
    // Ten debounce periods: a late second reload would have happened by now.
    std::thread::sleep(Duration::from_secs(3));
    let reloads = run.reloads_ok();
    assert!((1..=2).contains(&reloads), "{reloads} reloads\n{}", run.stderr());
    assert!(run.metric("pitcrew_reload_watch_events_total") >= 50);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("change: {}", config.template.display())) && stderr.contains("; reloading"),
        "{stderr}"
    );
    assert!(stderr.contains("reload ok in "), "{stderr}");
    run.stop();
}

#[test]
fn swaps_to_identical_content_reload_nothing() {
    let mut config = Rendered::new("same ${APP_ENV}\n");
    let mut run = Running::start(&config.args(&[]), &[("APP_ENV", "x")]);
    run.wait_ready();
    for _ in 0..5 {
        config.update("same ${APP_ENV}\n");
    }
    let port = run.port();
    eventually("the events", || {
        support::metric_in(
            &support::http_get(port, "/metrics").1,
            "pitcrew_reload_watch_events_total",
        ) >= 5
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(run.reloads_ok(), 0, "{}", run.stderr());
    assert_eq!(run.metric("pitcrew_reload_changes_total"), 0);
    assert!(!run.stderr().contains("INFO change"), "{}", run.stderr());
    run.stop();
}

#[test]
fn a_deleted_and_recreated_watch_directory_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("t"), "one\n").unwrap();
    let output = dir.path().join("out.conf");
    let mut run = Running::start(
        &[
            "--watch",
            s(&root),
            "--render-template",
            s(&root.join("t")),
            "--render-output",
            s(&output),
        ],
        &[],
    );
    run.wait_ready();
    std::fs::remove_dir_all(&root).unwrap();
    run.wait_for_log("failed: render: cannot read");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("t"), "two\n").unwrap();
    eventually("the new directory's template rendered", || {
        read(&output) == "two\n"
    });
    // Watched itself again, not only through its parent.
    std::fs::write(root.join("t"), "three\n").unwrap();
    eventually("a write inside the new directory rendered", || {
        read(&output) == "three\n"
    });
    assert_eq!(run.metric("pitcrew_reload_resyncs_total{result=\"changed\"}"), 0);
    run.stop();
}

#[test]
fn a_watch_path_that_does_not_exist_yet_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("later/config");
    let output = dir.path().join("out.conf");
    let mut run = Running::start(
        &[
            "--watch",
            s(&root),
            "--render-template",
            s(&root.join("t")),
            "--render-output",
            s(&output),
        ],
        &[("NAME", "world")],
    );
    run.wait_for_log(&format!("waiting for {} to appear", root.display()));
    run.wait_ready();
    assert_eq!(run.get("/healthz").0, 200, "waiting is healthy");
    assert!(!output.exists());
    let _volume = ConfigMapVolume::with_texts(&root, &[("t", "hello ${NAME}\n")]);
    eventually("the render after it appeared", || {
        read(&output) == "hello world\n"
    });
    assert!(
        run.stderr().contains(&format!("{} appeared", root.display())),
        "{}",
        run.stderr()
    );
    run.stop();
}

#[test]
fn initial_with_a_state_file_does_not_reload_again_after_a_restart() {
    let mut config = Rendered::new("v1\n");
    let state = config.output.with_file_name(".reload-state");
    let mut args = config.args(&["--initial", "--state-file"]);
    args.push(s(&state));
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut first = Running::start(&args, &[]);
    first.wait_ready();
    assert_eq!(first.reloads_ok(), 1, "{}", first.stderr());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.starts_with("pitcrew-reload state v1 sha256:"), "{saved}");
    first.stop();

    let mut second = Running::start(&args, &[]);
    second.wait_ready();
    second.wait_for_log("is already applied (state file); not reloading");
    assert_eq!(second.reloads_ok(), 0);
    second.stop();

    // Changed while no sidecar ran: the restart reloads it, --initial or not.
    config.update("v2\n");
    let mut third = Running::start(&args, &[]);
    third.wait_ready();
    eventually("v2 rendered", || read(&config.output) == "v2\n");
    assert_eq!(third.reloads_ok(), 1);
    assert_ne!(std::fs::read_to_string(&state).unwrap(), saved);
    third.stop();
}

#[test]
fn a_corrupt_state_file_is_warned_about_and_replaced() {
    let config = Rendered::new("v1\n");
    let state = config.output.with_file_name("state");
    for garbage in [
        &b""[..],
        b"\xff\xfe\0garbage",
        b"pitcrew-reload state v1 sha256:12",
    ] {
        std::fs::write(&state, garbage).unwrap();
        let mut args = config.args(&["--initial", "--state-file"]);
        args.push(s(&state));
        let mut run = Running::start(&args, &[]);
        run.wait_ready();
        let stderr = run.stderr();
        assert!(
            stderr.contains(&format!("WARN state file {}", state.display())),
            "{stderr}"
        );
        assert!(stderr.contains("ignored"), "{stderr}");
        assert_eq!(run.reloads_ok(), 1, "{stderr}");
        assert!(read(&state).starts_with("pitcrew-reload state v1 sha256:"));
        run.stop();
    }
}

/// A reader polling the output during many renders sees only whole versions: 256 KiB files,
/// so a write in place would be caught half-way.
#[test]
fn the_render_output_is_replaced_atomically_with_the_environment_value() {
    const LINES: usize = 8192;
    let body = |version: usize| format!("v{version:03} ${{SECRET_NAME}} padding padding\n").repeat(LINES);
    let mut config = Rendered::new(&body(0));
    let mut run = Running::start(&config.args(&["--debounce", "0"]), &[("SECRET_NAME", "from-env")]);
    run.wait_ready();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, reads, output) = (Arc::clone(&stop), Arc::clone(&reads), config.output.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&output).unwrap();
                let first = text.lines().next().unwrap().to_owned();
                assert!(first.ends_with(" from-env padding padding"), "{first}");
                assert_eq!(text.lines().count(), LINES, "a partial file");
                assert!(text.lines().all(|line| line == first), "a mix of versions");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for version in 1..=20 {
        config.update(&body(version));
        let wanted = format!("v{version:03} from-env");
        eventually("the version rendered", || {
            read(&config.output).starts_with(&wanted)
        });
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw a partial or mixed file");
    assert!(
        reads.load(Ordering::Relaxed) > 20,
        "the reader read during the renders"
    );
    let leftovers: Vec<_> = std::fs::read_dir(config.output.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains("pitcrew-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!run.stderr().contains("from-env"), "values never reach the log");
    run.stop();
}

#[test]
fn metrics_show_the_documented_names() {
    let mut config = Rendered::new("a\n");
    let mut run = Running::start(&config.args(&["--resync", "1s"]), &[]);
    run.wait_ready();
    let first = hash_label(&run.get("/metrics").1);
    assert!(
        run.stderr().contains(&format!("content hash sha256 {first}")),
        "{}",
        run.stderr()
    );
    config.update("b\n");
    eventually("b rendered", || read(&config.output) == "b\n");
    let port = run.port();
    eventually("a resync", || {
        support::metric_in(
            &support::http_get(port, "/metrics").1,
            "pitcrew_reload_resyncs_total{result=\"unchanged\"}",
        ) >= 1
    });
    let (status, body) = run.get("/metrics");
    assert_eq!(status, 200);
    let hash = hash_label(&body);
    for wanted in [
        "pitcrew_reload_reloads_total{result=\"ok\"} 1",
        "pitcrew_reload_reloads_total{result=\"failed\"} 0",
        "pitcrew_reload_last_success_timestamp_seconds ",
        "pitcrew_reload_watch_events_total ",
        "pitcrew_reload_resyncs_total{result=\"changed\"} 0",
        "pitcrew_reload_changes_total 1",
        "# TYPE pitcrew_reload_config_info gauge",
    ] {
        assert!(body.contains(wanted), "{wanted:?} missing:\n{body}");
    }
    assert_eq!(hash.len(), 64, "{body}");
    assert_ne!(hash, first);
    assert_eq!(
        body.matches("pitcrew_reload_config_info{").count(),
        1,
        "only the current hash"
    );
    assert!(
        run.stderr()
            .contains(&format!("(sha256 {}… → {}…)", &first[..8], &hash[..8])),
        "the change is logged with both hashes\n{}",
        run.stderr()
    );
    run.stop();
}

/// The hash label of `pitcrew_reload_config_info`.
fn hash_label(metrics: &str) -> String {
    let line = metrics
        .lines()
        .find(|line| line.starts_with("pitcrew_reload_config_info{hash=\""))
        .unwrap_or_else(|| panic!("no config_info in {metrics}"));
    line["pitcrew_reload_config_info{hash=\"".len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A change inotify cannot report (a file behind a symlink that leads out of the watched
/// directory, changed in place): the resync finds it, says so, reloads, and re-creates the
/// watcher, which stays healthy.
#[test]
fn the_resync_finds_and_reloads_a_change_no_event_announced() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("config"), dir.path().join("outside"));
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("t"), "one\n").unwrap();
    std::os::unix::fs::symlink(outside.join("t"), root.join("t")).unwrap();
    let output = dir.path().join("out");
    let mut run = Running::start(
        &[
            "--watch",
            s(&root),
            "--resync",
            "1s",
            "--render-template",
            s(&root.join("t")),
            "--render-output",
            s(&output),
        ],
        &[],
    );
    run.wait_ready();
    std::fs::write(outside.join("t"), "two\n").unwrap();
    eventually("the resync's render", || read(&output) == "two\n");
    run.wait_for_log(&format!("change found by resync: {}", root.join("t").display()));
    run.wait_for_log("the file watcher missed this change (no event came); re-creating it");
    assert_eq!(run.metric("pitcrew_reload_resyncs_total{result=\"changed\"}"), 1);
    assert_eq!(run.get("/healthz").0, 200);
    run.stop();
}

#[test]
fn sigterm_and_sigint_exit_0_at_once() {
    for signal in ["TERM", "INT"] {
        let config = Rendered::new("x\n");
        let mut run = Running::start(&config.args(&[]), &[]);
        run.wait_ready();
        run.signal(signal);
        let (code, took) = run.wait_exit();
        assert_eq!(code, 0, "{}", run.stderr());
        // "At once": far below any grace period, however busy the machine.
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(
            run.stderr().contains(&format!("stopped by SIG{signal}")),
            "{}",
            run.stderr()
        );
    }
}

/// A real cause of a dead watcher: the watched directory is replaced by one this user cannot
/// read (a volume remounted with a mode or owner the sidecar's runAsUser cannot read). inotify
/// then refuses to watch it, `/healthz` says so, and passes again once it can watch again. As
/// root every permission passes, so then the binary runs as 65532, the image's user.
#[test]
fn a_dead_watcher_fails_healthz_until_it_can_watch_again() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = shared_tempdir();
    let root = dir.path().join("config");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a.conf"), "a").unwrap();
    let args = ["--watch", s(&root)];
    let mut run = if pitcrew_testkit::is_root() {
        let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &[]) else {
            return;
        };
        // A copy in the shared temp dir: the build tree may be where 65532 cannot go (a
        // clone under /root).
        let copy = dir.path().join("pitcrew-reload");
        std::fs::copy(support::BIN, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let inner = command(&args, &[]);
        let mut wrapped = Command::new(setpriv);
        wrapped
            .args(["--reuid=65532", "--regid=65532", "--clear-groups", "--"])
            .arg(&copy)
            .args(inner.get_args())
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        Running::spawn(wrapped)
    } else {
        Running::start(&args, &[])
    };
    run.wait_ready();
    assert_eq!(run.get("/healthz"), (200, "ok\n".to_owned()));

    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o000)).unwrap();
    let port = run.port();
    run.wait_for("/healthz to fail", |_| {
        support::http_get(port, "/healthz").0 == 503
    });
    let (_, body) = run.get("/healthz");
    assert_eq!(
        body,
        format!(
            "not live: file watcher: cannot watch {}: permission denied\n",
            root.display()
        )
    );
    assert_eq!(run.get("/readyz").0, 200, "liveness, not readiness");
    assert!(run.stderr().contains("file watcher is dead"), "{}", run.stderr());

    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    run.wait_for("/healthz to pass again", |_| {
        support::http_get(port, "/healthz").0 == 200
    });
    // Watching for real again: a new file is seen.
    std::fs::write(root.join("b.conf"), "b").unwrap();
    let new_file = root.join("b.conf").display().to_string();
    run.wait_for("the new file's change", |run| {
        run.stderr()
            .lines()
            .any(|line| line.contains("change: ") && line.contains(&new_file))
    });
    run.stop();
}

#[test]
fn env_twins_configure_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(a.join("t1"), "one ${V}\n").unwrap();
    std::fs::write(b.join("t2"), "two ${V}\n").unwrap();
    let (o1, o2) = (dir.path().join("o1"), dir.path().join("o2"));
    let watch = format!("{},{}", a.display(), b.display());
    let templates = format!("{},{}", a.join("t1").display(), b.join("t2").display());
    let outputs = format!("{},{}", o1.display(), o2.display());
    let mut command = Command::new(support::BIN);
    command.env_clear().env("PATH", "/usr/bin:/bin").envs([
        ("PITCREW_RELOAD_WATCH", watch.as_str()),
        ("PITCREW_RELOAD_RENDER_TEMPLATE", &templates),
        ("PITCREW_RELOAD_RENDER_OUTPUT", &outputs),
        ("PITCREW_RELOAD_DEBOUNCE", "50ms"),
        ("PITCREW_RELOAD_INITIAL", "yes"),
        ("PITCREW_RELOAD_ADMIN_ADDR", "127.0.0.1:0"),
        ("PITCREW_RELOAD_RESYNC", ""),
        ("PITCREW_TERMINATION_LOG", "/dev/null"),
        ("PITCREW_LOG_FORMAT", "json"),
        ("V", "v"),
    ]);
    let mut run = Running::spawn(command);
    run.wait_ready();
    assert_eq!(read(&o1), "one v\n");
    assert_eq!(read(&o2), "two v\n");
    assert_eq!(run.reloads_ok(), 1);
    std::fs::write(b.join("t2"), "TWO ${V}\n").unwrap();
    eventually("the second watched directory's change", || read(&o2) == "TWO v\n");
    let stderr = run.stderr();
    assert!(stderr.lines().all(|line| line.starts_with('{')), "{stderr}");
    assert!(stderr.contains("debounce 50ms, resync every 1m"), "{stderr}");
    run.stop();
}

/// Runs the binary to its exit: (code, stderr, termination log).
fn fails(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let mut command = Command::new(support::BIN);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // Where a usage error goes: the flag is not parsed then.
        .env("PITCREW_TERMINATION_LOG", &log)
        .arg(format!("--termination-log={}", log.display()));
    if !args.iter().any(|arg| arg.starts_with("--admin-addr")) {
        command.arg("--admin-addr=off");
    }
    let output = command.args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn bad_input_exits_with_a_clear_message_and_the_documented_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("t"), "x").unwrap();
    let template = root.join("t");
    let missing = dir.path().join("missing.tmpl");
    let out = dir.path().join("out");
    let r = s(&root);
    let unreadable_dir = dir.path().join("no-such-dir/state");
    let no_dir = dir.path().join("nope/out");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (vec![], 64, "--watch <PATH>".into()),
        (vec!["--watch", r, "--debounce", "soon"], 64, "\"soon\"".into()),
        (
            vec!["--watch", r, "--debounce", "2y"],
            64,
            "longest accepted, 1y".into(),
        ),
        (vec!["--watch", r, "--resync", "0"], 64, "at least 1s".into()),
        (
            vec!["--watch", r, "--admin-addr", "9533"],
            64,
            "invalid --admin-addr \"9533\"".into(),
        ),
        (
            vec!["--watch", r, "--render-template", s(&template)],
            64,
            "1 --render-template and 0 --render-output".into(),
        ),
        (vec!["--watch", r, "--watch", r], 64, "is given twice".into()),
        (
            vec!["--watch", r, "--log-level", "loud"],
            64,
            "invalid --log-level \"loud\"".into(),
        ),
        (
            vec![
                "--watch",
                r,
                "--render-template",
                s(&missing),
                "--render-output",
                s(&out),
            ],
            66,
            format!("cannot read {}", missing.display()),
        ),
        (
            vec![
                "--watch",
                r,
                "--render-template",
                s(&template),
                "--render-output",
                s(&no_dir),
            ],
            74,
            "nope/out".into(),
        ),
        (
            vec!["--watch", r, "--state-file", s(&unreadable_dir)],
            74,
            "--state-file: cannot write".into(),
        ),
        (
            vec!["--watch", r, "--state-file", s(&root)],
            78,
            "is also a watched path".into(),
        ),
        (
            vec![
                "--watch",
                r,
                "--render-template",
                s(&template),
                "--render-output",
                s(&template),
            ],
            78,
            "is its own --render-template".into(),
        ),
        (
            vec!["--watch", r, "--ca-file", s(&missing)],
            66,
            s(&missing).into(),
        ),
    ];
    for (args, code, wanted) in cases {
        let (got, stderr, log) = fails(&args);
        assert_eq!(got, code, "{args:?}\n{stderr}");
        assert!(stderr.contains(&wanted), "{args:?}: {wanted:?} not in\n{stderr}");
        assert!(!log.is_empty(), "{args:?}: nothing in the termination log");
    }
}

#[test]
fn a_template_with_errors_exits_78_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t");
    let out = dir.path().join("out");
    std::fs::write(&template, "${A\n${B%x}\n").unwrap();
    let (code, stderr, log) = fails(&[
        "--watch",
        s(dir.path()),
        "--render-template",
        s(&template),
        "--render-output",
        s(&out),
    ]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("has 2 problems"), "{stderr}");
    assert!(log.contains(&format!("{}:1:1", template.display())), "{log}");
    assert!(!out.exists());
}

#[test]
fn an_admin_port_in_use_exits_1_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, log) = fails(&["--watch", s(dir.path()), "--admin-addr", &address]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        log.contains(&format!("--admin-addr {address}: cannot listen")),
        "{log}"
    );
}

#[test]
fn admin_off_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(&["--watch", s(dir.path()), "--admin-addr", "off"], &[]);
    run.wait_for_log("watching ");
    assert!(!run.stderr().contains("admin server on"), "{}", run.stderr());
    run.stop();
}

#[test]
fn help_shows_pod_specs_and_exit_codes() {
    let output = Command::new(support::BIN).arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for wanted in [
        "shareProcessNamespace: true",
        "image: pitcrew/reload:0.1.0",
        "/-/reload",
        "Exit codes:",
        "PITCREW_RELOAD_STATE_FILE",
        "PITCREW_RELOAD_CA_FILE",
    ] {
        assert!(help.contains(wanted), "{wanted:?} not in:\n{help}");
    }
}
