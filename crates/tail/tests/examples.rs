//! Every `pitcrew/tail` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the pod's volumes made in a temp dir and the paths in the args pointed
//! there, the env (downward API and Secret values) as the process would see it, and every sink
//! pointed at a local HTTP receiver (no real Loki or Elasticsearch runs here). Lines are written
//! into the files the container follows; each container must deliver them, then exit 0 —
//! by its `--exit-on` file when it has one, else by SIGTERM as the kubelet stops a sidecar.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::examples;
use pitcrew_testkit::http_receiver::HttpReceiver;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-tail");
const DEADLINE: Duration = Duration::from_secs(60);

/// `--sink=SCHEME://[USERINFO@]HOST[:PORT]/PATH` with HOST:PORT replaced by the receiver's
/// (and https by http: the receiver speaks plain HTTP). The user-info runs to the last `@`,
/// so a Secret with `/`, `#` or `@` in it stays whole.
fn to_receiver(sink: &str, receiver: &HttpReceiver) -> String {
    let (scheme, rest) = sink.split_once("://").expect("a sink URL");
    let scheme = scheme.replace("https", "http");
    let (userinfo, hostpath) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let path = hostpath.find('/').map_or("", |slash| &hostpath[slash..]);
    format!("{scheme}://{userinfo}127.0.0.1:{}{path}", receiver.port())
}

/// The files a container follows (its positional args), with globs made concrete.
fn followed(args: &[String]) -> Vec<PathBuf> {
    args.iter()
        .filter(|arg| !arg.starts_with('-'))
        .map(|arg| PathBuf::from(arg.replace("*.log.1", "app.log.1").replace("*.log", "app.log")))
        .collect()
}

fn write_lines(path: &Path, json: bool, marker: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = String::new();
    for n in 0..3 {
        if json {
            let _ = writeln!(text, "{{\"level\":\"info\",\"msg\":\"{marker}-{n}\"}}");
        } else {
            let _ = writeln!(text, "{marker}-{n} GET /healthz 200");
        }
    }
    if json {
        // A stack trace after a record: joined to it by --multiline-start.
        text.push_str("{\"level\":\"error\",\"msg\":\"boom\"}\n  at orders.charge(Charge.java:42)\n");
    }
    std::fs::write(path, text).unwrap();
}

// One container's life read top to bottom: volumes, args, run, deliver, stop, check.
#[allow(clippy::too_many_lines)]
#[test]
fn every_tail_container_in_the_examples_delivers_and_stops_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/tail");
    assert!(
        containers.len() >= 3,
        "expected the three tail examples, found {}",
        containers.len()
    );
    for (pod, container) in containers {
        let context = &container.context;
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let receiver = HttpReceiver::start();
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args: Vec<String> = container
            .redirected_args(volumes.path())
            .into_iter()
            .map(|arg| match arg.strip_prefix("--sink=") {
                Some(sink) => format!("--sink={}", to_receiver(sink, &receiver)),
                None if arg.starts_with("--admin-addr=") => format!("--admin-addr=127.0.0.1:{admin_port}"),
                None => arg,
            })
            .collect();
        let env: HashMap<String, String> = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-tail"
            );
        }
        let has_sink = args.iter().any(|arg| arg.starts_with("--sink="));
        let json = args.iter().any(|arg| arg == "--parse=json");
        let marker = format!("marker-{}", container.name);
        for path in followed(&args) {
            write_lines(&path, json, &marker);
        }

        let out = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(&args)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(out.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let stderr = || std::fs::read_to_string(out.path().join("stderr")).unwrap_or_default();
        let delivered = || {
            if has_sink {
                receiver
                    .requests()
                    .iter()
                    .map(pitcrew_testkit::http_receiver::ReceivedRequest::text)
                    .collect::<String>()
            } else {
                std::fs::read_to_string(out.path().join("stdout")).unwrap_or_default()
            }
        };
        let start = Instant::now();
        while !delivered().contains(&format!("{marker}-2")) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{context}: exited early with {status}\n{}", stderr());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{context}: nothing delivered\n{}",
                stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        match args.iter().find_map(|arg| arg.strip_prefix("--exit-on=")) {
            Some(done) => std::fs::write(done, "").unwrap(),
            None => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!(
                    "{context}: still running {DEADLINE:?} after its stop\n{}",
                    stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "{context}\n{}", stderr());
        let delivered = delivered();
        // A parsed JSON line carries its marker twice: in `message` (the line) and in `msg`.
        let per_record = if json { 2 } else { 1 };
        for n in 0..3 {
            assert_eq!(
                delivered.matches(&format!("{marker}-{n}")).count(),
                followed(&args).len() * per_record,
                "{context}: {marker}-{n} not delivered exactly once per file:\n{delivered}"
            );
        }
        if json {
            assert!(
                delivered.contains("Charge.java:42"),
                "{context}: the stack trace is missing:\n{delivered}"
            );
        }
        assert!(
            !stderr().contains(examples::SECRET),
            "{context}: a Secret's value reached the log:\n{}",
            stderr()
        );
    }
}
