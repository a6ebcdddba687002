//! Mixed steps through the binary: order kept across flags and in the env list, a failing
//! step stops the rest, and `--dry-run` changes nothing yet predicts exactly what the run
//! then does.

mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use pitcrew_testkit::is_root;
use support::{assert_code, command, configmap, leftovers, listing, path_str, run, stderr, stdout};

/// The step lines (`step N/M ...`) of a run's log, in order.
fn step_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.find("step ").map(|at| line[at..].to_owned()))
        .filter(|line| line.as_bytes().get(5).is_some_and(u8::is_ascii_digit))
        .collect()
}

#[test]
fn steps_run_in_command_line_order_across_flags() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("key");
    fs::write(&source, "k").unwrap();
    let box_dir = dir.path().join("box");
    let args = [
        "--mkdir",
        path_str(&box_dir),
        "--chmod",
        "0700",
        path_str(&box_dir),
        "--copy",
        &format!("{}:{}/", path_str(&source), path_str(&box_dir)),
        "--chmod",
        "0400",
        &format!("{}/key", path_str(&box_dir)),
    ];
    let output = run(&args);
    assert_code(&output, 0);
    assert_eq!(
        fs::metadata(&box_dir).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(box_dir.join("key")).unwrap().permissions().mode() & 0o7777,
        0o400
    );
    let lines = step_lines(&stderr(&output));
    let flags: Vec<&str> = lines.iter().map(|line| line.split(' ').nth(2).unwrap()).collect();
    assert_eq!(flags, ["--mkdir", "--chmod", "--copy", "--chmod"], "{lines:?}");
    assert!(lines[0].starts_with("step 1/4 --mkdir"), "{lines:?}");
}

#[test]
fn the_env_list_runs_in_its_line_order_and_cannot_be_mixed_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let list = format!(
        "# made by the pod spec\nmkdir {data}/a b\n\nchmod 0711 {data}/a b\nsymlink a b:{data}/current\n",
        data = path_str(&data)
    );
    let output = command(&[]).env("PITCREW_PREPARE_STEPS", &list).output().unwrap();
    assert_code(&output, 0);
    assert_eq!(
        fs::metadata(data.join("a b")).unwrap().permissions().mode() & 0o7777,
        0o711
    );
    assert_eq!(fs::read_link(data.join("current")).unwrap(), Path::new("a b"));
    assert_eq!(step_lines(&stderr(&output)).len(), 3);

    let output = command(&["--mkdir", path_str(&dir.path().join("other"))])
        .env("PITCREW_PREPARE_STEPS", &list)
        .output()
        .unwrap();
    assert_code(&output, 64);
    assert!(stderr(&output).contains("use one form"), "{}", stderr(&output));
    assert!(!dir.path().join("other").exists());
}

#[test]
fn a_failed_step_stops_the_run_and_is_named_by_number_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("termination-log");
    let missing = dir.path().join("no such template");
    let output = run(&[
        "--termination-log",
        path_str(&log),
        "--mkdir",
        path_str(&dir.path().join("first")),
        "--copy",
        &format!("{}:{}", path_str(&missing), path_str(&dir.path().join("out"))),
        "--mkdir",
        path_str(&dir.path().join("third")),
        "--mkdir",
        path_str(&dir.path().join("fourth")),
    ]);
    assert_code(&output, 66);
    assert!(dir.path().join("first").is_dir());
    assert!(!dir.path().join("out").exists());
    assert!(!dir.path().join("third").exists());
    let reason = fs::read_to_string(&log).unwrap();
    assert!(
        reason.starts_with("step 2 of 4 (--copy \"")
            && reason.contains("no such template")
            && reason.ends_with("steps 3-4 did not run"),
        "{reason}"
    );
    assert!(stderr(&output).contains(&reason), "{}", stderr(&output));
}

/// A volume half-prepared by an earlier version of the pod: a stale file, an identical one,
/// a link pointing to the old place.
fn half_prepared(root: &Path) {
    let template = root.join("config-template");
    fs::create_dir(&template).unwrap();
    configmap(
        &template,
        &[
            ("app.yaml", "port: 8080\n"),
            ("stale.yaml", "new content\n"),
            ("conf.d/site.conf", "server {}\n"),
        ],
    );
    let shared = root.join("shared-config");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("app.yaml"), "port: 8080\n").unwrap();
    fs::write(shared.join("stale.yaml"), "old content\n").unwrap();
    let data = root.join("data");
    fs::create_dir_all(data.join("db")).unwrap();
    fs::write(data.join("db/file"), "rows").unwrap();
    symlink("../old/app.yaml", data.join("app.yaml")).unwrap();
}

fn scenario_args(root: &Path) -> Vec<String> {
    let at = |path: &str| format!("{}/{path}", path_str(root));
    let mut args: Vec<String> = Vec::new();
    if is_root() {
        args.extend(["--owner".into(), "1000:1000".into()]);
    }
    args.extend([
        "--copy".into(),
        format!("{}:{}", at("config-template"), at("shared-config")),
        "--mkdir".into(),
        at("data/cache/tmp"),
        "--chmod".into(),
        "0700".into(),
        at("data/cache"),
        "--chmod".into(),
        "0600".into(),
        at("shared-config/conf.d/site.conf"),
        "--symlink".into(),
        format!("../shared-config/app.yaml:{}", at("data/app.yaml")),
    ]);
    if is_root() {
        args.extend(["--chown".into(), "1000:1000".into(), at("data")]);
    }
    args
}

