//! The reload actions against real peers: a real nginx reloaded by SIGHUP through its pid
//! file (and the new config served), uniquely named processes found by `--process-name`
//! (copies of /bin/sleep and /bin/dash, whose exit status shows the signal they got),
//! webhooks and verify URLs against pitcrew-testkit's scriptable HTTP receiver (statuses,
//! outages, hangs, garbage), and a raw TCP peer answering garbage.
//!
//! The flags go through the real parser (`ActionArgs` flattened, `pitcrew_core::cli`), so
//! what is tested is what a pod spec gets. No test asserts a timing: deadlines are generous
//! and only bound how long a broken test may hang.

use std::io::{Read as _, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use pitcrew_reload::action::{ActionArgs, ActionError, Actions};
use pitcrew_testkit::http_receiver::{Action, HttpReceiver};
use pitcrew_testkit::logs::Logs;
use pitcrew_testkit::nginx::NginxPeer;

/// Bounds every wait; far above what any step takes on a busy machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// A password with every character that breaks naive URL handling.
const ODD_PASSWORD: &str = "p@ss&w:rd%";

/// Strings that must never appear in an error, a description or a log line.
const SECRETS: [&str; 5] = [ODD_PASSWORD, "w:rd", "p@ss", "h-s3cr3t", "q-s3cr3t"];

#[derive(Debug, Parser)]
#[command(name = "pitcrew-reload")]
struct Flags {
    #[command(flatten)]
    actions: ActionArgs,
}

fn parse(args: &[&str]) -> ActionArgs {
    pitcrew_core::cli::try_parse_from::<Flags, _, _>(
        std::iter::once("pitcrew-reload").chain(args.iter().copied()),
    )
    .unwrap_or_else(|err| panic!("{args:?} did not parse: {err}"))
    .actions
}

fn tls_with(settings: &pitcrew_core::tls::TlsSettings) -> pitcrew_core::tls::Tls {
    pitcrew_core::tls::Tls::new(settings, []).expect("TLS set-up")
}

fn actions(args: &[&str]) -> Actions {
    parse(args)
        .build(&tls_with(&pitcrew_core::tls::TlsSettings::default()))
        .unwrap_or_else(|err| panic!("{args:?} did not build: {err}"))
}

/// Runs the actions, bounded by [`DEADLINE`].
async fn run(actions: &Actions) -> Result<Vec<String>, ActionError> {
    tokio::time::timeout(DEADLINE, actions.run_and_report("0123abcd"))
        .await
        .expect("the actions did not finish within the deadline")
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A uniquely named executable (a copy of `source`) and the processes started from it, all
/// killed on drop.
struct NamedProgram {
    _dir: tempfile::TempDir,
    path: PathBuf,
    name: String,
    children: Vec<Child>,
}

impl NamedProgram {
    /// A copy of `source` named `pcrw-` plus `random_len` random letters.
    fn new(source: &str, random_len: usize) -> NamedProgram {
        let dir = tempfile::tempdir().expect("temp dir");
        let suffix: String = std::iter::repeat_with(fastrand::lowercase)
            .take(random_len)
            .collect();
        let name = format!("pcrw-{suffix}");
        let path = dir.path().join(&name);
        std::fs::copy(source, &path).unwrap_or_else(|err| panic!("cannot copy {source}: {err}"));
        NamedProgram {
            _dir: dir,
            path,
            name,
            children: Vec::new(),
        }
    }

    /// Starts it with `args`, in a process group of its own (so that whatever it starts can
    /// be stopped with it), and returns its pid.
    fn spawn(&mut self, args: &[&str]) -> u32 {
        let start = Instant::now();
        loop {
            let spawned = Command::new(&self.path)
                .args(args)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn();
            match spawned {
                Ok(child) => {
                    let pid = child.id();
                    self.children.push(child);
                    return pid;
                }
                // ETXTBSY: a child another test forked meanwhile still holds the copy's write
                // descriptor until it execs; it lets go within moments.
                Err(err) if err.raw_os_error() == Some(26) && start.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("cannot start {}: {err}", self.path.display()),
            }
        }
    }

    /// Waits for the child with `pid` to end; returns the signal that ended it.
    fn wait_for_signal(&mut self, pid: u32) -> Option<i32> {
        let index = self
            .children
            .iter()
            .position(|child| child.id() == pid)
            .expect("a child of ours");
        let mut child = self.children.remove(index);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.signal();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pid {pid} was not ended by the signal within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child with `pid` is still running.
    fn running(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .find(|child| child.id() == pid)
            .is_some_and(|child| child.try_wait().expect("wait").is_none())
    }
}

impl Drop for NamedProgram {
    fn drop(&mut self) {
        for child in &mut self.children {
            // The whole group: a shell's children too.
            if let Some(group) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else { continue };
        let parent_pid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|text| text.parse::<u32>().ok());
        if parent_pid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn process_name_signals_the_one_process_with_that_name() {
    let mut program = NamedProgram::new("/bin/sleep", 8);
    let pid = program.spawn(&["1000"]);
    let name = program.name.clone();
    let done = run(&actions(&["--signal", "TERM", "--process-name", &name]))
        .await
        .expect("signalled");
    assert_eq!(done, [format!("signal TERM to {name} (pid {pid})")]);
    assert_eq!(program.wait_for_signal(pid), Some(15), "ended by SIGTERM");

    // USR1 (by number), which sleep does not handle either: it ends it, and says it got it.
    let pid = program.spawn(&["1000"]);
    run(&actions(&["--signal", "10", "--process-name", &name]))
        .await
        .expect("signalled");
    assert_eq!(program.wait_for_signal(pid), Some(10), "ended by SIGUSR1");

    // Without --signal: HUP.
    let pid = program.spawn(&["1000"]);
    let done = run(&actions(&["--process-name", &name]))
        .await
        .expect("signalled");
    assert_eq!(done, [format!("signal HUP to {name} (pid {pid})")]);
    assert_eq!(program.wait_for_signal(pid), Some(1), "ended by SIGHUP");
}

/// A name longer than the 15 bytes the kernel keeps in `comm` is found through argv[0].
#[tokio::test]
async fn process_names_longer_than_comm_are_found_through_argv0() {
    let mut program = NamedProgram::new("/bin/sleep", 20);
    assert!(program.name.len() > 15);
    let pid = program.spawn(&["1000"]);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim().len(), 15, "the kernel cut the name: {comm:?}");
    let name = program.name.clone();
    run(&actions(&["--signal", "sigusr2", "--process-name", &name]))
        .await
        .expect("signalled");
    assert_eq!(program.wait_for_signal(pid), Some(12), "ended by SIGUSR2");
}

#[tokio::test]
async fn no_process_with_the_name_names_the_fix() {
    let program = NamedProgram::new("/bin/sleep", 8);
    let err = run(&actions(&["--process-name", &program.name]))
        .await
        .expect_err("nothing runs under that name");
    assert_eq!(err.action, format!("signal HUP to {}", program.name));
    assert!(
        err.message
            .starts_with(&format!("no process named {} is visible", program.name)),
        "{err}"
    );
    assert!(
        err.message
            .contains("set shareProcessNamespace: true in the pod spec"),
        "{err}"
    );
    assert!(err.message.contains("or use --pid-file"), "{err}");
}

#[tokio::test]
async fn two_unrelated_processes_with_the_name_are_an_error_naming_both() {
    let mut program = NamedProgram::new("/bin/sleep", 8);
    let first = program.spawn(&["1000"]);
    let second = program.spawn(&["1000"]);
    let err = run(&actions(&["--signal", "TERM", "--process-name", &program.name]))
        .await
        .expect_err("two candidates");
    let (low, high) = (first.min(second), first.max(second));
    assert!(
        err.message.contains(&format!(
            "2 processes are named {} (pids {low}, {high})",
            program.name
        )),
        "{err}"
    );
    assert!(err.message.contains("use --pid-file"), "{err}");
    assert!(
        program.running(first) && program.running(second),
        "neither was signalled"
    );
}

/// A master with a worker of the same name (nginx's layout): the master gets the signal.
#[tokio::test]
async fn of_a_master_and_its_worker_the_master_is_signalled() {
    let mut program = NamedProgram::new("/bin/dash", 8);
    // The outer shell starts an inner one (same executable, same name) and waits for it.
    let master = program.spawn(&["-c", "\"$0\" -c 'sleep 1000; :' & wait"]);
    let start = Instant::now();
    let worker = loop {
        let workers: Vec<u32> = children_of(master)
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == program.name)
            })
            .collect();
        if let [worker] = workers.as_slice() {
            break *worker;
        }
        assert!(start.elapsed() < DEADLINE, "the worker shell never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let done = run(&actions(&["--signal", "TERM", "--process-name", &program.name]))
        .await
        .expect("signalled");
    assert_eq!(done, [format!("signal TERM to {} (pid {master})", program.name)]);
    assert_eq!(
        program.wait_for_signal(master),
        Some(15),
        "the master got SIGTERM"
    );
    assert!(
        std::fs::read_to_string(format!("/proc/{worker}/comm")).is_ok(),
        "the worker (pid {worker}) was left alone"
    );
    // The worker is in the master's process group: killed when `program` is dropped.
    let group = rustix::process::Pid::from_raw(i32::try_from(master).unwrap()).unwrap();
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
}

/// A process of another user (root's, seen from `nobody`): EPERM, and the message says what
/// to change. Runs the `eperm_child` test below as nobody through setpriv.
#[tokio::test]
async fn a_process_of_another_user_cannot_be_signalled_and_the_message_says_why() {
    if !pitcrew_testkit::is_root() {
        eprintln!("SKIPPED: needs root to start a test process as another user");
        return;
    }
    let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &["/usr/bin/setpriv"]) else {
        return;
    };
    let mut program = NamedProgram::new("/bin/sleep", 8);
    let pid = program.spawn(&["1000"]);
    // A copy nobody can run wherever the build tree is (under /root, CI's may not be).
    let copy_dir = tempfile::tempdir().expect("temp dir");
    let copy = copy_dir.path().join("actions-test");
    std::fs::copy(std::env::current_exe().expect("the test binary"), &copy).expect("copy");
    for path in [copy_dir.path(), copy.as_path()] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let start = Instant::now();
    let output = loop {
        let output = Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&copy)
            .args(["--exact", "eperm_child", "--ignored", "--nocapture"])
            .env("PCRW_EPERM_NAME", &program.name)
            .env("PCRW_EPERM_PID", pid.to_string())
            .output()
            .expect("run the test binary as nobody");
        // ETXTBSY, as in NamedProgram::spawn: a moment later the copy runs.
        let busy = String::from_utf8_lossy(&output.stderr).contains("Text file busy");
        if !busy || start.elapsed() > DEADLINE {
            break output;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("EPERM CHILD CHECKED"),
        "the child test did not run: {text}"
    );
    assert!(
        program.running(pid),
        "the process of another user was not signalled"
    );
}

#[tokio::test]
#[ignore = "run as nobody by a_process_of_another_user_cannot_be_signalled_and_the_message_says_why"]
async fn eperm_child() {
    let (Ok(name), Ok(pid)) = (std::env::var("PCRW_EPERM_NAME"), std::env::var("PCRW_EPERM_PID")) else {
        return;
    };
    let err = run(&actions(&["--process-name", &name]))
        .await
        .expect_err("another user's process");
    assert_eq!(err.action, format!("signal HUP to {name} (pid {pid})"));
    assert!(err.message.contains("permission denied"), "{err}");
    assert!(err.message.contains("same user as the app"), "{err}");
    assert!(err.message.contains("runAsUser"), "{err}");
    println!("EPERM CHILD CHECKED");
}

// ---------------------------------------------------------------------------------------
// Pid files and nginx

/// `GET path` with HTTP/1.0; the body.
fn get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Waits until `/version` answers `body`. Right after a reload the old worker may still take
/// a connection or two while it shuts down gracefully (tried: a check made just after a
/// verified reload failed once in a few runs), which is why `--verify-url` polls too.
async fn settles_on(port: u16, body: &str) {
    let start = Instant::now();
    loop {
        let got = get(port, "/version");
        if got == body {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "nginx still serves {got:?}, not {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_version(nginx: &NginxPeer, version: &str) {
    std::fs::write(
        nginx.conf_dir().join("version.conf"),
        format!("location = /version {{ return 200 \"config {version}\\n\"; }}\n"),
    )
    .expect("write version.conf");
}

#[tokio::test]
async fn nginx_reloads_on_sighup_through_its_pid_file_and_serves_the_new_config() {
    let Some(nginx) = NginxPeer::start_with_master_process() else {
        return;
    };
    let pid = std::fs::read_to_string(nginx.pid_file()).expect("nginx wrote its pid");
    let pid = pid.trim();
    let pid_file = nginx.pid_file().display().to_string();
    let verify_url = nginx.http_url("/version");
    let reload = |version: &str| {
        actions(&[
            "--pid-file",
            &pid_file,
            "--signal",
            "SIGHUP",
            "--verify-url",
            &verify_url,
            "--verify-body",
            &format!("^config {version}\n$"),
            "--verify-timeout",
            "1m",
        ])
    };

    assert!(
        !get(nginx.http_port(), "/version").contains("config"),
        "nothing there yet"
    );
    write_version(&nginx, "v1");
    assert!(
        !get(nginx.http_port(), "/version").contains("config v1"),
        "nginx reads the new file only when told to"
    );
    let done = run(&reload("v1")).await.unwrap_or_else(|err| {
        panic!("{err}\n{}", nginx.error_log());
    });
    assert_eq!(
        done[0],
        format!("signal HUP to nginx (pid {pid}, from {pid_file})")
    );
    assert!(
        done[1].starts_with(&format!("verify {verify_url} → 200 after ")),
        "{done:?}"
    );
    settles_on(nginx.http_port(), "config v1\n").await;

    write_version(&nginx, "v2");
    run(&reload("v2")).await.unwrap_or_else(|err| {
        panic!("{err}\n{}", nginx.error_log());
    });
    settles_on(nginx.http_port(), "config v2\n").await;
    assert!(
        nginx.error_log().matches("reconfiguring").count() >= 2,
        "nginx logged both reloads:\n{}",
        nginx.error_log()
    );
    let pid_after = std::fs::read_to_string(nginx.pid_file()).expect("pid file");
    assert_eq!(pid_after.trim(), pid, "reloaded, not restarted");

    // A body that never matches: the reload is not verified, and the message says what came.
    let err = run(&actions(&[
        "--verify-url",
        &verify_url,
        "--verify-body",
        "config v3",
        "--verify-timeout",
        "3s",
    ]))
    .await
    .expect_err("v3 is never served");
    assert_eq!(err.action, format!("verify {verify_url}"));
    assert!(
        err.message
            .starts_with("not verified within 3s (--verify-timeout"),
        "{err}"
    );
    assert!(
        err.message.contains(
            "last answer: HTTP 200 OK, but the body does not match --verify-body /config v3/: config v"
        ),
        "{err}"
    );

    let unavailable = nginx.http_url("/unavailable");
    let err = run(&actions(&[
        "--verify-url",
        &unavailable,
        "--verify-timeout",
        "3s",
    ]))
    .await
    .expect_err("503");
    assert!(
        err.message.contains("last answer: HTTP 503 Service Unavailable"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_over_https_trusts_the_ca_file_and_refuses_an_unknown_issuer() {
    let Some(nginx) = NginxPeer::start() else { return };
    let url = nginx.https_url("/healthz");
    // Generous for the verified case, short for the refused one (it fails at every poll).
    let args = |timeout: &str| {
        parse(&[
            "--verify-url",
            &url,
            "--verify-body",
            "^ok$",
            "--verify-timeout",
            timeout,
        ])
    };
    let trusting = tls_with(&pitcrew_core::tls::TlsSettings {
        ca_file: Some(nginx.ca_pem_path()),
        insecure: false,
    });
    let done = run(&args("1m").build(&trusting).expect("build"))
        .await
        .expect("verified");
    assert!(done[0].starts_with(&format!("verify {url} → 200")), "{done:?}");

    let default = tls_with(&pitcrew_core::tls::TlsSettings::default());
    let err = run(&args("1s").build(&default).expect("build"))
        .await
        .expect_err("unknown CA");
    assert!(err.message.contains("TLS error"), "{err}");
    assert!(err.message.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn bad_pid_files_fail_the_reload_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("app.pid");
    let shown = file.display().to_string();
    let try_with = |content: Option<&[u8]>| {
        if let Some(content) = content {
            std::fs::write(&file, content).expect("write");
        }
        actions(&["--pid-file", &shown])
    };
    let err = run(&try_with(None)).await.expect_err("no file yet");
    assert_eq!(err.action, format!("signal HUP to the pid in {shown}"));
    assert!(
        err.message.contains("cannot read the pid file") && err.message.contains("not found"),
        "{err}"
    );

    for (content, expected) in [
        (&b""[..], "is empty"),
        (b"nginx\n", "does not hold a pid"),
        (b"\x00\x01\xff", "does not hold a pid"),
        (b"0\n", "not a pid"),
        (b"-1\n", "not a pid"),
        (b"123456789012\n", "too large for a pid"),
    ] {
        let err = run(&try_with(Some(content))).await.expect_err("refused");
        assert!(err.message.contains(expected), "{content:?}: {err}");
    }

    // A pid nobody has: an exited process of ours, reaped.
    let mut child = Command::new("/bin/true").spawn().expect("true");
    let gone = child.id();
    child.wait().expect("reaped");
    let err = run(&try_with(Some(format!("{gone}\n").as_bytes())))
        .await
        .expect_err("stale");
    assert!(
        err.message.contains(&format!("no process has pid {gone}")),
        "{err}"
    );
    assert!(
        err.message.contains("stale") && err.message.contains("shareProcessNamespace"),
        "{err}"
    );

    // An app that has exited and not been reaped: kill(2) would "succeed" and do nothing.
    let mut zombie = Command::new("/bin/true").spawn().expect("true");
    let zombie_pid = zombie.id();
    let start = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{zombie_pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    }) {
        assert!(
            start.elapsed() < DEADLINE,
            "pid {zombie_pid} never became a zombie"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = run(&try_with(Some(format!("{zombie_pid}\n").as_bytes())))
        .await
        .expect_err("zombie");
    assert!(
        err.message
            .contains(&format!("pid {zombie_pid} (from {shown}) has exited")),
        "{err}"
    );
    zombie.wait().expect("reaped");

    // Our own pid: what an app in its own PID namespace writes (pid 1 there, and here).
    let err = run(&try_with(Some(format!("{}\n", std::process::id()).as_bytes())))
        .await
        .expect_err("own pid");
    assert!(err.message.contains("this sidecar's own pid"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Webhooks

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn webhooks_are_called_in_order_with_headers_and_basic_auth() {
    let (logs, _guard) = Logs::capture();
    let receiver = HttpReceiver::start();
    let first = format!(
        "http://hook:{ODD_PASSWORD}@127.0.0.1:{}/-/reload?token=q-s3cr3t",
        receiver.port()
    );
    let second = receiver.url("/second");
    let actions = actions(&[
        "--webhook",
        &first,
        "--webhook",
        &second,
        "--webhook-header",
        "X-Token: h-s3cr3t",
        "--webhook-header",
        "X-Multi: one\nX-Multi: two",
    ]);
    let described = actions.describe().join("\n");
    assert_no_secret(&described);
    assert!(described.contains("basic auth from the URL"), "{described}");

    let done = run(&actions).await.expect("both answered 200");
    let shown_first = format!("http://127.0.0.1:{}/-/reload?…", receiver.port());
    assert_eq!(
        done,
        [
            format!("webhook POST {shown_first} → 200"),
            format!("webhook POST {second} → 200"),
        ]
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (one, two) = (&requests[0], &requests[1]);
    assert_eq!(
        (one.method.as_str(), one.path.as_str()),
        ("POST", "/-/reload?token=q-s3cr3t")
    );
    assert_eq!(two.path, "/second");
    assert_eq!(
        one.header("authorization"),
        Some(basic("hook", ODD_PASSWORD).as_str())
    );
    assert_eq!(
        two.header("authorization"),
        None,
        "credentials belong to their URL only"
    );
    for request in [one, two] {
        assert_eq!(request.header("x-token"), Some("h-s3cr3t"));
        let multi: Vec<&str> = request
            .headers
            .iter()
            .filter(|(name, _)| name == "x-multi")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(multi, ["one", "two"]);
        let lengths = request
            .headers
            .iter()
            .filter(|(name, _)| name == "content-length")
            .count();
        assert_eq!((request.header("content-length"), lengths), (Some("0"), 1));
        assert!(request.body.is_empty());
        assert!(
            request
                .header("user-agent")
                .is_some_and(|agent| agent.starts_with("pitcrew-reload/")),
            "{request:?}"
        );
    }
    assert_no_secret(&logs.lines().join("\n"));
}

#[tokio::test]
async fn a_refused_answer_is_retried_until_accepted() {
    let (logs, _guard) = Logs::capture();
    let receiver = HttpReceiver::start();
    receiver.fail_next(503, 2);
    let url = receiver.url("/-/reload");
    let done = run(&actions(&["--webhook", &url, "--webhook-method", "put"]))
        .await
        .expect("third attempt answered 200");
    assert_eq!(done.len(), 1);
    assert!(
        done[0].starts_with(&format!("webhook PUT {url} → 200 (attempt 3, after ")),
        "{done:?}"
    );
    let statuses: Vec<Option<u16>> = receiver.requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    assert!(receiver.requests().iter().all(|request| request.method == "PUT"));
    let lines = logs.lines();
    let retries: Vec<&String> = lines.iter().filter(|line| line.contains("retrying in")).collect();
    assert_eq!(retries.len(), 2, "{lines:#?}");
    assert!(
        retries[0].contains(&format!(
            "webhook PUT {url}: answered HTTP 503 Service Unavailable, not in --webhook-status 2xx: scripted status 503 (attempt 1 of 6); retrying in"
        )),
        "{lines:#?}"
    );
    assert!(retries[1].contains("(attempt 2 of 6)"), "{lines:#?}");

    // A 200 that is not in the accepted set is retried like any refusal.
    receiver.fail_next(204, 1);
    let done = run(&actions(&["--webhook", &url, "--webhook-status", "204"]))
        .await
        .expect("204 accepted");
    assert_eq!(done, [format!("webhook POST {url} → 204")]);
}

#[tokio::test]
async fn retries_run_out_and_the_reload_fails_saying_why() {
    let receiver = HttpReceiver::start();
    receiver.fail_next(500, 10);
    let url = format!("http://hook:{ODD_PASSWORD}@127.0.0.1:{}/hook", receiver.port());
    let err = run(&actions(&["--webhook", &url, "--webhook-retries", "2"]))
        .await
        .expect_err("500 three times");
    assert_eq!(err.action, format!("webhook POST {}", receiver.url("/hook")));
    assert_eq!(
        err.message,
        "answered HTTP 500 Internal Server Error, not in --webhook-status 2xx: scripted status 500 (gave up after 3 attempts)"
    );
    assert_eq!(receiver.requests().len(), 3);
    assert_no_secret(&err.to_string());

    // Nothing after a failed action runs: no verify request.
    let verify = HttpReceiver::start();
    let err = run(&actions(&[
        "--webhook",
        &url,
        "--webhook-retries",
        "0",
        "--verify-url",
        &verify.url("/healthz"),
    ]))
    .await
    .expect_err("500 again");
    assert!(
        err.message
            .ends_with("(gave up after 1 attempt, --webhook-retries 0)"),
        "{err}"
    );
    assert!(verify.requests().is_empty(), "verify ran after a failed webhook");
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_is_retried_to_success() {
    let (logs, _guard) = Logs::capture();
    let receiver = HttpReceiver::start();
    receiver.stop();
    let url = receiver.url("/-/reload");
    let actions = actions(&["--webhook", &url, "--webhook-retries", "20"]);
    // A current-thread runtime: the spawned run logs on this thread, where `logs` captures.
    let task = tokio::spawn(async move { run(&actions).await });
    let start = Instant::now();
    while !logs
        .lines()
        .iter()
        .any(|line| line.contains("cannot connect: connection refused (attempt 1 of 21)"))
    {
        assert!(
            start.elapsed() < DEADLINE,
            "no refused attempt logged: {:#?}",
            logs.lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.resume();
    let done = task.await.expect("task").expect("answered once up");
    assert!(
        done[0].starts_with(&format!("webhook POST {url} → 200 (attempt ")),
        "{done:?}"
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "only the attempt after the outage arrived"
    );
}

#[tokio::test]
async fn a_hanging_receiver_hits_the_timeout() {
    let receiver = HttpReceiver::start();
    receiver.script(Action::Hang, 1);
    let url = receiver.url("/hook");
    let done = run(&actions(&[
        "--webhook",
        &url,
        "--webhook-timeout",
        "2s",
        "--webhook-retries",
        "1",
    ]))
    .await
    .expect("the second attempt is answered");
    assert!(
        done[0].starts_with(&format!("webhook POST {url} → 200 (attempt 2")),
        "{done:?}"
    );

    receiver.script(Action::Hang, 5);
    let err = run(&actions(&[
        "--webhook",
        &url,
        "--webhook-timeout",
        "300ms",
        "--webhook-retries",
        "0",
    ]))
    .await
    .expect_err("hangs");
    assert_eq!(
        err.message,
        "no answer within 300ms (--webhook-timeout) (gave up after 1 attempt, --webhook-retries 0)"
    );
}

/// A peer that is not an HTTP server: it answers `garbage` (or hangs up) and closes.
async fn garbage_peer(answer: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0_u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.write_all(answer).await;
            let _ = stream.shutdown().await;
        }
    });
    port
}

#[tokio::test]
async fn garbage_answers_and_hang_ups_fail_with_a_short_reason() {
    for (answer, reason) in [
        (
            &b"garbage\r\n\r\n"[..],
            "the answer is not HTTP/1.1: invalid HTTP version parsed",
        ),
        (
            b"HTTP/1.1 999999 Whatever\r\n\r\n",
            "the answer is not HTTP/1.1: invalid HTTP status-code parsed",
        ),
        (b"\x00\xff\x16\x03", "the answer is not HTTP/1.1"),
        (b"", "connection closed before message completed"),
    ] {
        let port = garbage_peer(answer).await;
        let url = format!("http://hook:{ODD_PASSWORD}@127.0.0.1:{port}/hook");
        let err = run(&actions(&["--webhook", &url, "--webhook-retries", "1"]))
            .await
            .expect_err("not HTTP");
        assert_eq!(err.action, format!("webhook POST http://127.0.0.1:{port}/hook"));
        assert!(err.message.starts_with(reason), "{answer:?}: {err}");
        assert!(
            err.message.ends_with(" (gave up after 2 attempts)"),
            "{answer:?}: {err}"
        );
        assert!(
            !err.message.contains("127.0.0.1"),
            "the URL is in the action, once: {err}"
        );
        assert!(err.message.len() < 300, "{err}");
        assert_no_secret(&err.to_string());
    }

    let receiver = HttpReceiver::start();
    receiver.script(Action::Close, 1);
    let err = run(&actions(&[
        "--webhook",
        &receiver.url("/hook"),
        "--webhook-retries",
        "0",
    ]))
    .await
    .expect_err("hung up");
    assert_eq!(
        err.message,
        "connection closed before message completed (gave up after 1 attempt, --webhook-retries 0)"
    );
}

// ---------------------------------------------------------------------------------------
// Verify

#[tokio::test]
async fn verify_polls_until_the_app_answers_2xx() {
    let receiver = HttpReceiver::start();
    receiver.fail_next(503, 3);
    let url = format!("http://probe:{ODD_PASSWORD}@127.0.0.1:{}/ready", receiver.port());
    let done = run(&actions(&["--verify-url", &url, "--verify-timeout", "1m"]))
        .await
        .expect("verified");
    assert!(
        done[0].starts_with(&format!("verify {} → 200 after ", receiver.url("/ready"))),
        "{done:?}"
    );
    let requests = receiver.requests();
    let statuses: Vec<Option<u16>> = requests.iter().map(|request| request.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(503), Some(200)]);
    assert!(requests.iter().all(|request| request.method == "GET"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(basic("probe", ODD_PASSWORD).as_str())
    );

    // The body must match too: a 2xx from the old config does not count.
    receiver.script(Action::Body(200, "version 1".into()), 2);
    receiver.script(Action::Body(200, "version 2".into()), 1);
    let done = run(&actions(&[
        "--verify-url",
        &url,
        "--verify-body",
        r"version\s+2",
        "--verify-timeout",
        "1m",
    ]))
    .await
    .expect("verified");
    assert!(done[0].contains("→ 200"), "{done:?}");
    assert_eq!(receiver.requests().len(), 7);
}

#[tokio::test]
async fn verify_gives_up_at_its_deadline_saying_what_it_saw_last() {
    let receiver = HttpReceiver::start();
    receiver.fail_next(503, 10_000);
    let url = format!("http://probe:{ODD_PASSWORD}@127.0.0.1:{}/ready", receiver.port());
    let err = run(&actions(&["--verify-url", &url, "--verify-timeout", "3s"]))
        .await
        .expect_err("never 2xx");
    assert_eq!(err.action, format!("verify {}", receiver.url("/ready")));
    assert!(
        err.message
            .starts_with("not verified within 3s (--verify-timeout, "),
        "{err}"
    );
    assert!(
        err.message.ends_with("last answer: HTTP 503 Service Unavailable"),
        "{err}"
    );
    assert_no_secret(&err.to_string());

    receiver.stop();
    let err = run(&actions(&["--verify-url", &url, "--verify-timeout", "300ms"]))
        .await
        .expect_err("down");
    assert!(
        err.message
            .ends_with("last error: cannot connect: connection refused"),
        "{err}"
    );

    receiver.resume();
    receiver.clear_script();
    receiver.script(Action::Hang, 10);
    let err = run(&actions(&["--verify-url", &url, "--verify-timeout", "300ms"]))
        .await
        .expect_err("hangs");
    assert!(err.message.contains("last error: no answer within"), "{err}");
}

/// Order: the signal first; when it fails, no webhook is called.
#[tokio::test]
async fn a_failed_signal_stops_the_run_before_the_webhooks() {
    let receiver = HttpReceiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pid");
    let err = run(&actions(&[
        "--pid-file",
        &missing.display().to_string(),
        "--webhook",
        &receiver.url("/hook"),
    ]))
    .await
    .expect_err("no pid file");
    assert!(err.action.starts_with("signal HUP"), "{err}");
    assert!(receiver.requests().is_empty());

    // And a working signal is followed by the webhook, then the verify.
    let mut program = NamedProgram::new("/bin/sleep", 8);
    let pid = program.spawn(&["1000"]);
    let done = run(&actions(&[
        "--verify-url",
        &receiver.url("/ready"),
        "--webhook",
        &receiver.url("/hook"),
        "--signal",
        "TERM",
        "--process-name",
        &program.name,
    ]))
    .await
    .expect("all three");
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done[0].starts_with("signal TERM"), "{done:?}");
    assert!(done[1].starts_with("webhook POST"), "{done:?}");
    assert!(done[2].starts_with("verify"), "{done:?}");
    let paths: Vec<String> = receiver
        .requests()
        .iter()
        .map(|request| request.path.clone())
        .collect();
    assert_eq!(paths, ["/hook", "/ready"]);
    assert_eq!(program.wait_for_signal(pid), Some(15));
}
