//! The `pitcrew-prepare` binary as a pod spec uses it: help, env twins, log formats, the
//! termination log, and SIGTERM part-way through a tree.

mod support;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;

use support::{assert_code, command, leftovers, path_str, run, stderr, stdout};

#[test]
fn help_shows_a_pod_spec_example_the_env_list_and_the_exit_codes() {
    let output = run(&["--help"]);
    assert_code(&output, 0);
    let help = stdout(&output);
    for wanted in [
        "initContainers:",
        "image: pitcrew/prepare",
        "\"--chown\", \"1000:1000\", \"/data\"",
        "PITCREW_PREPARE_STEPS",
        "[env: PITCREW_PREPARE_MODE=]",
        "[env: PITCREW_PREPARE_OWNER=]",
        "[env: PITCREW_PREPARE_DRY_RUN=]",
        "[env: PITCREW_PREPARE_DIR_MODE=]",
        "Exit codes:",
        " 78  a configuration value is invalid",
        "'\\:'",
    ] {
        assert!(help.contains(wanted), "{wanted:?} missing from:\n{help}");
    }
}

#[test]
fn settings_come_from_env_twins() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("key");
    fs::write(&source, "k").unwrap();
    let dest = dir.path().join("out/key");
    let copy = format!("{}:{}", path_str(&source), path_str(&dest));

    // Dry run from the env: nothing written, the change printed.
    let output = command(&["--copy", &copy])
        .env("PITCREW_PREPARE_DRY_RUN", "yes")
        .env("PITCREW_PREPARE_MODE", "0600")
        .output()
        .unwrap();
    assert_code(&output, 0);
    assert!(!dest.exists());
    assert!(stdout(&output).contains("mode 0600"), "{}", stdout(&output));

    // An empty value (what Helm renders for an unset one) counts as unset.
    let output = command(&["--copy", &copy])
        .env("PITCREW_PREPARE_DRY_RUN", "")
        .env("PITCREW_PREPARE_MODE", "0600")
        .env("PITCREW_PREPARE_DIR_MODE", "0701")
        .env("PITCREW_PREPARE_OWNER", "")
        .env("PITCREW_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_code(&output, 0);
    assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        fs::metadata(dest.parent().unwrap()).unwrap().permissions().mode() & 0o7777,
        0o701
    );
    let text = stderr(&output);
    assert!(
        text.lines()
            .all(|line| line.starts_with('{') && line.ends_with('}')),
        "{text}"
    );
    assert!(text.contains("\"message\":\"done: "), "{text}");
}

#[test]
fn a_usage_error_reaches_the_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let output = command(&["--chown", "app:app", "/data"])
        .env("PITCREW_TERMINATION_LOG", &log)
        .output()
        .unwrap();
    assert_code(&output, 64);
    let reason = fs::read_to_string(&log).unwrap();
    assert!(reason.contains("invalid owner \"app:app\""), "{reason}");

    let output = run(&[
        "--termination-log",
        path_str(&log),
        "--log-level",
        "loud",
        "--mkdir",
        "/x",
    ]);
    assert_code(&output, 64);
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("invalid --log-level \"loud\"")
    );
}

/// SIGTERM part-way through a tree: the run stops between two files with 143, every file
/// written is whole, and no temporary file is left. Deterministic without sleeps: the test
/// stops reading the log after the first file, so the tool blocks on its full stderr pipe
/// long before the tree is done, and the signal is sure to arrive in the middle.
#[test]
fn sigterm_stops_between_files_with_143_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tree");
    fs::create_dir(&source).unwrap();
    // Each file logs a line of over 100 bytes: 1000 of them are well over a 64 KiB pipe.
    let files = 1000;
    for index in 0..files {
        fs::write(
            source.join(format!("file-{index:04}.conf")),
            format!("content {index}\n"),
        )
        .unwrap();
    }
    let dest = dir.path().join("out");
    let log = dir.path().join("termination-log");
    let mut child = command(&[
        "--termination-log",
        path_str(&log),
        "--copy",
        &format!("{}:{}", path_str(&source), path_str(&dest)),
    ])
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("created"), "{first}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest:#?}");
    let last = rest.last().unwrap();
    assert!(
        last.contains("stopped by SIGTERM") && last.contains("step 1 of 1"),
        "{last}"
    );
    assert!(fs::read_to_string(&log).unwrap().contains("stopped by SIGTERM"));

    let copied: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(
        !copied.is_empty() && copied.len() < files,
        "{} of {files} copied",
        copied.len()
    );
    for path in &copied {
        let name = path.file_name().unwrap().to_string_lossy();
        let index: usize = name["file-".len().."file-".len() + 4].parse().unwrap();
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            format!("content {index}\n"),
            "{name}"
        );
    }
    assert!(leftovers(dir.path()).is_empty());

    // The next run (the pod restarted) finishes the job.
    let output = run(&["--copy", &format!("{}:{}", path_str(&source), path_str(&dest))]);
    assert_code(&output, 0);
    assert_eq!(fs::read_dir(&dest).unwrap().count(), files);
    let identical = match copied.len() {
        1 => "1 file already identical".to_owned(),
        n => format!("{n} files already identical"),
    };
    let text = stderr(&output);
    let summary = text.lines().find(|line| line.contains("step 1/1")).unwrap();
    assert!(
        summary.contains(&format!("created {} files", files - copied.len())) && summary.contains(&identical),
        "{summary}"
    );
}