/// The change lines a real run logged (`--log-level debug` shows the counted ones too).
fn logged_changes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            ["  INFO ", " DEBUG "]
                .iter()
                .find_map(|level| line.find(level).map(|at| line[at + level.len()..].to_owned()))
        })
        .filter(|message| {
            ["created ", "replaced ", "changed ", "set "]
                .iter()
                .any(|verb| message.starts_with(verb))
        })
        .collect()
}

/// Runs `args` with --dry-run, checks that nothing changed, then for real, and checks that
/// the real run logged exactly the changes the dry run printed. Returns the printed lines.
fn assert_dry_run_predicts(root: &Path, args: &[&str]) -> Vec<String> {
    let before = listing(root);
    let mut dry_args = vec!["--dry-run"];
    dry_args.extend(args);
    let dry = run(&dry_args);
    assert_code(&dry, 0);
    // Every mode, owner, mtime, ctime, inode and byte as it was.
    assert_eq!(listing(root), before);
    let printed = stdout(&dry);
    let mut lines: Vec<String> = printed.lines().map(str::to_owned).collect();
    let summary = lines.pop().unwrap();
    assert!(lines.iter().all(|line| line.starts_with("would ")), "{printed}");
    assert!(
        summary.starts_with(&format!("dry run: {} changes would be made", lines.len()))
            && summary.ends_with("nothing was changed"),
        "{summary}"
    );

    let mut real_args = vec!["--log-level", "debug"];
    real_args.extend(args);
    let real = run(&real_args);
    assert_code(&real, 0);
    let predicted: Vec<String> = lines
        .iter()
        .map(|line| {
            let line = line.strip_prefix("would ").unwrap();
            for (base, past) in [
                ("create ", "created "),
                ("replace ", "replaced "),
                ("change ", "changed "),
            ] {
                if let Some(rest) = line.strip_prefix(base) {
                    return format!("{past}{rest}");
                }
            }
            line.to_owned()
        })
        .collect();
    assert_eq!(logged_changes(&stderr(&real)), predicted);

    // Done: a dry run and a real run both find nothing to change.
    let settled = listing(root);
    let steps = args
        .iter()
        .filter(|arg| arg.starts_with("--") && !["--owner", "--mode", "--dir-mode"].contains(arg))
        .count();
    let dry = run(&dry_args);
    assert_code(&dry, 0);
    assert_eq!(
        stdout(&dry),
        format!("dry run: nothing to change: {steps} steps already done\n")
    );
    let again = run(args);
    assert_code(&again, 0);
    assert!(
        stderr(&again).contains(&format!("nothing to change: {steps} steps already done")),
        "{}",
        stderr(&again)
    );
    assert_eq!(listing(root), settled);
    assert!(leftovers(root).is_empty());
    lines
}

#[test]
fn dry_run_changes_nothing_and_lists_exactly_what_the_run_then_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    half_prepared(&root);
    let args = scenario_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = assert_dry_run_predicts(&root, &args);
    for wanted in [
        "would replace file",
        "would create directory",
        "would create file",
        "would change mode of directory",
        "would replace symlink",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(wanted)),
            "{wanted}: {lines:#?}"
        );
    }
    // Planned against what the earlier steps would make: site.conf and data/cache do not
    // exist yet, and --chmod does not fail on them.
    assert!(
        lines
            .iter()
            .any(|line| line.ends_with("site.conf from 0644 to 0600")),
        "{lines:#?}"
    );
}

#[test]
fn dry_run_on_a_fresh_volume_plans_later_steps_on_what_earlier_ones_create() {
    if !is_root() {
        eprintln!("skipped: chown to other users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let template = root.join("t");
    fs::create_dir(&template).unwrap();
    configmap(&template, &[("app.yaml", "a"), ("sub/b.yaml", "b")]);
    let fresh = root.join("fresh");
    let copy = format!("{}:{}/cfg", path_str(&template), path_str(&fresh));
    let key = format!("{}/cfg/sub/b.yaml", path_str(&fresh));
    let link = format!("cfg/app.yaml:{}/current", path_str(&fresh));
    let args = [
        "--copy",
        &copy,
        "--chmod",
        "0600",
        &key,
        "--symlink",
        &link,
        "--chown",
        "1000:1000",
        path_str(&fresh),
    ];
    let lines = assert_dry_run_predicts(&root, &args);
    // fresh, cfg, app.yaml, sub, b.yaml and the link: all created by root, all given away.
    let owners = lines
        .iter()
        .filter(|line| line.starts_with("would change owner"))
        .count();
    assert_eq!(owners, 6, "{lines:#?}");
    assert!(lines.iter().all(|line| !line.contains('?')), "{lines:#?}");
}
