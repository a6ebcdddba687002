//! The all-in-one `pitcrew` binary as the `pitcrew/pitcrew` image runs it: dispatch on the
//! first argument (`args: ["wait", …]`) and on the program name (`command: ["/wait"]`, links
//! made here in a temp dir), the dispatcher's own help, version, list and usage errors, and
//! every tool run for real through it with its own exit codes, termination log and signals.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pitcrew::{TOOLS, VERSION};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew");

/// A temp dir for one test: the termination log goes there (never to /dev/termination-log
/// of the machine running the tests), and so do links and files.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn termination_log(&self) -> PathBuf {
        self.path("termination-log")
    }

    /// The termination log's text, empty when nothing was written.
    fn reason(&self) -> String {
        std::fs::read_to_string(self.termination_log()).unwrap_or_default()
    }

    /// `program` (the binary, or a link to it) with `args`, in an environment without the
    /// variables that would change what the tools do.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .env("PITCREW_TERMINATION_LOG", self.termination_log())
            .stdin(Stdio::null());
        for name in [
            "PITCREW_LOG_FORMAT",
            "PITCREW_LOG_LEVEL",
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            command.env_remove(name);
        }
        command
    }

    /// `pitcrew ARGS…`.
    fn pitcrew(&self, args: &[&str]) -> Command {
        self.command(BIN, args)
    }

    /// The binary run with `argv0` as its program name, as a link of that name would run it.
    fn as_program(&self, argv0: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut command = self.command(BIN, args);
        command.arg0(argv0);
        command
    }

    /// A symbolic link named `name` in the sandbox pointing at the binary, as in the image.
    fn link(&self, name: &str) -> PathBuf {
        let link = self.path(name);
        std::os::unix::fs::symlink(BIN, &link).unwrap();
        link
    }
}

fn run(command: &mut Command) -> Output {
    command.output().expect("pitcrew runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn closed_target() -> String {
    format!("tcp://127.0.0.1:{}", pitcrew_testkit::free_port())
}

#[test]
fn help_lists_every_tool_and_shows_both_forms_in_a_pod_spec() {
    let sandbox = Sandbox::new();
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let output = run(&mut sandbox.pitcrew(args));
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        let help = stdout(&output);
        assert!(output.stderr.is_empty(), "{args:?}: {}", stderr(&output));
        assert!(help.starts_with(&format!("pitcrew {VERSION}: ")), "{help}");
        for tool in TOOLS {
            assert!(
                help.lines()
                    .any(|line| line.trim_start().starts_with(tool.name) && line.ends_with(tool.description)),
                "{} is not listed with its description:\n{help}",
                tool.name
            );
        }
        for needle in [
            "pitcrew TOOL [ARGS]...",
            "TOOL [ARGS]...",
            &format!("image: pitcrew/pitcrew:{VERSION}"),
            "command: [\"/render\"]",
            "args: [\"wait\", ",
            "Exit codes:",
        ] {
            assert!(help.contains(needle), "{needle:?} missing:\n{help}");
        }
    }
    assert_eq!(sandbox.reason(), "", "help is no failure");
}

/// An image run without args must not look like a success: an init container that names no
/// tool would otherwise pass silently.
#[test]
fn naming_no_tool_is_a_usage_error_with_the_help() {
    let sandbox = Sandbox::new();
    for args in [&[][..], &["--"]] {
        let output = run(&mut sandbox.pitcrew(args));
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        assert!(output.stdout.is_empty(), "{}", stdout(&output));
        let text = stderr(&output);
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("pitcrew: no tool given; the tools are fetch, "),
            "{text}"
        );
        assert!(
            text.contains(&format!("image: pitcrew/pitcrew:{VERSION}")),
            "{text}"
        );
        assert_eq!(sandbox.reason(), first);
    }
}

#[test]
fn version_is_the_workspace_version_for_pitcrew_and_every_tool() {
    let sandbox = Sandbox::new();
    for flag in ["--version", "-V"] {
        let output = run(&mut sandbox.pitcrew(&[flag]));
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(stdout(&output), format!("pitcrew {VERSION}\n"));
    }
    for tool in TOOLS {
        let output = run(&mut sandbox.pitcrew(&[tool.name, "--version"]));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            tool.name,
            stderr(&output)
        );
        assert_eq!(stdout(&output), format!("pitcrew-{} {VERSION}\n", tool.name));
    }
}

