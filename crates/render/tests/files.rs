//! File and tree rendering through the binary: shapes of --in/--out, --include, a mounted
//! ConfigMap as input, idempotent re-runs (no rewrite, mtime and inode kept), --no-overwrite,
//! --mode/--owner, --dry-run, and the all-or-nothing rule.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use common::{ODD, age, configmap, leftovers, render, render_in, s, snapshot, write};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn file_to_file_and_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("templates/app.yaml");
    write(&template, "db: ${DB_HOST}:${DB_PORT:-5432}\n");
    let out = dir.path().join("config/nested/app.yaml");
    let env = [("DB_HOST", "postgres")];
    render(&["--in", s(&template), "--out", s(&out)], &env, b"")
        .expect(0)
        .never_shows("postgres");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "db: postgres:5432\n");
    assert_eq!(mode(&out), 0o644);

    // --out naming a directory (existing, or with a trailing slash) keeps the file name.
    let into = dir.path().join("into/");
    render(&["--in", s(&template), "--out", s(&into)], &env, b"").expect(0);
    assert!(dir.path().join("into/app.yaml").is_file());
    render(
        &["--in", s(&template), "--out", s(&dir.path().join("config"))],
        &env,
        b"",
    )
    .expect(0);
    assert!(dir.path().join("config/app.yaml").is_file());

    // stdin to a file, and a file to stdout.
    let from_stdin = dir.path().join("stdin.txt");
    render(&["--out", s(&from_stdin)], &env, b"$DB_HOST").expect(0);
    assert_eq!(std::fs::read_to_string(&from_stdin).unwrap(), "postgres");
    let run = render(&["--in", s(&template)], &env, b"");
    run.expect(0);
    assert_eq!(run.out(), "db: postgres:5432\n");
    assert!(leftovers(dir.path()).is_empty());
}

/// A relative --out FILE puts a generated secret next to it (the current directory).
#[test]
fn relative_paths_work() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("t.conf"), "k=${key}\n");
    render_in(
        Some(dir.path()),
        &["--in", "t.conf", "--out", "out.conf", "--secret", "key=hex:4"],
        &[],
        b"",
    )
    .expect(0);
    let secret = std::fs::read_to_string(dir.path().join("key")).unwrap();
    assert_eq!(secret.len(), 8);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.conf")).unwrap(),
        format!("k={secret}\n")
    );
}

