//! `--env` and `--env-regex` through the binary: the value of a variable — often a Secret —
//! never reaches a log line (text or JSON) or the termination log, whatever fails.

mod common;

use common::{SECRET, validate};

#[test]
fn a_secret_that_fails_its_regex_is_never_shown() {
    for format in ["text", "json"] {
        let run = validate(
            &[
                "--log-format",
                format,
                "--env-regex",
                "DB_PASSWORD=[a-z]+",
                "--env",
                "DB_*",
            ],
            &[("DB_PASSWORD", SECRET), ("DB_USER", "")],
        );
        run.expect(1)
            .shows(&[
                "DB_PASSWORD does not match [a-z]+",
                "DB_USER (matched by DB_*) is set but empty",
            ])
            .never_shows(SECRET)
            .never_shows("s3cr3t");
        assert!(
            run.termination
                .starts_with("2 problems; first: environment variable DB_USER"),
            "{}",
            run.termination
        );
    }
}

#[test]
fn required_variables_and_patterns() {
    let env = [("DB_HOST", "db"), ("DB_PORT", "5432"), ("BLANK", "  ")];
    validate(
        &[
            "--env",
            "DB_HOST",
            "--env",
            "DB_*",
            "--env-regex",
            "DB_PORT=[0-9]{2,5}",
        ],
        &env,
    )
    .expect(0)
    .shows(&["3 environment variables checked, no problems"]);
    let run = validate(
        &[
            "--env",
            "MISSING,BLANK,API_*",
            "--env-regex",
            "DB_PORT=[0-9]{5}",
            "--env-regex",
            "NOPE=.*",
        ],
        &env,
    );
    run.expect(1).shows(&[
        "environment variable MISSING is not set",
        "environment variable BLANK is set but empty",
        "no environment variable matches API_*",
        "environment variable DB_PORT does not match [0-9]{5}",
        "environment variable NOPE is not set",
    ]);
    assert_eq!(run.problems().len(), 5, "{}", run.stderr);
    run.never_shows("5432");
}

#[test]
fn env_twins_for_the_env_flags() {
    let run = validate(
        &[],
        &[
            ("PITCREW_VALIDATE_ENV", "A,B"),
            ("PITCREW_VALIDATE_ENV_REGEX", "A=[0-9]+\nB=x,y"),
            ("A", "12"),
            ("B", "x,y"),
        ],
    );
    run.expect(0)
        .shows(&["4 environment variables checked, no problems"]);
}