/// `--list` is what the image build makes links from: it must hold every tool crate, so a
/// new tool that is not added to `TOOLS` fails here rather than missing from the image.
#[test]
fn list_names_every_tool_crate_one_per_line() {
    let output = run(&mut Sandbox::new().pitcrew(&["--list"]));
    assert_eq!(output.status.code(), Some(0));
    let listed: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut with_binary: Vec<String> = std::fs::read_dir(crates)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("src/main.rs").is_file() && dir.join("Cargo.toml").is_file())
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "pitcrew")
        .collect();
    with_binary.sort();
    assert_eq!(
        listed, with_binary,
        "crates/ holds these tools; pitcrew --list says"
    );
    assert!(listed.len() >= 7, "{listed:?}");
}

#[test]
fn an_unknown_tool_is_a_usage_error_that_names_it_and_lists_the_tools() {
    let sandbox = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["waitt", "tcp://db:5432"], "no tool named \"waitt\""),
        (&[""], "no tool named \"\""),
        (&["pitcrew"], "no tool named \"pitcrew\""),
        (&["WAIT"], "no tool named \"WAIT\""),
        (&["wait ", "tcp://db:5432"], "no tool named \"wait \""),
        (&["pitcrew-"], "no tool named \"pitcrew-\""),
        (&["--timeout", "5s"], "no tool named \"--timeout\""),
        (&["-x"], "no tool named \"-x\""),
        // After `--`, `--help` is a (missing) tool's name, not the option.
        (&["--", "--help"], "no tool named \"--help\""),
        (&["help", "waitt"], "no tool named \"waitt\""),
        (
            &["help", "wait", "tail"],
            "help takes one tool name, not also \"tail\"",
        ),
    ];
    for (args, problem) in cases {
        let _ = std::fs::remove_file(sandbox.termination_log());
        let output = run(&mut sandbox.pitcrew(args));
        assert_eq!(output.status.code(), Some(64), "{args:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", stdout(&output));
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        assert!(
            text.starts_with(&format!("pitcrew: {problem}; the tools are ")),
            "{text}"
        );
        for tool in TOOLS {
            assert!(text.contains(tool.name), "{} missing: {text}", tool.name);
        }
        assert!(text.contains("pitcrew TOOL [ARGS]..."), "{text}");
        assert_eq!(sandbox.reason(), text.trim_end(), "{args:?}");
    }
}

#[test]
fn a_first_argument_that_is_not_utf8_is_named_not_a_panic() {
    let sandbox = Sandbox::new();
    let output = run(sandbox.pitcrew(&[]).arg(OsString::from_vec(b"wa\xffit".to_vec())));
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).starts_with("pitcrew: no tool named \"wa\u{fffd}it\""),
        "{}",
        stderr(&output)
    );
}

/// Every way to reach a tool's `--help` prints the tool's own, naming it: clap's `Usage:` line
/// says `pitcrew-TOOL` whatever the program name.
#[test]
fn each_tools_help_is_the_same_whichever_way_it_is_called() {
    let sandbox = Sandbox::new();
    for tool in TOOLS {
        let binary = tool.binary();
        let forms: Vec<(String, Command)> = vec![
            (
                format!("pitcrew {} --help", tool.name),
                sandbox.pitcrew(&[tool.name, "--help"]),
            ),
            (
                format!("pitcrew help {}", tool.name),
                sandbox.pitcrew(&["help", tool.name]),
            ),
            (
                format!("pitcrew {binary} --help"),
                sandbox.pitcrew(&[&binary, "--help"]),
            ),
            (
                format!("pitcrew -- {} --help", tool.name),
                sandbox.pitcrew(&["--", tool.name, "--help"]),
            ),
            (
                format!("/{} --help", tool.name),
                sandbox.as_program(format!("/{}", tool.name), &["--help"]),
            ),
            (
                format!("/usr/local/bin/{binary} --help"),
                sandbox.as_program(format!("/usr/local/bin/{binary}"), &["--help"]),
            ),
        ];
        let mut first: Option<String> = None;
        for (form, mut command) in forms {
            let output = run(&mut command);
            assert_eq!(output.status.code(), Some(0), "{form}: {}", stderr(&output));
            let help = stdout(&output);
            assert!(help.contains(&format!("Usage: {binary}")), "{form}:\n{help}");
            assert!(
                help.contains(&format!("image: pitcrew/{}:", tool.name)),
                "{form}:\n{help}"
            );
            match &first {
                None => first = Some(help),
                Some(expected) => assert_eq!(&help, expected, "{form} differs"),
            }
        }
    }
}

