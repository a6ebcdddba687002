//! End-to-end tests of the `pitcrew/wait:dev` image, run with docker the way Kubernetes runs
//! it: read-only root filesystem, the image's own non-root user, PID 1, signals from outside.
//!
//! Containers use `--network host` so that peers on the host's loopback are reachable from
//! inside; nothing leaves 127.0.0.0/8. Run by `cargo xtask test` after it built the images.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_e2e::{Container, Finished, Process, WAIT_IMAGE, ready, run};
use pitcrew_testkit::nginx::NginxPeer;
use pitcrew_testkit::postgres::{self, PostgresPeer};
use pitcrew_testkit::{free_port, require_binary};

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// `docker run --rm`-like options every test uses: host loopback, read-only root.
fn wait_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--network", "host", "--read-only", WAIT_IMAGE];
    args.extend_from_slice(extra);
    args
}

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

#[test]
fn runs_as_uid_65532_read_only_and_help_exits_0() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let user = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Config.User}}", WAIT_IMAGE])
        .output()
        .expect("docker image inspect");
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");

    let help = run(&wait_args(&["--help"]), RUN_DEADLINE);
    assert_eq!(help.code, 0, "{}", describe(&help));
    assert!(help.stdout.contains("Usage:"), "{}", describe(&help));
    assert!(help.stdout.contains("tcp://"), "{}", describe(&help));

    // The uid the process really runs as, seen from the host while it waits.
    let port = free_port().to_string();
    let target = format!("tcp://127.0.0.1:{port}");
    let waiting = Container::start("uid", &wait_args(&[&target, "--timeout", "0"]));
    waiting.wait_for_log("attempt 1:", RUN_DEADLINE);
    let top = Command::new("docker")
        .args(["top", &waiting.name, "-o", "pid,uid"])
        .output()
        .expect("docker top");
    let top = String::from_utf8_lossy(&top.stdout);
    let uids: Vec<&str> = top
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(uids, ["65532"], "docker top:\n{top}");
}

#[test]
fn a_malformed_target_exits_64_naming_it() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let finished = run(&wait_args(&["tcp://db-without-port"]), RUN_DEADLINE);
    assert_eq!(finished.code, 64, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("tcp://db-without-port"),
        "{}",
        describe(&finished)
    );
}

#[test]
fn waits_for_a_postgres_that_comes_up_late_and_logs_in() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    // initdb happens now; the server itself starts only later, on the port chosen here.
    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    let target = prepared.url(postgres::USER, Some(postgres::PASSWORD), postgres::DATABASE);
    let waiting = Container::start("late", &wait_args(&[&target, "--db-login", "--timeout", "2m"]));
    // The dependency comes up only once the waiter has really been refused (no fixed sleep
    // that a slow container start could outlast), and a while after that.
    waiting.wait_for_log("connection refused", RUN_DEADLINE);
    std::thread::sleep(Duration::from_secs(2));
    let _postgres = prepared.start();
    let code = waiting.wait_exit(RUN_DEADLINE);
    let logs = waiting.logs();
    assert_eq!(code, 0, "{logs}");
    let shown = target.replace(postgres::PASSWORD, "***");
    assert!(logs.contains(&format!("{shown} is ready after")), "{logs}");
    assert!(
        !logs.contains(postgres::PASSWORD),
        "the password leaked into the logs: {logs}"
    );
}

#[test]
fn never_ready_times_out_with_124_and_writes_the_termination_log() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let target = format!("tcp://127.0.0.1:{}", free_port());
    // Kubernetes mounts a writable file at /dev/termination-log; the image's user must be able
    // to write it, so the host file is world-writable, as the kubelet's is for any uid.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    set_mode(&log, 0o666);
    let mount = format!("{}:/dev/termination-log", log.display());
    let finished = run(
        &[
            "-v",
            &mount,
            "--network",
            "host",
            "--read-only",
            WAIT_IMAGE,
            &target,
            "--timeout",
            "3s",
        ],
        RUN_DEADLINE,
    );
    assert_eq!(finished.code, 124, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("timed out after 3s"),
        "{}",
        describe(&finished)
    );
    assert!(
        finished.stderr.contains(&format!("{target} (connection refused")),
        "the summary names the target and its last error: {}",
        describe(&finished)
    );
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.contains("timed out after 3s"),
        "termination log: {message:?}"
    );
    assert!(message.contains(&target), "termination log: {message:?}");
}

