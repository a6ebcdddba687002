//! The `pitcrew-tail` binary as a pod runs it: bad input (each must fail clearly, or wait and
//! say why), SIGTERM, `--exit-on`, the admin server, a 100 MB line.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-tail");
/// Generous: a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn tail(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("--termination-log=/dev/null")
        .stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    tail(args).output().unwrap()
}

/// A running pitcrew-tail whose stdout and stderr go to files (so the test can read them
/// while it runs), killed when dropped.
struct Running {
    child: Child,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let child = tail(args)
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Running { child, dir }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, found: impl Fn(&Running) -> bool) {
        let start = Instant::now();
        while !found(self) {
            assert!(
                start.elapsed() < DEADLINE,
                "{what} did not happen within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < DEADLINE,
                "still running after {DEADLINE:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// `GET path` on the admin server: (status, body).
fn admin_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_glob_matching_nothing_waits_says_so_and_picks_the_file_up_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("app dir with spaces/*.log");
    std::fs::create_dir(dir.path().join("app dir with spaces")).unwrap();
    let mut tail = Running::start(&["-F", pattern.to_str().unwrap()]);
    tail.wait_for("a 'no file matches' message", |t| {
        t.stderr().contains("no file matches")
    });
    append(&dir.path().join("app dir with spaces/late.log"), "first line\n");
    tail.wait_for("the late file's line", |t| t.stdout().contains("first line\n"));
    tail.signal("TERM");
    assert_eq!(tail.wait_exit(), 0, "stderr:\n{}", tail.stderr());
}

#[test]
fn without_follow_it_prints_the_files_and_exits_like_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "one\ntwo\nthree\nno newline at the end");
    let output = run(&["-n", "2", log.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "three\nno newline at the end\n"
    );
    let output = run(&["-n+2", log.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "two\nthree\nno newline at the end\n"
    );
}

#[test]
fn headers_name_each_file_like_gnu_tail_with_several_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, "from a\n");
    append(&b, "from b\n");
    let output = run(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("==> {} <==\nfrom a\n", a.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("==> {} <==\nfrom b\n", b.display())),
        "{stdout}"
    );
    let output = run(&["-q", a.to_str().unwrap(), b.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("==>"), "{stdout}");
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would take it as a FILE. The error names the flag and exits 64, without that tip.
#[test]
fn an_unknown_flag_gets_no_double_dash_tip() {
    let output = run(&["--timout", "5s", "/var/log/app.log"]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(text.contains("unexpected argument '--timout' found"), "{text}");
    assert!(!text.contains("as a value"), "{text}");
}

#[test]
fn malformed_sink_urls_exit_64_naming_the_value_but_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "x\n");
    for sink in [
        "ftp://logs.example.com/",
        "http://user:s3cr3t-pa55@logs.example.com:99999/ingest",
        "loki+http://",
        "elasticsearch+http://user:s3cr3t-pa55@es:9200/",
        "syslog+tcp://",
        "not a url at all",
        "",
    ] {
        let output = run(&["-F", log.to_str().unwrap(), "--sink", sink]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "--sink {sink:?}: {stderr}");
        assert!(
            !stderr.contains("s3cr3t-pa55"),
            "--sink {sink:?} leaked the password: {stderr}"
        );
        assert!(
            stderr.contains("sink"),
            "--sink {sink:?}: the error does not say which flag: {stderr}"
        );
    }
}

#[test]
fn a_corrupt_checkpoint_exits_78_and_says_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "x\n");
    let checkpoint = dir.path().join("checkpoint");
    for garbage in [
        &b"\x00\xff\xfe garbage"[..],
        b"# pitcrew-follow checkpoint v999\n",
        b"not a checkpoint\n",
    ] {
        std::fs::write(&checkpoint, garbage).unwrap();
        let output = run(&[
            "-F",
            log.to_str().unwrap(),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(&checkpoint.display().to_string()), "{stderr}");
        assert!(stderr.contains("delete"), "no recovery hint: {stderr}");
        // Nothing already there is lost: the corrupt file is left for a person to look at.
        assert_eq!(std::fs::read(&checkpoint).unwrap(), garbage);
    }
}