/// The program name picks the tool by its file name only: odd names fall back to dispatch on
/// the first argument, where `--version` is pitcrew's own.
#[test]
fn odd_program_names_fall_back_to_the_first_argument() {
    let sandbox = Sandbox::new();
    let version_of = |argv0: &str| {
        let output = run(&mut sandbox.as_program(argv0, &["--version"]));
        assert_eq!(output.status.code(), Some(0), "{argv0:?}: {}", stderr(&output));
        stdout(&output)
    };
    for (argv0, expected) in [
        ("wait", "pitcrew-wait"),
        ("/wait", "pitcrew-wait"),
        ("./bin/pitcrew-tail", "pitcrew-tail"),
        ("../x/../render", "pitcrew-render"),
        ("pitcrew", "pitcrew"),
        ("/pitcrew", "pitcrew"),
        ("", "pitcrew"),
        ("/", "pitcrew"),
        ("/wait/..", "pitcrew"),
        ("WAIT", "pitcrew"),
        ("wait.sh", "pitcrew"),
        ("pitcrew-", "pitcrew"),
        ("-wait", "pitcrew"),
        ("pitcrew-pitcrew", "pitcrew"),
    ] {
        assert_eq!(
            version_of(argv0),
            format!("{expected} {VERSION}\n"),
            "argv[0] = {argv0:?}"
        );
    }
}

/// wait for a listener this test holds, through links named as in the image and through the
/// first argument; then the control: a closed port gives wait's timeout code and summary.
#[test]
fn wait_runs_for_real_and_keeps_its_exit_codes_and_termination_log() {
    let sandbox = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("tcp://{}", listener.local_addr().unwrap());
    let link = sandbox.link("wait");
    let prefixed = sandbox.link("pitcrew-wait");
    for mut command in [
        sandbox.pitcrew(&["wait", "--timeout", "60s", &open]),
        sandbox.command(&link, &["--timeout", "60s", &open]),
        sandbox.command(&prefixed, &["--timeout", "60s", &open]),
    ] {
        let output = run(&mut command);
        assert_eq!(output.status.code(), Some(0), "{command:?}: {}", stderr(&output));
    }
    assert_eq!(sandbox.reason(), "");

    let closed = closed_target();
    for mut command in [
        sandbox.pitcrew(&["wait", "--timeout", "1s", &closed]),
        sandbox.command(&link, &["--timeout", "1s", &closed]),
    ] {
        let _ = std::fs::remove_file(sandbox.termination_log());
        let output = run(&mut command);
        assert_eq!(
            output.status.code(),
            Some(124),
            "{command:?}: {}",
            stderr(&output)
        );
        let text = stderr(&output);
        assert!(
            text.contains(&format!("attempt 1: {closed}: connection refused")),
            "{text}"
        );
        let reason = sandbox.reason();
        assert!(
            reason.starts_with("timed out after 1s: 1 of 1 target(s) not ready"),
            "{reason}"
        );
    }
}

/// A tool's usage error keeps the tool's code (64), its clap message and its termination log.
#[test]
fn a_tools_usage_error_is_its_own() {
    let sandbox = Sandbox::new();
    let output = run(&mut sandbox.pitcrew(&["wait", "--timout", "5s", "tcp://db:5432"]));
    assert_eq!(output.status.code(), Some(64));
    let text = stderr(&output);
    assert!(text.contains("unexpected argument '--timout' found"), "{text}");
    assert!(text.contains("a similar argument exists: '--timeout'"), "{text}");
    assert!(text.contains("Usage: pitcrew-wait"), "{text}");
    assert!(sandbox.reason().contains("'--timout'"), "{}", sandbox.reason());
}