#[test]
fn sigterm_as_pid_1_stops_at_once_with_143() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let target = format!("tcp://127.0.0.1:{}", free_port());
    let waiting = Container::start("sigterm", &wait_args(&[&target, "--timeout", "0"]));
    // Signal handlers are installed before the first attempt.
    waiting.wait_for_log("attempt 1:", RUN_DEADLINE);
    let sent = Instant::now();
    waiting.signal("TERM");
    // A busybox loop as PID 1 ignores SIGTERM and is killed after the grace period (30 s in
    // Kubernetes, 10 s for docker stop); 10 s is generous for a process that handles it.
    let code = waiting.wait_exit(Duration::from_secs(60));
    let took = sent.elapsed();
    let logs = waiting.logs();
    assert_eq!(code, 143, "{logs}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop; {logs}");
    assert!(logs.contains("stopped by SIGTERM"), "{logs}");
}

#[test]
fn the_command_after_double_dash_replaces_wait_and_keeps_its_exit_code() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    // The only program in the image is the wait binary, so it is the command: its exit code
    // (124, 64) can only come from the exec'd process, not from the first wait, which succeeds.
    let ready_file = "file:///etc/ssl/certs/ca-certificates.crt";
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let finished = run(
        &wait_args(&[ready_file, "--", "/pitcrew-wait", &closed, "--timeout", "1s"]),
        RUN_DEADLINE,
    );
    assert_eq!(finished.code, 124, "{}", describe(&finished));
    assert!(finished.stderr.contains(ready_file), "{}", describe(&finished));
    assert!(
        finished.stderr.contains("timed out after 1s"),
        "{}",
        describe(&finished)
    );

    let finished = run(
        &wait_args(&[ready_file, "--", "/pitcrew-wait", "tcp://bad"]),
        RUN_DEADLINE,
    );
    assert_eq!(finished.code, 64, "{}", describe(&finished));

    let finished = run(&wait_args(&[ready_file, "--", "/no/such/command"]), RUN_DEADLINE);
    assert_eq!(finished.code, 127, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("/no/such/command"),
        "{}",
        describe(&finished)
    );
}

#[test]
fn any_returns_as_soon_as_one_target_is_ready() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("tcp://{}", open.local_addr().unwrap());
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let finished = run(
        &wait_args(&["--any", &closed, &open, "--timeout", "1m"]),
        RUN_DEADLINE,
    );
    assert_eq!(finished.code, 0, "{}", describe(&finished));
    assert!(
        finished.stderr.contains(&format!("{open} is ready")),
        "{}",
        describe(&finished)
    );
    assert!(finished.stderr.contains("--any"), "{}", describe(&finished));
}

/// A loopback address of this test process's own for dnsmasq (resolv.conf can only name port
/// 53, so two test runs at once need two addresses): 127.77.x.y from the pid.
fn dns_address() -> String {
    let pid = std::process::id();
    format!("127.77.{}.{}", (pid >> 8) % 250 + 1, pid % 250 + 1)
}