/// A glob that would match the checkpoint itself is refused: the sidecar would ship its own
/// bookkeeping as log lines. A dot-file checkpoint beside the logs is fine.
#[test]
fn a_checkpoint_the_patterns_would_follow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*");
    let checkpoint = dir.path().join("checkpoint");
    let output = run(&[
        "-F",
        pattern.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("its own checkpoint"), "{stderr}");
    let hidden = dir.path().join(".checkpoint");
    append(&dir.path().join("a.log"), "x\n");
    let output = run(&[
        "-q",
        pattern.to_str().unwrap(),
        "--checkpoint",
        hidden.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "x\n");
}

#[test]
fn a_checkpoint_in_a_directory_that_does_not_exist_fails_at_start_with_74() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "x\n");
    let checkpoint = dir.path().join("missing/dir/checkpoint");
    let output = run(&[
        "-F",
        log.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("missing/dir/checkpoint"), "{stderr}");
}

#[test]
fn a_100_mb_line_is_cut_with_a_marker_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("huge.log");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        file.write_all(b"before\n").unwrap();
        let block = vec![b'x'; 1024 * 1024];
        for _ in 0..100 {
            file.write_all(&block).unwrap();
        }
        file.write_all(b"\nafter\n").unwrap();
    }
    let rss_report = dir.path().join("rss");
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        assert!(
            !pitcrew_testkit::on_ci(),
            "GNU time is missing (apt-get install time)"
        );
        eprintln!("SKIPPED: GNU time is missing");
        return;
    }
    let output = Command::new(time)
        .args(["-f", "%M", "-o"])
        .arg(&rss_report)
        .arg(BIN)
        .args(["--max-line-bytes=64KiB", "--termination-log=/dev/null"])
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = output.stdout;
    let lines: Vec<&[u8]> = stdout.split(|&b| b == b'\n').collect();
    assert_eq!(lines[0], b"before");
    assert!(
        lines[1].starts_with(&[b'x'; 1000]),
        "the long line's start is missing"
    );
    assert!(
        lines[1].len() < 128 * 1024,
        "the long line was not cut: {} bytes",
        lines[1].len()
    );
    assert!(
        lines[1].ends_with(pitcrew_follow::TRUNCATION_MARKER),
        "no truncation marker at the end of the cut line"
    );
    assert_eq!(lines[2], b"after");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("huge.log"),
        "the cut is not logged with the file: {stderr}"
    );
    let rss_kib: u64 = std::fs::read_to_string(&rss_report)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        rss_kib < 48 * 1024,
        "peak RSS {rss_kib} KiB for a 100 MB line: it was buffered whole"
    );
}

#[test]
fn sigterm_delivers_what_was_read_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut text = String::new();
    for n in 0..20_000 {
        let _ = writeln!(text, "line {n}");
    }
    append(&log, &text);
    let mut tail = Running::start(&["-F", log.to_str().unwrap(), "--output=json"]);
    tail.wait_for("the last line", |t| t.stdout().contains("\"line 19999\""));
    tail.signal("TERM");
    assert_eq!(tail.wait_exit(), 0, "stderr:\n{}", tail.stderr());
    let stdout = tail.stdout();
    assert_eq!(stdout.lines().count(), 20_000);
    for line in stdout.lines().take(3) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record["time"].is_string(), "{line}");
        assert_eq!(record["file"], log.display().to_string(), "{line}");
    }
    assert!(
        tail.stderr().contains("SIGTERM"),
        "the stop is not logged: {}",
        tail.stderr()
    );
}