#[test]
fn a_configmap_tree_renders_included_files_and_copies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("templates");
    std::fs::create_dir(&input).unwrap();
    configmap(
        &input,
        &[
            ("app.yaml", "name: ${APP}\n"),
            ("conf.d/site.conf", "server_name ${APP};\n"),
            ("conf.d/deep/x.conf", "deep ${APP}\n"),
            ("run.sh", "echo $1 $HOME ${APP}\n"),
            ("data.bin", "raw $APP \0\u{1}\u{ff} ${APP"),
            ("empty.yaml", ""),
        ],
    );
    let out = dir.path().join("out dir");
    // A stale file from an earlier run (or another tool) is left alone.
    write(&out.join("stale.txt"), "old");
    let run = render(
        &[
            "--in",
            s(&input),
            "--out",
            s(&out),
            "--include",
            "*.yaml",
            "--include",
            "conf.d/*.conf",
        ],
        &[("APP", "shop"), ("HOME", "/root")],
        b"",
    );
    run.expect(0);
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    assert_eq!(read("app.yaml"), b"name: shop\n");
    assert_eq!(read("conf.d/site.conf"), b"server_name shop;\n");
    // `conf.d/*.conf` does not reach into conf.d/deep: copied as is.
    assert_eq!(read("conf.d/deep/x.conf"), b"deep ${APP}\n");
    assert_eq!(read("run.sh"), b"echo $1 $HOME ${APP}\n");
    assert_eq!(read("data.bin"), "raw $APP \0\u{1}\u{ff} ${APP".as_bytes());
    assert_eq!(read("stale.txt"), b"old");
    assert_eq!(read("empty.yaml"), b"", "a 0-byte template gives a 0-byte output");
    // Kubernetes' internals are not copied, and the outputs are files, not symlinks.
    let listed: Vec<String> = snapshot(&out)
        .into_keys()
        .map(|path| path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        [
            "app.yaml",
            "conf.d",
            "conf.d/deep",
            "conf.d/deep/x.conf",
            "conf.d/site.conf",
            "data.bin",
            "empty.yaml",
            "run.sh",
            "stale.txt"
        ]
    );
    assert!(
        !std::fs::symlink_metadata(out.join("app.yaml"))
            .unwrap()
            .is_symlink()
    );

    // Run again: rendered and copied files alike are left exactly as they are.
    let before = snapshot(dir.path());
    let again = render(
        &[
            "--in",
            s(&input),
            "--out",
            s(&out),
            "--include",
            "*.yaml,conf.d/*.conf",
        ],
        &[("APP", "shop"), ("HOME", "/root")],
        b"",
    );
    again.expect(0);
    assert!(
        again.stderr.contains("done: 0 written, 6 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(dir.path()), before);

    // Without --include every file is a template (and the binary one's `${` is an error).
    let run = render(
        &["--in", s(&input), "--out", s(&dir.path().join("all"))],
        &[],
        b"",
    );
    run.expect(78);
    assert!(run.stderr.contains("data.bin:1:"), "{}", run.stderr);
    assert!(
        !dir.path().join("all").exists(),
        "a failed run leaves no directory behind"
    );
}

#[test]
fn an_include_that_matches_nothing_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.yml"), "$X");
    let run = render(
        &[
            "--in",
            s(&dir.path().join("in")),
            "--out",
            s(&dir.path().join("out")),
            "--include",
            "*.yaml",
        ],
        &[("X", "x")],
        b"",
    );
    run.expect(0);
    assert!(
        run.stderr.contains("\"*.yaml\" matches no file"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(dir.path().join("out/a.yml")).unwrap(), b"$X");
}

/// The init-container re-run: the secret stays, identical outputs are not rewritten (same
/// inode, same mtime), a changed value replaces only its own output.
#[test]
fn a_rerun_keeps_the_secret_and_rewrites_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t");
    write(&input.join("app.yaml"), "jwt: ${jwt_secret}\nenv: ${APP_ENV}\n");
    write(&input.join("db.yaml"), "host: ${DB_HOST}\n");
    let out = dir.path().join("cfg");
    let args = [
        "--in",
        s(&input),
        "--out",
        s(&out),
        "--secret",
        "jwt-secret=base64:32",
    ];
    let env = [("APP_ENV", "production"), ("DB_HOST", "db")];
    let first = render(&args, &env, b"");
    first.expect(0);
    assert!(
        first
            .stderr
            .contains("generated (32 random bytes, base64, mode 0600)")
    );
    let secret = std::fs::read_to_string(out.join("jwt-secret")).unwrap();
    assert_eq!(secret.len(), 44, "32 bytes in padded base64, no newline");
    assert!(!secret.ends_with('\n'));
    assert_eq!(mode(&out.join("jwt-secret")), 0o600);
    first.never_shows(&secret);
    for file in ["app.yaml", "db.yaml", "jwt-secret"] {
        age(&out.join(file));
    }
    let before = snapshot(&out);
    let whole = snapshot(dir.path());

    let second = render(&args, &env, b"");
    second.expect(0);
    assert!(second.stderr.contains("kept existing"), "{}", second.stderr);
    assert!(second.stderr.contains("already up to date"), "{}", second.stderr);
    second.never_shows(&secret);
    // Not even a temporary file came and went: the output directory's mtime is the same,
    // so a watcher on it sees nothing.
    assert_eq!(
        snapshot(dir.path()),
        whole,
        "nothing may change on an identical re-run"
    );

    let third = render(&args, &[("APP_ENV", "staging"), ("DB_HOST", "db")], b"");
    third.expect(0);
    let after = snapshot(&out);
    assert_eq!(after[Path::new("jwt-secret")], before[Path::new("jwt-secret")]);
    assert_eq!(after[Path::new("db.yaml")], before[Path::new("db.yaml")]);
    assert_ne!(
        after[Path::new("app.yaml")].inode,
        before[Path::new("app.yaml")].inode,
        "replaced by rename"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("app.yaml")).unwrap(),
        format!("jwt: {secret}\nenv: staging\n")
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn existing_secrets_are_used_and_kept_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    // As `openssl rand -base64 32 > file` left it: with a newline, which the value drops.
    write(&dir.path().join("out/jwt"), "from-openssl\n");
    std::fs::set_permissions(dir.path().join("out/jwt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = render(
        &[
            "--out",
            s(&dir.path().join("out/app.txt")),
            "--secret",
            "jwt=hex:16",
        ],
        &[],
        b"[$jwt]",
    );
    run.expect(0).never_shows("from-openssl");
    assert_eq!(
        std::fs::read(dir.path().join("out/app.txt")).unwrap(),
        b"[from-openssl]"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/jwt")).unwrap(),
        b"from-openssl\n"
    );
    assert_eq!(
        mode(&dir.path().join("out/jwt")),
        0o640,
        "a kept secret is not touched"
    );
}

#[test]
fn secret_formats_and_a_secrets_only_run() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    // No --in/--out: stdin (empty, as in a pod) goes to stdout; the secrets are the point.
    let run = render(
        &[
            "--secrets-dir",
            s(&secrets),
            "--secret",
            "h=hex:16,b=base64:16",
            "--secret",
            "u=base64url:32",
            "--secret",
            "an=alphanumeric:40",
            "--secret-mode",
            "0640",
        ],
        &[],
        b"",
    );
    run.expect(0);
    let read = |name: &str| std::fs::read_to_string(secrets.join(name)).unwrap();
    assert!(read("h").len() == 32 && read("h").bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(read("b").len(), 24);
    assert!(read("b").ends_with("=="));
    assert_eq!(read("u").len(), 43);
    assert!(!read("u").contains(['=', '+', '/']));
    assert_eq!(read("an").len(), 40);
    assert!(read("an").bytes().all(|byte| byte.is_ascii_alphanumeric()));
    assert_eq!(mode(&secrets.join("an")), 0o640);
    for name in ["h", "b", "u", "an"] {
        run.never_shows(&read(name));
    }
    assert!(run.out().is_empty());
}

#[test]
fn no_overwrite_keeps_what_exists_and_creates_what_does_not() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.conf"), "a=$V\n");
    write(&dir.path().join("in/b.conf"), "b=$V\n");
    write(&dir.path().join("out/a.conf"), "edited by hand\n");
    let run = render(
        &[
            "--in",
            s(&dir.path().join("in")),
            "--out",
            s(&dir.path().join("out")),
            "--no-overwrite",
        ],
        &[("V", "1")],
        b"",
    );
    run.expect(0);
    assert!(run.stderr.contains("--no-overwrite"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(dir.path().join("out/a.conf")).unwrap(),
        b"edited by hand\n"
    );
    assert_eq!(std::fs::read(dir.path().join("out/b.conf")).unwrap(), b"b=1\n");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn mode_and_owner_apply_to_outputs_secrets_and_new_directories() {
    if !pitcrew_testkit::is_root() {
        eprintln!("SKIPPED: --owner needs root (tests run as root on CI)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/sub/a.conf"), "a=$V\n");
    write(&dir.path().join("in/script.sh"), "#!/bin/sh\n");
    std::fs::set_permissions(
        dir.path().join("in/script.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let out = dir.path().join("out");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut args = vec![
            "--in".to_owned(),
            s(&dir.path().join("in")).to_owned(),
            "--out".to_owned(),
            s(&out).to_owned(),
            "--include".to_owned(),
            "*.conf".to_owned(),
            "--owner".to_owned(),
            "65532:65533".to_owned(),
            "--secret".to_owned(),
            "key=hex:8".to_owned(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    };
    let first: Vec<String> = args(&[]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    render(&first, &[("V", "1")], b"").expect(0);
    for path in ["", "sub", "sub/a.conf", "script.sh", "key"] {
        let metadata = std::fs::metadata(out.join(path)).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (65532, 65533), "{path}");
    }
    assert_eq!(mode(&out.join("sub/a.conf")), 0o644);
    assert_eq!(
        mode(&out.join("script.sh")),
        0o750,
        "a copy keeps the source's mode"
    );
    assert_eq!(mode(&out.join("key")), 0o600);

    // Same content, --mode asked: the mode is fixed in place, content and inode kept.
    let inode = std::fs::metadata(out.join("sub/a.conf")).unwrap().ino();
    let second = args(&["--mode", "0440"]);
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let run = render(&second, &[("V", "1")], b"");
    run.expect(0);
    assert!(run.stderr.contains("mode 0440"), "{}", run.stderr);
    assert_eq!(mode(&out.join("sub/a.conf")), 0o440);
    assert_eq!(mode(&out.join("script.sh")), 0o440);
    assert_eq!(std::fs::metadata(out.join("sub/a.conf")).unwrap().ino(), inode);
    assert_eq!(mode(&out.join("key")), 0o600, "--mode is not for secrets");
}

#[test]
fn dry_run_checks_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/a.conf"), "a=$V\n");
    write(&dir.path().join("in/b.conf"), "b=$V\n");
    write(&dir.path().join("in/logo.png"), "\u{89}PNG$V");
    write(&dir.path().join("out/a.conf"), "a=1\n");
    write(&dir.path().join("out/b.conf"), "old\n");
    let before = snapshot(dir.path());
    let run = render(
        &[
            "--in",
            s(&dir.path().join("in")),
            "--out",
            s(&dir.path().join("out")),
            "--include",
            "*.conf",
            "--secret",
            "jwt=base64:32",
            "--dry-run",
        ],
        &[("V", "1")],
        b"",
    );
    run.expect(0);
    let out = run.out();
    for expected in [
        "would generate secret",
        "jwt (32 random bytes, base64, mode 0600) (template variable jwt)",
        "a.conf: leave unchanged (4 bytes, mode 0644)",
        "b.conf: replace (4 bytes, mode 0644)",
        "would copy",
        "logo.png: create",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    assert_eq!(snapshot(dir.path()), before, "a dry run writes nothing");

    let run = render(
        &[
            "--in",
            s(&dir.path().join("in")),
            "--out",
            s(&dir.path().join("new")),
            "--dry-run",
            "--strict",
        ],
        &[],
        b"",
    );
    run.expect(78);
    assert!(run.stderr.contains("a.conf:1:3") && run.stderr.contains("b.conf:1:3"));
    assert!(!dir.path().join("new").exists());
}

/// All or nothing: one missing variable in the last file means no file is written (the
/// existing output of the first file is kept as it was) and every problem is listed.
#[test]
fn one_bad_template_writes_nothing_and_every_problem_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in/1.conf"), "ok=$OK\n");
    write(
        &dir.path().join("in/2.conf"),
        "a=${MISSING_A}\nb=${MISSING_B:?needs a value}\n",
    );
    write(&dir.path().join("in/3.conf"), "c=$MISSING_C\n");
    write(&dir.path().join("out/1.conf"), "previous\n");
    let before = snapshot(&dir.path().join("out"));
    let run = render(
        &[
            "--in",
            s(&dir.path().join("in")),
            "--out",
            s(&dir.path().join("out")),
            "--strict",
            "--secret",
            "jwt=hex:16",
        ],
        &[("OK", ODD)],
        b"",
    );
    run.expect(78).never_shows(ODD);
    for expected in [
        "2.conf:1:3",
        "MISSING_A",
        "2.conf:2:3",
        "needs a value",
        "3.conf:1:3",
        "MISSING_C",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
        assert!(
            run.termination.contains(expected),
            "{expected}: {}",
            run.termination
        );
    }
    assert!(
        run.termination.starts_with("3 template problems in 2 files"),
        "{}",
        run.termination
    );
    assert!(!run.termination.contains('\n'), "one line: {}", run.termination);
    assert_eq!(
        snapshot(&dir.path().join("out")),
        before,
        "no secret, no output, no temp file"
    );
}

#[test]
fn json_logs_carry_path_bytes_and_mode_but_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.txt");
    let run = render(
        &["--out", s(&out), "--log-format", "json"],
        &[("V", ODD)],
        b"v=$V",
    );
    run.expect(0).never_shows(ODD);
    let line = run
        .stderr
        .lines()
        .find(|line| line.contains("\"outcome\":\"created\""))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.contains("\"bytes\":17"), "{line}");
    assert!(line.contains("\"mode\":\"0644\""), "{line}");
    assert!(
        line.contains(&format!("\"path\":\"{}\"", out.display())),
        "{line}"
    );
}

#[test]
fn unset_variables_are_warned_about_by_name() {
    let run = render(
        &[],
        &[("SET", "v")],
        b"$SET $NOT_SET ${ALSO_NOT} ${DEFAULTED:-d} ${ASSIGNED:=a}$ASSIGNED ${PLUS+x}",
    );
    run.expect(0);
    assert_eq!(run.out(), "v   d aa ");
    assert!(
        run.stderr.contains("not set: ALSO_NOT, NOT_SET (without"),
        "{}",
        run.stderr
    );
}

/// The warning named every unset name the template mentioned, also those whose reference
/// has a default or an alternative (`${V:-d}`, `${V+x}`), which are not mistakes.
#[test]
fn regression_references_with_a_default_are_not_warned_about() {
    let run = render(&[], &[], b"${A:-1} ${B-2} ${C:=3} ${D+4} ${E:+5}");
    run.expect(0);
    assert_eq!(run.out(), "1 2 3  ");
    assert!(!run.stderr.contains("not set"), "{}", run.stderr);
}
