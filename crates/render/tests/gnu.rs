//! pitcrew-render as a GNU envsubst drop-in: the real `/usr/bin/envsubst` (Debian's
//! gettext-base) and pitcrew-render get the same input and environment, and their stdout must
//! be identical byte for byte, for everything GNU supports: stdin to stdout, with and without
//! SHELL-FORMAT, and `-v`.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ODD, render};

const GNU: &str = "/usr/bin/envsubst";

/// The environment both programs get: odd characters, a newline, `$` and `}` in values, an
/// empty one, and names GNU and pitcrew must both leave alone when unset.
const ENV: &[(&str, &str)] = &[
    ("A", ODD),
    ("B", "line1\nline2"),
    ("DOLLAR", "$HOME ${A} $$"),
    ("BRACE", "}{"),
    ("EMPTY", ""),
    ("HOME", "/home/app"),
    ("_under", "u"),
    ("x1", "lower"),
];

/// Inputs made only of what GNU envsubst knows: `$V`, `${V}`, and text (including `$` forms
/// that are not references, which both leave as they are).
const INPUTS: &[&str] = &[
    "",
    "no references at all\n",
    "$A ${A} $B ${B}\n",
    "host=${A}:port ${EMPTY}| $EMPTY |${UNSET}|$UNSET|\n",
    "$DOLLAR and ${BRACE}\n",
    "adjacent:$A$B${A}${B}$_under$x1\n",
    "${A}suffix $Asuffix $A_ ${x1}x\n",
    "not references: $1 $ $- ${1} ${} $( ) $@ 5$ $\n",
    "backslash: \\$A \\${A} \\\\$A\n",
    "#!/bin/sh\nfor f in \"$@\"; do echo \"$f\" > $HOME/$1; done\n",
    "unicode: héllo ${A} – ünïcödé $B\n",
    "crlf: $A\r\n${B}\r\n",
    "no trailing newline: $A",
    "ends with a dollar $",
    "nul \0 byte $A \0\n",
];

fn gnu(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(GNU)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("GNU envsubst (Debian package gettext-base) must be installed at /usr/bin/envsubst");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(output.status.success(), "GNU envsubst failed on {args:?}");
    output.stdout
}

fn have_gnu() -> bool {
    let present = Path::new(GNU).is_file();
    if !present {
        assert!(
            !pitcrew_testkit::on_ci(),
            "{GNU} is missing (apt-get install gettext-base)"
        );
        eprintln!("SKIPPED: {GNU} is not installed (apt-get install gettext-base)");
    }
    present
}

#[test]
fn stdin_to_stdout_is_byte_identical_to_gnu() {
    if !have_gnu() {
        return;
    }
    for input in INPUTS {
        let ours = render(&[], ENV, input.as_bytes());
        ours.expect(0);
        let theirs = gnu(&[], ENV, input.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs),
            "input {input:?}"
        );
        assert_eq!(ours.stdout, theirs, "input {input:?}");
        ours.never_shows(ODD);
    }
}

#[test]
fn shell_format_restricts_exactly_as_gnu() {
    if !have_gnu() {
        return;
    }
    for format in [
        "$A",
        "${B}",
        "$A ${B} $A",
        "only text",
        "",
        "$HOME",
        "$UNSET $EMPTY",
        "prefix${x1}suffix $_under",
    ] {
        for input in INPUTS {
            let ours = render(&[format], ENV, input.as_bytes());
            ours.expect(0);
            let theirs = gnu(&[format], ENV, input.as_bytes());
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs),
                "format {format:?}, input {input:?}"
            );
            assert_eq!(ours.stdout, theirs, "format {format:?}, input {input:?}");
        }
    }
}

#[test]
fn variables_flag_prints_the_names_as_gnu() {
    if !have_gnu() {
        return;
    }
    for format in [
        "$A",
        "$A ${B} $A",
        "text only",
        "",
        "${x1}${_under}$HOME",
        "$1 ${} $ $A",
        "line\n$B\n",
    ] {
        for flag in ["-v", "--variables"] {
            // stdin is not read: give it something that would fail if it were.
            let ours = render(&[flag, format], &[], b"${unterminated");
            ours.expect(0);
            let theirs = gnu(&[flag, format], &[], b"");
            assert_eq!(ours.stdout, theirs, "{flag} {format:?}");
        }
    }
}

/// Regression for the complaint: GNU envsubst eats `$1` and `$HOME` in a shell script;
/// with SHELL-FORMAT both keep them, and so does `--only` with the same names.
#[test]
fn shell_scripts_survive_an_allow_list() {
    let script = "#!/bin/sh\nexec app --db \"$DB_HOST\" --home \"$HOME\" \"$1\" ${PATH%%:*} $$\n";
    let env = [("DB_HOST", "db"), ("HOME", "/root")];
    let expected = "#!/bin/sh\nexec app --db \"db\" --home \"$HOME\" \"$1\" ${PATH%%:*} $$\n";
    let with_format = render(&["$DB_HOST"], &env, script.as_bytes());
    with_format.expect(0);
    assert_eq!(with_format.out(), expected);
    let with_only = render(&["--only", "DB_*"], &env, script.as_bytes());
    with_only.expect(0);
    assert_eq!(with_only.out(), expected);
    if have_gnu() {
        assert_eq!(gnu(&["$DB_HOST"], &env, script.as_bytes()), expected.as_bytes());
    }
}

/// A large input (8 MiB, a reference every few bytes) streams through identically.
#[test]
fn a_large_input_is_identical_to_gnu() {
    if !have_gnu() {
        return;
    }
    let line = "key_${x1}: value $A and ${B} and $UNSET text text text text\n";
    let input = line.repeat(8 * 1024 * 1024 / line.len());
    let ours = render(&[], ENV, input.as_bytes());
    ours.expect(0);
    assert!(ours.stdout == gnu(&[], ENV, input.as_bytes()), "outputs differ");
}
