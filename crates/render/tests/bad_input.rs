//! The issue's table of bad input: each case exits with the code from the shared table, says
//! what is wrong naming the bad value (never a variable's value), puts that one line in the
//! termination log, and leaves the output directory exactly as it was: no output, no secret,
//! no temporary file, existing files untouched.

mod common;

use std::path::{Path, PathBuf};

use common::{ODD, Run, render, s, snapshot, write};

/// A workspace: a template tree, an output directory holding the previous run's files.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(template: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("in/app.yaml"), template);
        write(&dir.path().join("in/other.yaml"), "fine: $SECRET_VALUE\n");
        write(&dir.path().join("out/app.yaml"), "previous run\n");
        write(&dir.path().join("out/jwt"), "previous secret");
        Case { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs with `args` (`IN` and `OUT` replaced by the case's directories) and checks
    /// everything the table promises.
    fn check(&self, args: &[&str], code: i32, expected: &[&str]) -> Run {
        let input = self.path("in");
        let output = self.path("out");
        let args: Vec<&str> = args
            .iter()
            .map(|arg| match *arg {
                "IN" => s(&input),
                "OUT" => s(&output),
                other => other,
            })
            .collect();
        let before = snapshot(self.dir.path());
        let run = render(&args, &[("SECRET_VALUE", ODD)], b"");
        run.expect(code).never_shows(ODD).never_shows("s3cr3t");
        for text in expected {
            assert!(
                run.stderr.contains(text),
                "{args:?}: {text:?} not in stderr:\n{}",
                run.stderr
            );
            assert!(
                run.termination.contains(text),
                "{args:?}: {text:?} not in the termination log: {}",
                run.termination
            );
        }
        assert!(
            !run.termination.trim_end().contains('\n'),
            "one line: {}",
            run.termination
        );
        assert_eq!(snapshot(self.dir.path()), before, "{args:?} changed files");
        run
    }
}

#[test]
fn template_syntax_errors_exit_78_with_their_position() {
    Case::new("a: ok\nb: ${UNTERMINATED\n").check(
        &["--in", "IN", "--out", "OUT"],
        78,
        &["app.yaml:2:4", "never closed"],
    );
    Case::new("x: ${V%suffix}\n").check(&["--in", "IN", "--out", "OUT"], 78, &["app.yaml:1:4"]);
}

#[test]
fn a_required_variable_shows_its_message() {
    Case::new("db: ${DB_HOST:?set DB_HOST to the database Service}\n").check(
        &["--in", "IN", "--out", "OUT", "--secret", "jwt2=hex:16"],
        78,
        &["app.yaml:1:5", "DB_HOST", "set DB_HOST to the database Service"],
    );
    // Set but empty counts as unset for `:?`.
    let case = Case::new("db: ${SECRET_VALUE:?needed}${EMPTY:?needed too}\n");
    let before = snapshot(case.dir.path());
    let run = render(
        &["--in", s(&case.path("in")), "--out", s(&case.path("out"))],
        &[("SECRET_VALUE", ODD), ("EMPTY", "")],
        b"",
    );
    run.expect(78).never_shows(ODD);
    assert!(run.termination.contains("needed too"), "{}", run.termination);
    assert_eq!(snapshot(case.dir.path()), before);
}

#[test]
fn missing_inputs_exit_66_naming_the_path() {
    let case = Case::new("");
    case.check(
        &["--in", "/nonexistent/templates", "--out", "OUT"],
        66,
        &["/nonexistent/templates"],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--env-file", "/nonexistent/app.env"],
        66,
        &["/nonexistent/app.env"],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--vars-dir", "/nonexistent/vars"],
        66,
        &["/nonexistent/vars"],
    );
}

#[test]
fn unwritable_outputs_exit_74_naming_the_path() {
    let case = Case::new("a: 1\n");
    // Root ignores permission bits: /proc takes no new files from anyone, and a regular file
    // cannot be used as a directory.
    case.check(
        &["--in", "IN", "--out", "/proc/pitcrew-render-test"],
        74,
        &["/proc/pitcrew-render-test"],
    );
    let file_as_dir = case.path("out/app.yaml/sub");
    case.check(&["--in", "IN", "--out", s(&file_as_dir)], 74, &["out/app.yaml"]);
    case.check(
        &[
            "--in",
            "IN",
            "--out",
            "OUT",
            "--secrets-dir",
            "/proc/pitcrew-secrets",
            "--secret",
            "k=hex:8",
        ],
        74,
        &["/proc/pitcrew-secrets"],
    );
}

/// readOnlyRootFilesystem: an output on the image's root instead of a volume. The binary runs
/// in its own mount namespace with a read-only tmpfs over the output directory.
#[test]
fn a_read_only_file_system_exits_74_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let readonly = dir.path().join("ro");
    std::fs::create_dir(&readonly).unwrap();
    write(&dir.path().join("t.yaml"), "a: $A\n");
    let termination = dir.path().join("termination-log");
    let output = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--",
            "sh",
            "-c",
            r#"mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@""#,
            "sh",
        ])
        .arg(&readonly)
        .arg(common::BIN)
        .args([
            "--in",
            s(&dir.path().join("t.yaml")),
            "--out",
            s(&readonly.join("app.yaml")),
        ])
        .env_clear()
        .env("A", ODD)
        .env("PITCREW_TERMINATION_LOG", &termination)
        .output();
    let output = match output {
        Ok(output) if output.status.code() != Some(1) || output.stderr.is_empty() => output,
        other => {
            assert!(!pitcrew_testkit::on_ci(), "unshare/mount failed on CI: {other:?}");
            eprintln!("SKIPPED: cannot mount a read-only tmpfs here: {other:?}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("read-only") && stderr.contains("emptyDir"),
        "{stderr}"
    );
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("ro/app.yaml") && !message.contains("s3cr3t"),
        "{message}"
    );
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would take it as SHELL-FORMAT. The error names the flag and exits 64, without that tip.
#[test]
fn an_unknown_flag_gets_no_double_dash_tip() {
    let run = render(&["--timout", "5s"], &[], b"");
    run.expect(64);
    assert!(
        run.stderr.contains("unexpected argument '--timout' found"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("as a value"), "{}", run.stderr);
}

#[test]
fn bad_flags_exit_64_naming_the_value() {
    let case = Case::new("a: 1\n");
    case.check(
        &["--in", "IN", "--out", "OUT", "--owner", "app"],
        64,
        &["\"app\""],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--owner", "app:app"],
        64,
        &["\"app:app\""],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--mode", "rw-r--r--"],
        64,
        &["\"rw-r--r--\""],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "x=base32:10"],
        64,
        &["\"base32\""],
    );
    case.check(
        &[
            "--in",
            "IN",
            "--out",
            "OUT",
            "--secret",
            "x=hex:99999999999999999999",
        ],
        64,
        &["99999999999999999999"],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "x=hex:5000"],
        64,
        &["\"5000\"", "4096"],
    );
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "../x=hex:8"],
        64,
        &["\"../x\""],
    );
    case.check(&["--in", "IN", "--out", "OUT", "--include", "[z-"], 64, &["[z-"]);
    case.check(&["--in", "IN", "--out", "OUT", "--only", "APP-*"], 64, &["APP-*"]);
    case.check(
        &["--in", "IN", "--out", "OUT", "--log-level", "loud"],
        64,
        &["\"loud\""],
    );
    let inside = case.path("in/sub");
    case.check(&["--in", "IN", "--out", s(&inside)], 64, &["overlap"]);
    case.check(&["--in", "IN"], 64, &["--out DIR"]);
    case.check(&["--out", "OUT"], 64, &["stdin"]);
    case.check(
        &[
            "--in",
            s(&case.path("in/app.yaml")),
            "--out",
            "OUT",
            "--include",
            "*.yaml",
        ],
        64,
        &["--include"],
    );
}