/// Signals reach the tool: wait's handlers are installed by wait's own code, and nothing in
/// the dispatcher swallows them.
#[test]
fn sigterm_ends_a_wait_through_the_multicall_with_143() {
    let sandbox = Sandbox::new();
    let link = sandbox.link("wait");
    for mut command in [
        sandbox.pitcrew(&["wait", "--timeout", "0", &closed_target()]),
        sandbox.command(&link, &["--timeout", "0", &closed_target()]),
    ] {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("a first log line").unwrap();
        assert!(first.contains("waiting for"), "{first}");
        std::thread::spawn(move || for _ in lines {});
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > deadline {
                child.kill().unwrap();
                panic!("{command:?} ignored SIGTERM for {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(
            status.code(),
            Some(143),
            "{command:?}: exited with wait's code, not by the signal"
        );
    }
}

#[test]
fn render_renders_a_template_tree_through_the_multicall() {
    let sandbox = Sandbox::new();
    let templates = sandbox.path("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("app.conf"),
        "host=${DB_HOST}\nport=${DB_PORT:-5432}\n",
    )
    .unwrap();
    let out = sandbox.path("out");
    let output = run(sandbox
        .pitcrew(&[
            "render",
            "--strict",
            "--in",
            templates.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("DB_HOST", "db.local"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(out.join("app.conf")).unwrap(),
        "host=db.local\nport=5432\n"
    );

    // envsubst's shape through a link: stdin to stdout.
    let link = sandbox.link("render");
    let mut child = sandbox
        .command(&link, &[])
        .env("NAME", "world")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello $NAME\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello world\n");

    // A missing variable under --strict: render's own code and reason.
    let output = run(&mut sandbox.pitcrew(&[
        "render",
        "--strict",
        "--in",
        templates.to_str().unwrap(),
        "--out",
        sandbox.path("out2").to_str().unwrap(),
    ]));
    assert_ne!(output.status.code(), Some(0));
    assert!(sandbox.reason().contains("DB_HOST"), "{}", sandbox.reason());
}

/// golang-migrate's single-dash flags are rewritten after the program name: with dispatch on
/// the first argument that name is `pitcrew-migrate`, not `migrate`'s first flag.
#[test]
fn migrate_takes_golang_migrates_single_dash_flags_through_the_multicall() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("migrations");
    std::fs::create_dir(&dir).unwrap();
    let path = format!("-path={}", dir.display());
    for (n, mut command) in [
        (
            1,
            sandbox.pitcrew(&["migrate", &path, "create", "-seq", "add_users"]),
        ),
        (
            2,
            sandbox.as_program("/migrate", &[&path, "create", "-seq", "add_orders"]),
        ),
    ] {
        let output = run(&mut command);
        assert_eq!(output.status.code(), Some(0), "{command:?}: {}", stderr(&output));
        let title = if n == 1 { "add_users" } else { "add_orders" };
        for direction in ["up", "down"] {
            let file = dir.join(format!("00000{n}_{title}.{direction}.sql"));
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
    let output = run(&mut sandbox.pitcrew(&["migrate", "-table=x", "up"]));
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).contains("unknown flag -table"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn prepare_and_validate_run_through_the_multicall() {
    let sandbox = Sandbox::new();
    let deep = sandbox.path("data/cache/a");
    let output = run(&mut sandbox.pitcrew(&["prepare", "--mkdir", deep.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(deep.is_dir());

    let good = sandbox.path("good.json");
    std::fs::write(&good, "{\"a\": 1}\n").unwrap();
    let bad = sandbox.path("bad.json");
    std::fs::write(&bad, "{\"a\": \n").unwrap();
    let link = sandbox.link("pitcrew-validate");
    let output = run(&mut sandbox.command(&link, &[good.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run(&mut sandbox.pitcrew(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("bad.json"), "{}", stderr(&output));
    assert!(sandbox.reason().contains("bad.json"), "{}", sandbox.reason());
}

/// tail through a link named `pitcrew-tail`: without -F it reads the file once and exits.
#[test]
fn tail_prints_a_file_through_a_link() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("access.log");
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let link = sandbox.link("pitcrew-tail");
    let output = run(&mut sandbox.command(&link, &["-n+1", log.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "one\ntwo\nthree\n");
    let output = run(&mut sandbox.pitcrew(&["tail", "-n", "1", log.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "three\n");
}

/// fetch over plain HTTP from a one-shot server on loopback (this test's thread).
#[test]
fn fetch_downloads_through_the_multicall() {
    let sandbox = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/data.csv", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            request.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\na,b\n1,2\n")
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let dest = sandbox.path("data.csv");
    let output = run(&mut sandbox.pitcrew(&["fetch", &url, dest.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a,b\n1,2\n");
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /data.csv HTTP/1.1\r\n"), "{request}");
}
