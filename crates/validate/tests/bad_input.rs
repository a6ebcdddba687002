//! The issue's table of bad input for pitcrew-validate: a malformed YAML, a schema violation,
//! an expired certificate, a key that does not match. Each exits with the code from the
//! shared table, says what is wrong and where in one log line, puts the first problem and
//! the count in the termination log (one line), never shows a value, and writes nothing.

mod common;

use common::{Leaf, Run, SECRET, data, data_key, s, validate, write};

/// Runs `args` in a fresh directory holding the files of `files`, checks the promises every
/// case shares (`expected` in the logs, `first` in the termination log), and returns the run.
fn case(files: &[(&str, &str)], args: &[&str], code: i32, expected: &[&str], first: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        write(&dir.path().join(name), content);
    }
    let before = listing(dir.path());
    let args: Vec<String> = args
        .iter()
        .map(|arg| {
            if files.iter().any(|(name, _)| name == arg) {
                dir.path().join(arg).display().to_string()
            } else {
                (*arg).to_owned()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = validate(&args, &[("DB_PASSWORD", SECRET)]);
    run.expect(code).shows(expected).never_shows(SECRET);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert!(
        run.termination.contains(first),
        "{first:?} not in the termination log: {}",
        run.termination
    );
    assert!(
        !run.termination.trim_end().contains('\n'),
        "one line: {}",
        run.termination
    );
    assert_eq!(listing(dir.path()), before, "the run changed files");
    run
}

fn listing(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.display().to_string(),
                std::fs::read(&path).unwrap_or_default(),
            )
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_malformed_yaml_exits_1_with_its_line_and_column() {
    let run = case(
        &[("app.yaml", "server:\n  port: 8080\n   host: db\n")],
        &["app.yaml"],
        1,
        &["app.yaml:3:8: mapping values are not allowed"],
        "1 problem: /",
    );
    assert_eq!(run.problems().len(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("1 file checked, 1 problem"), "{}", run.stderr);
}

#[test]
fn a_schema_violation_exits_1_with_its_pointer_and_line_and_no_value() {
    let schema = r#"{"type": "object", "properties": {"replicas": {"type": "integer"},
        "password": {"type": "string", "minLength": 20}}}"#;
    let config = format!("replicas: three\npassword: \"{SECRET}\"\n");
    let run = case(
        &[("schema.json", schema), ("app.yaml", &config)],
        &["--schema", "schema.json", "app.yaml"],
        1,
        &["app.yaml:1:11: /replicas: value is not of type \"integer\""],
        "2 problems; first: /",
    );
    // In line order within the file, whatever order the validator found them in.
    let problems = run.problems();
    assert!(problems[0].contains("/replicas"), "{problems:?}");
    assert!(
        run.termination.contains("app.yaml:1:11: /replicas"),
        "{}",
        run.termination
    );
    run.shows(&["app.yaml:2:11: /password: "]).never_shows("three");
}

#[test]
fn an_expired_certificate_exits_1_with_the_date_and_how_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Leaf {
        from: -100,
        until: -12,
        ..Leaf::default()
    }
    .issue();
    let cert = write(&dir.path().join("tls.crt"), leaf.cert.pem());
    let run = validate(&["--cert", s(&cert)], &[]);
    run.expect(1).shows(&[
        "tls.crt: certificate (CN=app.test) expired on 20",
        "T",
        "Z, 12 days ago",
    ]);
    assert!(run.termination.contains("expired on"), "{}", run.termination);
}

#[test]
fn a_key_that_does_not_match_exits_1_naming_both_files_and_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Leaf {
        key: Some(data_key("rsa-1.key")),
        ..Leaf::default()
    }
    .issue();
    let cert = write(&dir.path().join("tls.crt"), leaf.cert.pem());
    let other = data("rsa-2.key");
    let run = validate(&["--cert", s(&cert), "--key", s(&other)], &[]);
    run.expect(1).shows(&[
        "rsa-2.key: does not match the certificate (CN=app.test) in ",
        "tls.crt",
    ]);
    let key_text = std::fs::read_to_string(&other).unwrap();
    let body_line = key_text.lines().nth(1).unwrap();
    run.never_shows(body_line);
    assert!(run.termination.contains("does not match"), "{}", run.termination);
}

#[test]
fn missing_inputs_exit_66_and_an_invalid_schema_78() {
    let run = case(
        &[],
        &["/nonexistent/app.yaml", "/nonexistent/b.json"],
        66,
        &["does not exist"],
        "2 problems; first: /nonexistent/app.yaml: does not exist",
    );
    assert_eq!(run.problems().len(), 2, "{}", run.stderr);
    // A missing file and a real problem: 1.
    case(
        &[("bad.json", "{")],
        &["/nonexistent/app.yaml", "bad.json"],
        1,
        &["does not exist", "bad.json:1:"],
        "2 problems; first: /nonexistent/app.yaml",
    );
    // An invalid schema wins over every other problem: the run's own setup is broken.
    case(
        &[("schema.json", r#"{"type": "strnig"}"#), ("bad.json", "{")],
        &["--schema", "schema.json", "bad.json", "/nonexistent/x.json"],
        78,
        &[
            "schema.json:1:10: /type: invalid schema",
            "bad.json:1:",
            "x.json: does not exist",
        ],
        "invalid schema",
    );
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would take it as a FILE. The error names the flag and exits 64, without that tip.
#[test]
fn an_unknown_flag_gets_no_double_dash_tip() {
    let run = validate(&["--timout", "5s", "app.json"], &[]);
    run.expect(64).shows(&["unexpected argument '--timout' found"]);
    assert!(!run.stderr.contains("as a value"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_64_before_anything_is_checked() {
    for (args, text) in [
        (&[][..], "nothing to check"),
        (&["app.conf"][..], "cannot tell the format of app.conf"),
        (&["--nope"][..], "--nope"),
        (&["--key", "k.pem", "--env", "A"][..], "--key need a --cert"),
        (&["--env-regex", "A=(", "x.json"][..], "invalid regex"),
        (&["--min-validity", "soon", "--cert", "c.pem"][..], "\"soon\""),
    ] {
        let run = validate(args, &[]);
        run.expect(64).shows(&[text]);
        assert!(run.termination.contains(text), "{args:?}: {}", run.termination);
    }
}