#[test]
fn a_symlink_out_of_the_tree_exits_78_naming_it() {
    let case = Case::new("a: 1\n");
    let outside = case.path("outside-secret");
    write(&outside, "stolen");
    std::os::unix::fs::symlink(&outside, case.path("in/escape.yaml")).unwrap();
    case.check(
        &["--in", "IN", "--out", "OUT"],
        78,
        &["escape.yaml", "outside of"],
    );
    // A symlink to something inside the tree is followed.
    std::fs::remove_file(case.path("in/escape.yaml")).unwrap();
    std::os::unix::fs::symlink("app.yaml", case.path("in/alias.yaml")).unwrap();
    let run = render(
        &["--in", s(&case.path("in")), "--out", s(&case.path("out2"))],
        &[("SECRET_VALUE", "v")],
        b"",
    );
    run.expect(0);
    assert_eq!(std::fs::read(case.path("out2/alias.yaml")).unwrap(), b"a: 1\n");
}

#[test]
fn an_empty_existing_secret_exits_78_telling_to_delete_it() {
    let case = Case::new("a: ${jwt}\n");
    std::fs::write(case.path("out/jwt"), "").unwrap();
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "jwt=base64:32"],
        78,
        &["out/jwt", "delete it"],
    );
}

#[test]
fn a_secret_that_is_also_an_output_is_refused() {
    let case = Case::new("a: 1\n");
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "app.yaml=hex:8"],
        64,
        &["app.yaml", "output"],
    );
}

/// Regression guard for the all-or-nothing rule across inputs: the template that fails is
/// the last one rendered, after others were already staged.
#[test]
fn a_late_failure_leaves_earlier_outputs_untouched() {
    let case = Case::new("a: 1\n");
    write(&case.path("in/zzz.yaml"), "late: ${LATE:?is required}\n");
    case.check(
        &["--in", "IN", "--out", "OUT", "--secret", "new=hex:8"],
        78,
        &["zzz.yaml:1:7", "is required"],
    );
    assert!(!Path::new(&case.path("out/new")).exists());
}

/// `--owner` without the right to change owners (a non-root user, as in a pod): exit 74 with a
/// hint, and nothing committed.
#[test]
fn an_owner_change_without_the_right_fails_before_anything_is_committed() {
    use std::os::unix::fs::{PermissionsExt as _, chown};
    if !pitcrew_testkit::is_root() {
        eprintln!("SKIPPED: needs root to set up a run as another user (tests run as root on CI)");
        return;
    }
    let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &["/usr/bin/setpriv"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("pitcrew-render");
    std::fs::copy(common::BIN, &binary).unwrap();
    write(&dir.path().join("in/a.conf"), "a=$V\n");
    write(&dir.path().join("in/b.conf"), "b=$V\n");
    let out = dir.path().join("out");
    write(&out.join("a.conf"), "old\n");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for path in [&out, &out.join("a.conf"), &logs] {
        chown(path, Some(65532), Some(65532)).unwrap();
    }
    let before = snapshot(&out);
    let output = std::process::Command::new(setpriv)
        .args(["--reuid", "65532", "--regid", "65532", "--clear-groups"])
        .arg(&binary)
        .args(["--in", s(&dir.path().join("in")), "--out", s(&out)])
        .args(["--owner", "0:0", "--secret", "key=hex:8"])
        .env_clear()
        .env("V", ODD)
        .env("PITCREW_TERMINATION_LOG", logs.join("termination-log"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("CAP_CHOWN") && !stderr.contains("s3cr3t"),
        "{stderr}"
    );
    assert_eq!(snapshot(&out), before, "no secret, no output, no temporary file");
}
