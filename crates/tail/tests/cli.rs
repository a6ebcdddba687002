//! The command line of `pitcrew-tail` as users write it: busybox/GNU `tail` forms, env twins,
//! bad values, secrets kept out of messages, `--help`.
//!
//! Parsing goes through `pitcrew_core::cli::try_parse_from` (what the binary uses) and
//! [`Args::config_with`], which takes the environment for pod metadata and the sink parser as
//! arguments. Env twins are read by clap from the process environment, which a test must not
//! change (other tests run in parallel, and `set_var` is unsafe): those tests run this test
//! binary again as a child with the environment they want (`env_child`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::CommandFactory;
use pitcrew_core::exit::ExitCode;
use pitcrew_follow::StartAt;
use pitcrew_tail::cli::Args;
use pitcrew_tail::process::Parser;
use pitcrew_tail::sink::SinkSpec;
use pitcrew_tail::{Config, Headers, OutputFormat, TailError};

fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    pitcrew_core::cli::try_parse_from::<Args, _, _>(
        std::iter::once("pitcrew-tail").chain(args.iter().copied()),
    )
}

/// Sinks other than stdout are another module's; here each one is refused with a message
/// holding the URL, as a parser's error would.
fn no_sinks(text: &str) -> Result<SinkSpec, String> {
    Err(format!("invalid --sink {text}: (test) not parsed here"))
}

fn config_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, TailError> {
    let args = parse(args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
    let lookup = |name: &str| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    };
    args.config_with(&lookup, &no_sinks)
}

fn config(args: &[&str]) -> Result<Config, TailError> {
    config_env(args, &[])
}

fn parse_error(args: &[&str]) -> String {
    match parse(args) {
        Ok(parsed) => panic!("{args:?} parsed: {parsed:?}"),
        Err(err) => err.render().to_string(),
    }
}

fn usage_error(args: &[&str]) -> String {
    let err = config(args).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Usage, "{args:?}: {err}");
    err.to_string()
}

#[test]
fn the_seed_args_work_unchanged() {
    let config = config(&["-n+1", "-F", "/var/log/nginx/access.log"]).unwrap();
    assert_eq!(
        config.follow.patterns,
        [PathBuf::from("/var/log/nginx/access.log")]
    );
    assert_eq!(config.follow.start, StartAt::Beginning);
    assert!(config.follow.follow_names);
    assert!(!config.follow.once);
    assert!(matches!(config.sinks.as_slice(), [SinkSpec::Stdout]));
    assert_eq!(config.output, OutputFormat::Raw);
    assert_eq!(config.headers, Headers::Auto);
}