#[test]
fn exit_on_reads_everything_delivers_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let done = dir.path().join("done");
    let mut tail = Running::start(&["-F", log.to_str().unwrap(), "--exit-on", done.to_str().unwrap()]);
    append(&log, "started\n");
    tail.wait_for("the first line", |t| t.stdout().contains("started"));
    append(&log, "working\nfinished, no newline");
    std::fs::write(&done, "").unwrap();
    assert_eq!(tail.wait_exit(), 0, "stderr:\n{}", tail.stderr());
    assert_eq!(tail.stdout(), "started\nworking\nfinished, no newline\n");
}

#[test]
fn the_admin_server_reports_metrics_and_readyz_fails_while_a_sink_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a line for a sink that is down\n");
    let admin = free_port();
    // Nothing listens on this port: every send fails.
    let down = free_port();
    let tail = Running::start(&[
        "-F",
        log.to_str().unwrap(),
        &format!("--admin-addr=127.0.0.1:{admin}"),
        &format!("--sink=http://127.0.0.1:{down}/ingest"),
        "--ready-sink-failure=1s",
        "--retry-max-delay=1s",
    ]);
    tail.wait_for("the admin server", |_| {
        TcpStream::connect(("127.0.0.1", admin)).is_ok()
    });
    assert_eq!(admin_get(admin, "/healthz").0, 200);
    tail.wait_for("/readyz to fail", |_| admin_get(admin, "/readyz").0 == 503);
    let (status, metrics) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "pitcrew_tail_read_lines_total 1",
        "pitcrew_tail_delivered_records_total{sink=",
        "pitcrew_tail_retries_total{sink=",
        "pitcrew_tail_lag_bytes{file=",
        "pitcrew_tail_files 1",
    ] {
        assert!(metrics.contains(name), "no {name:?} in /metrics:\n{metrics}");
    }
    assert!(
        tail.stderr().contains(&format!("127.0.0.1:{down}")),
        "{}",
        tail.stderr()
    );
}

/// The receiver is down for a while and comes back on the same port: reading pauses rather
/// than dropping, and every line arrives exactly once, in order.
#[test]
fn a_sink_outage_loses_nothing_and_duplicates_nothing() {
    use pitcrew_testkit::http_receiver::HttpReceiver;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let receiver = HttpReceiver::start();
    let mut tail = Running::start(&[
        "-F",
        log.to_str().unwrap(),
        &format!("--sink={}", receiver.url("/ingest")),
        "--batch-max-wait=100ms",
        "--retry-max-delay=500ms",
        "--queue-max-bytes=64KiB",
        "--batch-max-bytes=16KiB",
    ]);
    let numbered = |range: std::ops::Range<u32>| {
        let mut text = String::new();
        for n in range {
            let _ = writeln!(text, "line {n:06}");
        }
        text
    };
    let delivered = || -> Vec<u32> {
        receiver
            .requests()
            .iter()
            .filter(|request| request.succeeded())
            .flat_map(|request| {
                request
                    .text()
                    .lines()
                    .filter_map(|line| {
                        let record: serde_json::Value = serde_json::from_str(line).ok()?;
                        record["message"].as_str()?.strip_prefix("line ")?.parse().ok()
                    })
                    .collect::<Vec<u32>>()
            })
            .collect()
    };
    append(&log, &numbered(0..1000));
    tail.wait_for("the first lines", |_| delivered().len() >= 1000);
    receiver.stop();
    // Far more than the queue holds: reading must pause, not drop.
    append(&log, &numbered(1000..20_000));
    tail.wait_for("a failed send to be logged", |t| t.stderr().contains("retry"));
    receiver.resume();
    tail.wait_for("every line", |_| delivered().len() >= 20_000);
    tail.signal("TERM");
    assert_eq!(tail.wait_exit(), 0, "stderr:\n{}", tail.stderr());
    assert_eq!(delivered(), (0..20_000).collect::<Vec<u32>>());
}