/// A dnsmasq on `address`:53 that knows db.pitcrew.test and answers NXDOMAIN for every other
/// name under pitcrew.test; it has no upstream, so nothing leaves the machine.
fn dnsmasq(dir: &Path, address: &str) -> Option<Process> {
    let binary = require_binary("dnsmasq", &["/usr/sbin/dnsmasq"])?;
    if !pitcrew_e2e::is_root() {
        // Port 53 (the only port resolv.conf can name) needs root.
        assert!(
            !pitcrew_e2e::must_run(),
            "the DNS test needs root to bind port 53"
        );
        pitcrew_e2e::skipped("the DNS test needs root to bind port 53");
        return None;
    }
    let log = dir.join("dnsmasq.log");
    let mut process = Process(
        Command::new(binary)
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--port=53",
                "--bind-interfaces",
                "--address=/db.pitcrew.test/127.0.0.1",
                // An AAAA answer too: without it the broader rule below answers the AAAA query
                // NXDOMAIN, and musl takes NXDOMAIN for either family as "no such name".
                "--address=/db.pitcrew.test/::1",
                "--address=/pitcrew.test/",
                "--log-queries",
                "--log-facility=-",
            ])
            .arg(format!("--listen-address={address}"))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dnsmasq"),
    );
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("started") {
            return Some(process);
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("dnsmasq exited ({status}); is port 53 on {address} taken? Its log:\n{text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dnsmasq did not start (port 53 needs root); its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dns_names_resolve_through_the_containers_resolv_conf_and_search_domain() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let address = dns_address();
    let Some(_dnsmasq) = dnsmasq(dir.path(), &address) else {
        return;
    };
    // As Kubernetes writes it for a pod: our nameserver and a search domain, so `db` means
    // db.pitcrew.test, resolved by musl's resolver inside the image.
    let resolv = ResolvConf::new(&format!(
        "nameserver {address}\nsearch pitcrew.test\noptions ndots:1\n"
    ));
    let with_resolver = |extra: &[&str]| -> Finished { run(&as_strs(&resolv.args(extra)), RUN_DEADLINE) };

    let found = with_resolver(&["dns://db", "--timeout", "30s"]);
    assert_eq!(found.code, 0, "{}", describe(&found));
    assert!(found.stderr.contains("dns://db is ready"), "{}", describe(&found));

    let missing = with_resolver(&["dns://missing.pitcrew.test", "--timeout", "3s"]);
    assert_eq!(missing.code, 124, "{}", describe(&missing));
    assert!(
        missing.stderr.contains("does not resolve"),
        "{}",
        describe(&missing)
    );
    assert!(
        missing.stderr.contains("dns://missing.pitcrew.test"),
        "{}",
        describe(&missing)
    );

    // Regression: `--invert` took every failure as "gone", so a typo in a name passed at once.
    // A name that does not resolve is gone only when --invert-dns says so.
    let typo = with_resolver(&["--invert", "tcp://missing.pitcrew.test:5432", "--timeout", "3s"]);
    assert_eq!(typo.code, 124, "{}", describe(&typo));
    assert!(typo.stderr.contains("--invert-dns"), "{}", describe(&typo));
    let deleted = with_resolver(&[
        "--invert",
        "--invert-dns",
        "tcp://missing.pitcrew.test:5432",
        "--timeout",
        "30s",
    ]);
    assert_eq!(deleted.code, 0, "{}", describe(&deleted));
    assert!(deleted.stderr.contains("is gone after"), "{}", describe(&deleted));
}

/// A "resolver" that never answers: a UDP socket on port 53 of a loopback address of this
/// test's own, which nobody reads. Returns None (after saying why) without root.
fn silent_resolver() -> Option<(std::net::UdpSocket, String)> {
    if !pitcrew_e2e::is_root() {
        assert!(
            !pitcrew_e2e::must_run(),
            "the hung-resolver test needs root to bind port 53"
        );
        pitcrew_e2e::skipped("the hung-resolver test needs root to bind port 53");
        return None;
    }
    let pid = std::process::id();
    let address = format!("127.78.{}.{}", (pid >> 8) % 250 + 1, pid % 250 + 1);
    let socket = std::net::UdpSocket::bind((address.as_str(), 53))
        .unwrap_or_else(|err| panic!("cannot bind {address}:53 for the silent resolver: {err}"));
    Some((socket, address))
}

/// Regression: the runtime was dropped before exit and exec, and dropping it waits for
/// blocking `getaddrinfo` calls without limit. With a resolver that never answers,
/// `--timeout 2s` exited after 10 s, `--any` with a ready target started its command 10 s
/// late and SIGTERM took 8.5 s. Here musl is told to give a lookup 60 s (its maximum; the
/// default is 5 s, tried twice): any wait for it shows as a container that outlives the bound
/// below, half that. (Checked against the code before the fix: exit after 30 s with
/// `timeout:30`, and no reason in the summary.)
#[test]
fn a_resolver_that_never_answers_delays_neither_exit_nor_exec_nor_sigterm() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let Some((_silent, address)) = silent_resolver() else {
        return;
    };
    let resolv = ResolvConf::new(&format!("nameserver {address}\noptions timeout:60 attempts:1\n"));
    let args = |extra: &[&str]| resolv.args(extra);
    // Far below the minute a hung lookup lasts, far above a slow container start.
    let bound = Duration::from_secs(30);
    let hung = "tcp://db.pitcrew.test:5432";

    let timed_out = run(&as_strs(&args(&[hung, "--timeout", "2s"])), RUN_DEADLINE);
    assert_eq!(timed_out.code, 124, "{}", describe(&timed_out));
    assert!(timed_out.elapsed < bound, "{}", describe(&timed_out));
    assert!(
        timed_out.stderr.contains("the resolver did not answer within"),
        "the summary says why: {}",
        describe(&timed_out)
    );

    let ready_file = "file:///etc/ssl/certs/ca-certificates.crt";
    let exec = run(
        &as_strs(&args(&[
            "--any",
            hung,
            ready_file,
            "--",
            "/pitcrew-wait",
            "--version",
        ])),
        RUN_DEADLINE,
    );
    assert_eq!(exec.code, 0, "{}", describe(&exec));
    assert!(
        exec.stdout.contains("pitcrew-wait"),
        "the command ran: {}",
        describe(&exec)
    );
    assert!(exec.elapsed < bound, "{}", describe(&exec));

    let waiting = Container::start("hung-dns", &as_strs(&args(&[hung, "--timeout", "0"])));
    waiting.wait_for_log("waiting for", RUN_DEADLINE);
    // The first lookup starts right after that line; give it a moment to be under way.
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    waiting.signal("TERM");
    let code = waiting.wait_exit(RUN_DEADLINE);
    let took = sent.elapsed();
    let logs = waiting.logs();
    assert_eq!(code, 143, "{logs}");
    assert!(took < bound, "SIGTERM took {took:?}; {logs}");
}