#[test]
fn busybox_and_gnu_spellings() {
    let cases: &[(&[&str], StartAt, bool, bool)] = &[
        // (args, start, follow_names, once)
        (&["-n", "0", "-F", "a"], StartAt::End, true, false),
        (&["-n0", "-F", "a"], StartAt::End, true, false),
        (&["-n", "+5", "-f", "a"], StartAt::FromLine(5), false, false),
        (&["-fn+5", "a"], StartAt::FromLine(5), false, false),
        (&["-Fn", "7", "a"], StartAt::LastLines(7), true, false),
        (&["-n5", "a"], StartAt::LastLines(5), false, true),
        (&["-n", "-5", "a"], StartAt::LastLines(5), false, true),
        (&["--lines=+3", "a"], StartAt::FromLine(3), false, true),
        (&["--lines", "7", "a"], StartAt::LastLines(7), false, true),
        (&["--lines=+0", "a"], StartAt::Beginning, false, true),
        (
            &["--follow=name", "--retry", "a"],
            StartAt::Beginning,
            true,
            false,
        ),
        (&["--follow", "a"], StartAt::Beginning, false, false),
        (&["--follow=descriptor", "a"], StartAt::Beginning, false, false),
        (&["-f", "-F", "a"], StartAt::Beginning, true, false),
        (&["a"], StartAt::Beginning, false, true),
        (&["--retry", "a"], StartAt::Beginning, false, true),
    ];
    for (args, start, names, once) in cases {
        let config = config(args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
        assert_eq!(config.follow.start, *start, "{args:?}");
        assert_eq!(config.follow.follow_names, *names, "{args:?}");
        assert_eq!(config.follow.once, *once, "{args:?}");
    }
}

#[test]
fn quiet_verbose_and_several_files() {
    let config = config(&["-qF", "a", "/var/log/with space/b.log", "/var/log/app/*.log"]).unwrap();
    assert_eq!(config.headers, Headers::Never);
    assert!(config.follow.follow_names);
    assert_eq!(
        config.follow.patterns,
        [
            PathBuf::from("a"),
            PathBuf::from("/var/log/with space/b.log"),
            PathBuf::from("/var/log/app/*.log")
        ]
    );
    assert_eq!(self::config(&["--silent", "a"]).unwrap().headers, Headers::Never);
    assert_eq!(self::config(&["-vF", "a"]).unwrap().headers, Headers::Always);
    let err = parse_error(&["-q", "-v", "a"]);
    assert!(
        err.contains("--verbose") && err.contains("cannot be used with"),
        "{err}"
    );
}

#[test]
fn sleep_interval_takes_gnu_seconds() {
    for (value, expected) in [("0.5", 500), ("2", 2000), ("100ms", 100)] {
        let config = config(&["-F", "-s", value, "a"]).unwrap();
        assert_eq!(
            config.follow.poll_interval,
            Duration::from_millis(expected),
            "{value}"
        );
    }
    let config = config(&["--sleep-interval=1.5", "a"]).unwrap();
    assert_eq!(config.follow.poll_interval, Duration::from_millis(1500));
}

#[test]
fn byte_mode_is_refused_clearly() {
    for args in [
        &["-c", "10", "a"][..],
        &["-c+1", "a"],
        &["--bytes=-5", "a"],
        &["-Fc", "1", "a"],
    ] {
        let err = usage_error(args);
        assert!(err.contains("byte mode is not supported"), "{args:?}: {err}");
    }
}

#[test]
fn a_file_is_required() {
    let err = parse_error(&["-F"]);
    assert!(err.contains("required") && err.contains("FILE"), "{err}");
    let err = parse_error(&[]);
    assert!(err.contains("required"), "{err}");
    let err = usage_error(&["--files", "   "]);
    assert!(err.contains("no file"), "{err}");
    let config = config(&["--files", "a  b\n\tc", "d"]).unwrap();
    assert_eq!(config.follow.patterns.len(), 4);
}

#[test]
fn defaults() {
    let config = config(&["-F", "a"]).unwrap();
    let follow = &config.follow;
    assert_eq!(follow.poll_interval, Duration::from_millis(250));
    assert_eq!(follow.rescan_interval, Duration::from_secs(1));
    assert_eq!(follow.rotate_wait, Duration::from_secs(5));
    assert_eq!(follow.partial_line_timeout, Duration::from_secs(5));
    assert_eq!(follow.max_line_bytes, 1 << 20);
    assert!(follow.resume.is_none());
    assert!(config.checkpoint.is_none());
    assert!(matches!(config.process.parser, Parser::None));
    assert!(config.process.multiline.is_none());
    assert!(config.process.added_fields.is_empty());
    assert!(config.process.is_passthrough());
    let delivery = &config.delivery;
    assert_eq!(delivery.batch_max_bytes, 512 << 10);
    assert_eq!(delivery.batch_max_wait, Duration::from_secs(1));
    assert_eq!(delivery.queue_max_bytes, 8 << 20);
    assert_eq!(delivery.retry_max_delay, Duration::from_secs(30));
    assert_eq!(delivery.drop_after, None);
    assert!(delivery.buffer.is_none());
    assert_eq!(config.drain_timeout, Duration::from_secs(20));
    assert_eq!(config.exit_on, None);
    assert_eq!(config.admin_addr, None);
    assert_eq!(config.ready_sink_failure, Duration::from_secs(60));
    assert_eq!(config.ready_stall, Duration::from_secs(60));
    assert!(!config.sink_options.tls.insecure);
    let options = parse(&["a"]).unwrap().sink_options().unwrap();
    assert!(options.headers.is_empty());
    assert_eq!(options.request_timeout, Duration::from_secs(30));
}

#[test]
fn pitcrew_flags_reach_the_config() {
    let config = config(&[
        "-F",
        "--checkpoint",
        "/state/cp",
        "--output",
        "json",
        "--parse",
        "logfmt",
        "--multiline-start",
        r"^\d{4}-",
        "--multiline-timeout",
        "3s",
        "--multiline-max-lines",
        "20",
        "--multiline-max-bytes",
        "64KiB",
        "--batch-max-bytes",
        "512KiB",
        "--batch-max-wait",
        "0",
        "--queue-max-bytes",
        "10MB",
        "--retry-max-delay",
        "1m",
        "--drop-after",
        "10m",
        "--buffer-dir",
        "/buffer",
        "--buffer-max-bytes",
        "1GiB",
        "--max-line-bytes",
        "256",
        "--partial-line-timeout",
        "100ms",
        "--rotate-wait",
        "0",
        "--rescan-interval",
        "2s",
        "--drain-timeout",
        "5s",
        "--exit-on",
        "/shared/done",
        "--admin-addr",
        ":9090",
        "--ready-sink-failure",
        "2m",
        "--ready-stall",
        "1s",
        "--insecure",
        "a",
    ])
    .unwrap();
    assert_eq!(config.checkpoint, Some(PathBuf::from("/state/cp")));
    assert_eq!(config.output, OutputFormat::Json);
    assert!(matches!(config.process.parser, Parser::Logfmt));
    let multiline = config.process.multiline.unwrap();
    assert!(multiline.start.is_match("2026-01-01 x"));
    assert_eq!(multiline.timeout, Duration::from_secs(3));
    assert_eq!(multiline.max_lines, 20);
    assert_eq!(multiline.max_bytes, 64 * 1024);
    assert_eq!(config.delivery.batch_max_bytes, 512 * 1024);
    assert_eq!(config.delivery.batch_max_wait, Duration::ZERO);
    assert_eq!(config.delivery.queue_max_bytes, 10_000_000);
    assert_eq!(config.delivery.retry_max_delay, Duration::from_secs(60));
    assert_eq!(config.delivery.drop_after, Some(Duration::from_secs(600)));
    let buffer = config.delivery.buffer.unwrap();
    assert_eq!(
        (buffer.dir, buffer.max_bytes),
        (PathBuf::from("/buffer"), 1 << 30)
    );
    assert_eq!(config.follow.max_line_bytes, 256);
    assert_eq!(config.follow.partial_line_timeout, Duration::from_millis(100));
    assert_eq!(config.follow.rotate_wait, Duration::ZERO);
    assert_eq!(config.follow.rescan_interval, Duration::from_secs(2));
    assert_eq!(config.drain_timeout, Duration::from_secs(5));
    assert_eq!(config.exit_on, Some(PathBuf::from("/shared/done")));
    assert_eq!(config.admin_addr, Some("0.0.0.0:9090".parse().unwrap()));
    assert_eq!(config.ready_sink_failure, Duration::from_secs(120));
    assert!(config.sink_options.tls.insecure);
    let regex = self::config(&["--output", "json", "--regex", r"^(?<status>\d+)", "a"]).unwrap();
    assert!(matches!(regex.process.parser, Parser::Regex(_)));
    let buffer = self::config(&["--buffer-dir", "/b", "a"])
        .unwrap()
        .delivery
        .buffer
        .unwrap();
    assert_eq!(buffer.max_bytes, 256 << 20);
}

#[test]
fn bad_values_name_the_value_and_what_was_expected() {
    let cases: &[(&[&str], &str)] = &[
        (&["-n", "ten"], "\"ten\""),
        (&["-n", "99999999999999999999999"], "largest accepted"),
        (&["-n", ""], "\"\""),
        (&["--lines=1.5"], "expected +N"),
        (&["-s", "0"], "at least 10ms"),
        (&["-s", "-1"], "-1"),
        (&["-s", "soon"], "\"soon\""),
        (&["--follow=inode"], "inode"),
        (&["--output", "xml"], "xml"),
        (&["--parse", "yaml"], "yaml"),
        (&["--regex", "(?<a>"], "invalid regular expression"),
        (&["--regex", r"(\d+)"], "no named capture"),
        (&["--multiline-start", "[z-a]"], "\"[z-a]\""),
        (&["--multiline-timeout", "0"], "at least 10ms"),
        (&["--multiline-max-lines", "0"], "0"),
        (&["--multiline-max-lines", "-3"], "-3"),
        (&["--multiline-max-lines", "99999999999"], "99999999999"),
        (&["--multiline-max-bytes", "1"], "256 bytes to 1GiB"),
        (&["--max-line-bytes", "0"], "256 bytes to 1GiB"),
        (&["--max-line-bytes", "18446744073709551615GiB"], "far larger"),
        (&["--max-line-bytes", "2GiB"], "256 bytes to 1GiB"),
        (&["--max-line-bytes", "lots"], "\"lots\""),
        (&["--batch-max-bytes", "1.5MiB"], "\"1.5MiB\""),
        (&["--batch-max-bytes", "-1"], "-1"),
        (&["--queue-max-bytes", "17GiB"], "1KiB to 16GiB"),
        (&["--buffer-max-bytes", "1KiB"], "1MiB to"),
        (&["--batch-max-wait", "30"], "\"30\""),
        (&["--request-timeout", "1ms"], "at least 100ms"),
        (&["--request-timeout", "300000000000y"], "1y"),
        (&["--retry-max-delay", "100ms"], "at least 500ms"),
        (&["--drop-after", "0"], "at least 1s"),
        (&["--rescan-interval", "1ns"], "at least 100ms"),
        (&["--partial-line-timeout", "0"], "at least 100ms"),
        (&["--ready-stall=-5s"], "\"-5s\""),
        (&["--drain-timeout", "forever"], "\"forever\""),
        (&["--admin-addr", "localhost:9090"], "\"localhost:9090\""),
        (&["--admin-addr", ":65536"], "\":65536\""),
    ];
    for (args, wanted) in cases {
        let mut all = args.to_vec();
        all.push("file");
        let err = parse_error(&all);
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
}

#[test]
fn combinations_that_cannot_work_are_refused() {
    let err = config(&["--queue-max-bytes", "64KiB", "a"]).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Config, "{err}");
    assert!(
        err.to_string().contains("64KiB") && err.to_string().contains("512KiB"),
        "{err}"
    );
    assert!(usage_error(&["--buffer-max-bytes", "1GiB", "a"]).contains("--buffer-dir"));
    assert!(usage_error(&["--parse", "json", "a"]).contains("--output json"));
    assert!(usage_error(&["--regex", "(?<x>.)", "a"]).contains("--output json"));
    assert!(usage_error(&["--output", "json", "-v", "a"]).contains("--verbose"));
    assert!(
        usage_error(&["--output", "json", "--parse", "json", "--regex", "(?<x>.)", "a"]).contains("--regex")
    );
    // -q with JSON output is harmless: there are no headers to leave out.
    assert!(config(&["--output", "json", "-q", "a"]).is_ok());
}

#[test]
fn added_fields_from_flags_and_pod_metadata() {
    let pod = [
        ("POD_NAME", "web-7f9c"),
        ("POD_NAMESPACE", "shop"),
        ("NODE_NAME", ""),
        ("CONTAINER_NAME", "nginx"),
    ];
    let config = config_env(
        &[
            "--field",
            "cluster=eu-1",
            "--field",
            "container=override",
            "--field",
            "empty=",
            "a",
        ],
        &pod,
    )
    .unwrap();
    let fields: Vec<(&str, &str)> = config
        .process
        .added_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // An empty NODE_NAME counts as unset; --field wins over the pod field of its name.
    assert_eq!(
        fields,
        [
            ("pod", "web-7f9c"),
            ("namespace", "shop"),
            ("container", "override"),
            ("cluster", "eu-1"),
            ("empty", "")
        ]
    );
    let config = config_env(&["--no-pod-fields", "--field", "a=b=c", "a"], &pod).unwrap();
    assert_eq!(config.process.added_fields, [("a".to_owned(), "b=c".to_owned())]);
    for (bad, wanted) in [
        ("novalue", "expected KEY=VALUE"),
        ("=x", "not a valid field name"),
        ("a-b=x", "not a valid field name"),
        ("1a=x", "not a valid field name"),
        ("message=x", "reserved"),
        ("time=x", "reserved"),
    ] {
        let err = usage_error(&["--field", bad, "a"]);
        assert!(err.contains(wanted), "{bad}: {err}");
    }
    assert!(usage_error(&["--field", "a=1", "--field", "a=2", "x"]).contains("twice"));
}

#[test]
fn sinks_default_to_stdout_and_errors_hide_passwords() {
    let config = config(&["--sink", "stdout", "a"]).unwrap();
    assert!(matches!(config.sinks.as_slice(), [SinkSpec::Stdout]));
    let err = usage_error(&["--sink", "https://user:hunter2@logs.example.com/in", "a"]);
    assert!(
        !err.contains("hunter2") && err.contains("logs.example.com"),
        "{err}"
    );
    // The env twin's list is split on whitespace…
    let err = config_env(
        &["--sink", "stdout -", "a"],
        &[("PITCREW_TAIL_SINKS", "stdout -")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    // … a --sink flag is one URL, whose credentials (from a Secret) may hold a space.
    assert!(crate::config(&["--sink", "stdout -", "a"]).is_err());
    let err = usage_error(&["--sink", "stdout", "--sink", "stdout", "a"]);
    assert!(err.contains("twice"), "{err}");
    // --output applies to the stdout sink; headers to HTTP-family sinks.
    let err = usage_error(&["--header", "X-A: b", "a"]);
    assert!(err.contains("--header"), "{err}");
}

#[test]
fn header_values_never_appear_in_errors() {
    let secret = "s3cr3t-t0ken";
    for header in [
        format!("Authorization Bearer {secret}"),
        format!("Bad Name: {secret}"),
        format!("X-Token: {secret}\u{1}"),
        format!("Host: {secret}"),
        format!(": {secret}"),
    ] {
        let args = parse(&["--header", &header, "a"]).unwrap();
        let err = args.sink_options().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
        assert!(!err.to_string().contains(secret), "{header:?}: {err}");
        let err = args.config_with(&|_| None, &no_sinks).unwrap_err();
        assert!(!err.to_string().contains(secret), "{header:?}: {err}");
    }
    let options = parse(&[
        "--header",
        "Authorization: Bearer x:y",
        "--header",
        "X-Scope-OrgID:  tenant ",
        "a",
    ])
    .unwrap()
    .sink_options()
    .unwrap();
    assert_eq!(
        options.headers,
        [
            ("Authorization".to_owned(), "Bearer x:y".to_owned()),
            ("X-Scope-OrgID".to_owned(), "tenant".to_owned())
        ]
    );
}

#[test]
fn help_shows_the_pod_spec_example_and_exit_codes() {
    let err = parse(&["--help"]).unwrap_err();
    assert!(!err.use_stderr(), "--help is not an error");
    let help = err.render().to_string();
    for wanted in [
        "args: [\"-n+1\", \"-F\", \"/var/log/nginx/access.log\"]",
        "restartPolicy: Always",
        "POD_NAMESPACE",
        "Exit codes:",
        " 64  ",
        " 78  ",
        "[env: PITCREW_TAIL_LINES=]",
        "[env: PITCREW_TAIL_CA_FILE=]",
        "GNU tail",
        "byte mode is refused",
    ] {
        assert!(help.contains(wanted), "missing {wanted:?} in:\n{help}");
    }
    assert!(!help.contains("{TOOL}"), "{help}");
}

/// The house rule: every flag has a `PITCREW_…` env twin. Exceptions: -F and -f (their twin
/// is PITCREW_TAIL_FOLLOW), -c (refused anyway), FILE (twin: PITCREW_TAIL_FILES), and clap's
/// own --help/--version.
#[test]
fn every_flag_has_an_env_twin_and_a_doc() {
    let command = Args::command();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        assert!(arg.get_help().is_some(), "{id} has no doc");
        if [
            "follow_name_retry",
            "follow_descriptor",
            "bytes",
            "files",
            "help",
            "version",
        ]
        .contains(&id)
        {
            continue;
        }
        let env = arg.get_env().unwrap_or_else(|| panic!("{id} has no env twin"));
        let env = env.to_str().unwrap();
        assert!(env.starts_with("PITCREW_"), "{id}: {env}");
    }
}

// ---- env twins, through a child process ----

/// Run by [`env_twins`] in a child process: parses PITCREW_TAIL_TEST_ARGS (whitespace-split)
/// with the child's environment and prints what came out.
#[test]
#[ignore = "a child of env_twins_are_read_and_empty_ones_are_unset, not a test of its own"]
fn env_child() {
    let args = std::env::var("PITCREW_TAIL_TEST_ARGS").unwrap_or_default();
    let args: Vec<&str> = args.split_whitespace().collect();
    let outcome = parse(&args)
        .map_err(|err| err.render().to_string())
        .and_then(|args| args.config().map_err(|err| err.to_string()));
    match outcome {
        Ok(config) => println!(
            "RESULT start={:?} names={} once={} headers={:?} patterns={:?} fields={:?} batch={} poll={:?} insecure={} sinks={}",
            config.follow.start,
            config.follow.follow_names,
            config.follow.once,
            config.headers,
            config.follow.patterns,
            config.process.added_fields,
            config.delivery.batch_max_bytes,
            config.follow.poll_interval,
            config.sink_options.tls.insecure,
            config.sinks.len(),
        ),
        Err(err) => println!("RESULT error={}", err.lines().next().unwrap_or_default()),
    }
}

fn child(args: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "env_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PITCREW_TAIL_TEST_ARGS", args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once("RESULT ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("no result: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
        .to_owned()
}

#[test]
fn env_twins_are_read_and_empty_ones_are_unset() {
    let result = child(
        "",
        &[
            ("PITCREW_TAIL_FILES", "/var/log/a.log\n  /var/log/b/*.log"),
            ("PITCREW_TAIL_LINES", "0"),
            ("PITCREW_TAIL_FOLLOW", "name"),
            ("PITCREW_TAIL_QUIET", "yes"),
            ("PITCREW_TAIL_FIELD", "cluster=eu\nteam=shop"),
            ("PITCREW_TAIL_BATCH_MAX_BYTES", "512KiB"),
            ("PITCREW_TAIL_SLEEP_INTERVAL", "0.5"),
            ("PITCREW_TAIL_INSECURE", "1"),
            ("PITCREW_TAIL_SINKS", ""),
            ("PITCREW_TAIL_OUTPUT", ""),
            ("POD_NAME", "web-1"),
            ("POD_NAMESPACE", ""),
        ],
    );
    for wanted in [
        "start=End",
        "names=true",
        "once=false",
        "headers=Never",
        "patterns=[\"/var/log/a.log\", \"/var/log/b/*.log\"]",
        "fields=[(\"pod\", \"web-1\"), (\"cluster\", \"eu\"), (\"team\", \"shop\")]",
        "batch=524288",
        "poll=500ms",
        "insecure=true",
        "sinks=1",
    ] {
        assert!(result.contains(wanted), "missing {wanted}: {result}");
    }
    // Empty values fall back to the defaults; FILE arguments add to PITCREW_TAIL_FILES.
    let result = child(
        "-F c.log",
        &[
            ("PITCREW_TAIL_FILES", "d.log"),
            ("PITCREW_TAIL_LINES", ""),
            ("PITCREW_TAIL_BATCH_MAX_BYTES", ""),
            ("PITCREW_TAIL_QUIET", ""),
            ("PITCREW_TAIL_NO_POD_FIELDS", "true"),
            ("POD_NAME", "web-1"),
        ],
    );
    for wanted in [
        "start=Beginning",
        "headers=Auto",
        "patterns=[\"c.log\", \"d.log\"]",
        "fields=[]",
        "batch=524288",
    ] {
        assert!(result.contains(wanted), "missing {wanted}: {result}");
    }
}

#[test]
fn bad_env_values_are_named() {
    let result = child("-F a", &[("PITCREW_TAIL_LINES", "garbage")]);
    assert!(
        result.contains("error=") && result.contains("garbage"),
        "{result}"
    );
    let result = child("a", &[]);
    assert!(
        result.contains("start=Beginning") && result.contains("once=true"),
        "{result}"
    );
    let result = child("", &[]);
    assert!(
        result.contains("error=") && result.contains("required"),
        "{result}"
    );
}
