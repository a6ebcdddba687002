//! Where values come from, through the binary: the precedence table, dotenv files, a mounted
//! Secret as --vars-dir, --set, generated secrets, and values with odd characters that must
//! come out verbatim and never show up in the logs or the termination log.

mod common;

use common::{ODD, configmap, render, s, write};

/// The documented precedence, lowest first: environment < --env-file < --vars-dir < --set;
/// a generated secret is above all of them, and a clash with --set is refused.
#[test]
fn precedence_table() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("a.env");
    let later_env_file = dir.path().join("b.env");
    write(&env_file, "FILE=file\nDIR=file\nSET=file\nTWICE=first\n");
    write(&later_env_file, "TWICE=second\n");
    let vars = dir.path().join("vars");
    write(&vars.join("DIR"), "dir\n");
    write(&vars.join("SET"), "dir\n");
    write(&vars.join("key"), "from-vars-dir\n");
    let template = b"ENV=$ENV FILE=$FILE DIR=$DIR SET=$SET TWICE=$TWICE key=$key";
    let run = render(
        &[
            "--env-file",
            s(&env_file),
            "--env-file",
            s(&later_env_file),
            "--vars-dir",
            s(&vars),
            "--set",
            "SET=set",
            "--secrets-dir",
            s(&dir.path().join("secrets")),
            "--secret",
            "key=alphanumeric:12",
        ],
        &[
            ("ENV", "env"),
            ("FILE", "env"),
            ("DIR", "env"),
            ("SET", "env"),
            ("key", "env"),
        ],
        template,
    );
    run.expect(0);
    let secret = std::fs::read_to_string(dir.path().join("secrets/key")).unwrap();
    assert_eq!(
        run.out(),
        format!("ENV=env FILE=file DIR=dir SET=set TWICE=second key={secret}")
    );

    let run = render(
        &[
            "--set",
            "jwt_secret=x",
            "--secrets-dir",
            s(dir.path()),
            "--secret",
            "jwt-secret=hex:8",
        ],
        &[],
        b"",
    );
    run.expect(64);
    assert!(run.stderr.contains("jwt_secret") && run.stderr.contains("jwt-secret"));
    assert!(!dir.path().join("jwt-secret").exists());
}

/// Environment values are taken as bytes: odd characters, newlines, `$` and `}` come out
/// verbatim and are not expanded again.
#[test]
fn odd_values_are_rendered_verbatim_and_never_logged() {
    let multi = "line1\nline2 ${A} $$ }";
    let run = render(
        &["--log-level", "trace"],
        &[("A", ODD), ("M", multi)],
        b"[$A] [${M}] [${A:+set}] [${NONE:-$A}]",
    );
    run.expect(0).never_shows(ODD).never_shows("line2");
    assert_eq!(run.out(), format!("[{ODD}] [{multi}] [set] [{ODD}]"));
}

#[test]
fn set_takes_the_value_verbatim_and_never_shows_it() {
    let value = format!("{ODD}\n=second=line");
    let run = render(&["--set", &format!("V={value}")], &[], b"<$V>");
    run.expect(0).never_shows(ODD);
    assert_eq!(run.out(), format!("<{value}>"));
    // A bad --set names the flag, not the text (it may be a pasted secret).
    let run = render(&["--set", ODD], &[], b"");
    run.expect(64).never_shows(ODD).never_shows("s3cr3t");
    assert!(run.stderr.contains("--set"), "{}", run.stderr);
    assert!(run.termination.contains("--set"), "{}", run.termination);
}

#[test]
fn dotenv_edge_cases_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("app.env");
    write(
        &env_file,
        "# database\r\n\
         export DB_HOST=db.internal   # the primary\r\n\
         DB_PASS='s3cr3t&/#?@:x y'\n\
         DB_URL=\"postgres://app:${DB_PASS}@db/app\"\n\
         MULTI=\"a\\nb\"\n\
         EMPTY=\n\
         \n\
         QUOTED_HASH=\"#not a comment\"\n",
    );
    let run = render(
        &["--env-file", s(&env_file)],
        &[],
        b"$DB_HOST|$DB_PASS|$DB_URL|$MULTI|[$EMPTY]|$QUOTED_HASH",
    );
    run.expect(0).never_shows(ODD);
    assert_eq!(
        run.out(),
        format!("db.internal|{ODD}|postgres://app:${{DB_PASS}}@db/app|a\nb|[]|#not a comment")
    );

    // A bad line: exit 78, the file and line named, the line's text not shown.
    write(&env_file, "GOOD=1\nDB_PASS='s3cr3t&/#?@:x y\n");
    let run = render(&["--env-file", s(&env_file)], &[], b"");
    run.expect(78).never_shows("s3cr3t");
    assert!(
        run.termination.contains(&format!("{}:2:", env_file.display())),
        "{}",
        run.termination
    );
    let run = render(&["--env-file", s(&dir.path().join("missing.env"))], &[], b"");
    run.expect(66);
    assert!(run.stderr.contains("missing.env"), "{}", run.stderr);
}

/// A Secret mounted as a volume: names from keys (`db-password` is `db_password`), one
/// trailing newline dropped, the `..data` internals not taken as variables.
#[test]
fn a_mounted_secret_as_vars_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("secret");
    std::fs::create_dir(&mount).unwrap();
    configmap(
        &mount,
        &[
            ("db-password", "s3cr3t&/#?@:x y\n"),
            (
                "tls.crt",
                "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
            ),
            ("2fa", "two\n\n"),
        ],
    );
    let run = render(
        &["--vars-dir", s(&mount), "--strict"],
        &[],
        b"pw=${db_password}|crt=${tls_crt}|2fa=${_2fa}|${__data:-no internals}",
    );
    run.expect(0).never_shows(ODD).never_shows("MII");
    assert_eq!(
        run.out(),
        format!(
            "pw={ODD}|crt=-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----|2fa=two\n|no internals"
        )
    );

    let missing = render(&["--vars-dir", s(&dir.path().join("nope"))], &[], b"");
    missing.expect(66);
    assert!(missing.stderr.contains("nope"));
}

#[test]
fn no_empty_and_strict_refuse_with_names_only() {
    let run = render(
        &["--strict", "--no-empty"],
        &[("E", ""), ("S", ODD)],
        b"$S $E ${U}",
    );
    run.expect(78).never_shows(ODD);
    assert!(run.termination.contains("<stdin>:1:4") && run.termination.contains('E'));
    assert!(run.termination.contains("<stdin>:1:7") && run.termination.contains('U'));
    // Defaults still work in strict mode.
    let run = render(&["--strict"], &[], b"${U:-fallback}");
    run.expect(0);
    assert_eq!(run.out(), "fallback");
}

#[test]
fn env_twins_configure_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("in.txt"), "$A-$B");
    let run = render(
        &[],
        &[
            ("PITCREW_RENDER_IN", s(&dir.path().join("in.txt"))),
            ("PITCREW_RENDER_OUT", s(&dir.path().join("out.txt"))),
            ("PITCREW_RENDER_ONLY", "A"),
            ("PITCREW_RENDER_STRICT", "yes"),
            ("PITCREW_RENDER_DRY_RUN", ""),
            ("A", "a"),
        ],
        b"",
    );
    run.expect(0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "a-$B"
    );
}