/// A resolv.conf of the test's own, mounted over the image's.
struct ResolvConf {
    _dir: tempfile::TempDir,
    mount: String,
}

impl ResolvConf {
    fn new(content: &str) -> ResolvConf {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o644);
        ResolvConf {
            mount: format!("{}:/etc/resolv.conf:ro", path.display()),
            _dir: dir,
        }
    }

    /// `docker run` arguments: the mount, host loopback, read-only root, the image, `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["-v", &self.mount, "--network", "host", "--read-only", WAIT_IMAGE]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    // The temp dir itself must let uid 65532 reach the file.
    if let Some(parent) = path.parent() {
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn https_works_from_the_static_binary_with_a_mounted_private_ca() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let target = nginx.https_url("/healthz");
    let mount = format!("{}:/etc/private-ca.pem:ro", nginx.ca_pem_path().display());
    let trusted = run(
        &[
            "-v",
            &mount,
            "--network",
            "host",
            "--read-only",
            WAIT_IMAGE,
            &target,
            "--ca-file",
            "/etc/private-ca.pem",
            "--timeout",
            "1m",
        ],
        RUN_DEADLINE,
    );
    assert_eq!(trusted.code, 0, "{}", describe(&trusted));
    assert!(
        trusted.stderr.contains("is ready after"),
        "{}",
        describe(&trusted)
    );

    // Without --ca-file only the image's public roots are trusted, and they must not
    // vouch for a private test CA.
    let untrusted = run(&wait_args(&[&target, "--timeout", "3s"]), RUN_DEADLINE);
    assert_eq!(untrusted.code, 124, "{}", describe(&untrusted));
    assert!(
        untrusted
            .stderr
            .contains("TLS error: invalid peer certificate: UnknownIssuer"),
        "{}",
        describe(&untrusted)
    );
    assert!(
        !untrusted.stderr.contains("trusted only through --ca-file"),
        "the image's CA bundle should load without a warning: {}",
        describe(&untrusted)
    );
}
