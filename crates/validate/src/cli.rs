//! The command line of `pitcrew-validate`: flags (each with an env twin), help text, and the
//! translation into a [`Config`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;
use std::time::SystemTime;

use clap::{ArgAction, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;

use crate::env::{EnvRegex, NamePattern};
use crate::formats::Format;
use crate::x509::{self, MinValidity, SubjectName};
use crate::{Config, ValidateError};

const EXAMPLES: &str = r#"Examples:
  pitcrew-validate /config/app.yaml /config/logging.json /config/app.toml
  pitcrew-validate --schema /schemas/app.schema.json /config/app.yaml
  pitcrew-validate --format yaml /config/app.conf
  pitcrew-validate --cert /tls/tls.crt --key /tls/tls.key --ca /tls/ca.crt \
                   --dns-name api.prod.svc.cluster.local --min-validity 7d
  pitcrew-validate --env DB_HOST --env 'DB_*' --env-regex 'DB_PORT=[0-9]{2,5}'

In a pod spec (init container, before the app; replaces a validate-config step and the
certificate checks nobody writes, which the app's crash loop then finds):
  initContainers:
    - name: validate-config
      image: pitcrew/validate:0.1.0
      args: ["--schema", "/schemas/app.schema.json", "/config/app.yaml",
             "--cert", "/tls/tls.crt", "--key", "/tls/tls.key", "--ca", "/tls/ca.crt",
             "--dns-name", "api.prod.svc.cluster.local", "--min-validity", "7d",
             "--env", "DB_*", "--env-regex", "DB_PORT=[0-9]+"]
      env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: app-db-credentials, key: password}}
      volumeMounts:
        - {name: config, mountPath: /config, readOnly: true}
        - {name: schemas, mountPath: /schemas, readOnly: true}
        - {name: tls, mountPath: /tls, readOnly: true}
  Every problem is one log line (`kubectl logs POD -c validate-config`); the first one and
  the count are in `kubectl describe pod`.
"#;

const EXIT_CODES: &str = "Exit codes:
    0  every check passed
    1  problems were found (listed above, one per line)
   64  bad command line: unknown flag, nothing to check, a FILE of unknown format
   66  every problem is a named file that is missing or unreadable
   78  the --schema or --ca to check against is itself invalid (whatever else failed)
  130  stopped by SIGINT
  143  stopped by SIGTERM
";

/// Check configuration files, certificates and environment variables before the app starts.
///
/// Checks the syntax of JSON, YAML and TOML files (every document of a YAML stream), each
/// error with file, line and column; duplicate keys and empty files are problems too. With
/// --schema, every document is validated against a JSON Schema (draft 2020-12 or 7, from
/// $schema), each violation with its JSON pointer and line. --cert checks PEM certificates:
/// valid now and for --min-validity more, matching --key, chaining to --ca, covering each
/// --dns-name. --env and --env-regex check environment variables, never showing a value.
/// Every problem of every check is reported in one run; nothing is written.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-validate", bin_name = "pitcrew-validate", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// JSON, YAML or TOML files to check; the format comes from the extension (.json, .yaml,
    /// .yml, .toml) unless --format says. (The env twin holds one path per line.)
    #[arg(value_name = "FILE", env = "PITCREW_VALIDATE_FILES", value_delimiter = '\n')]
    pub files: Vec<PathBuf>,

    /// Read every FILE as this format (json, yaml or toml), whatever its extension.
    #[arg(long, value_name = "FORMAT", env = "PITCREW_VALIDATE_FORMAT")]
    pub format: Option<Format>,

    /// Validate every document of every FILE against this JSON Schema (JSON or YAML; draft
    /// from $schema, 2020-12 without one). $refs to other local files are followed; remote
    /// ones are refused, nothing is fetched.
    #[arg(long, value_name = "FILE", env = "PITCREW_VALIDATE_SCHEMA")]
    pub schema: Option<PathBuf>,

    /// An empty FILE (nothing but whitespace or comments) is a warning instead of a problem.
    #[arg(long, env = "PITCREW_VALIDATE_ALLOW_EMPTY")]
    pub allow_empty: bool,

    /// A PEM certificate file (a leaf, optionally followed by its intermediates) to check:
    /// it parses, and every certificate in it is valid now (and for --min-validity more).
    /// Repeatable. (The env twin holds one path per line.)
    #[arg(long, value_name = "FILE", env = "PITCREW_VALIDATE_CERT", action = ArgAction::Append, value_delimiter = '\n')]
    pub cert: Vec<PathBuf>,

    /// The PEM private key (PKCS#8, RSA or EC) of a --cert: it must match the certificate's
    /// public key. The first --key belongs to the first --cert, and so on. Repeatable.
    #[arg(long, value_name = "FILE", env = "PITCREW_VALIDATE_KEY", action = ArgAction::Append, value_delimiter = '\n')]
    pub key: Vec<PathBuf>,

    /// PEM CA certificates: each --cert's leaf must chain to one of them (through the
    /// intermediates in its own file), verified at the current time, for server or client
    /// authentication. Host names are not checked here; see --dns-name.
    #[arg(long, value_name = "FILE", env = "PITCREW_VALIDATE_CA")]
    pub ca: Option<PathBuf>,

    /// A DNS name or IP address each --cert must cover through its subjectAltName (wildcards
    /// such as *.svc.cluster.local count). Repeat or separate with commas.
    #[arg(long, value_name = "NAME", env = "PITCREW_VALIDATE_DNS_NAME", action = ArgAction::Append, value_delimiter = ',')]
    pub dns_name: Vec<SubjectName>,

    /// Certificates must stay valid at least this much longer (30d, 7d, 12h).
    #[arg(long, value_name = "DURATION", env = "PITCREW_VALIDATE_MIN_VALIDITY")]
    pub min_validity: Option<MinValidity>,

    /// An environment variable that must be set and not empty (or only whitespace). A
    /// pattern with * (DB_*) means: at least one variable matches, and none of them is empty.
    /// Repeat or separate with commas. Values are never shown.
    #[arg(long, value_name = "NAME", env = "PITCREW_VALIDATE_ENV", action = ArgAction::Append, value_delimiter = ',')]
    pub env: Vec<NamePattern>,

    /// NAME=REGEX: the variable (or every variable a NAME pattern matches) must be set and
    /// its whole value must match REGEX. Values are never shown, only NAME and REGEX.
    /// Repeatable. (The env twin holds one NAME=REGEX per line.)
    #[arg(long, value_name = "NAME=REGEX", env = "PITCREW_VALIDATE_ENV_REGEX", action = ArgAction::Append, value_delimiter = '\n')]
    pub env_regex: Vec<EnvRegex>,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, and \
         switches take true/false, 1/0, yes/no, on/off.\n\n{EXIT_CODES}"
    )
}

impl Args {
    /// Turns the flags into a [`Config`], with the process environment and clock.
    pub fn config(&self) -> Result<Config, ValidateError> {
        let usage = |message: String| Err(ValidateError::Usage(message));
        if self.files.is_empty() && self.cert.is_empty() && self.env.is_empty() && self.env_regex.is_empty() {
            return usage("nothing to check: name a FILE, a --cert, an --env or an --env-regex".into());
        }
        if self.schema.is_some() && self.files.is_empty() {
            return usage("--schema needs a FILE to validate".into());
        }
        if self.cert.is_empty() {
            let orphans: Vec<&str> = [
                (!self.key.is_empty(), "--key"),
                (self.ca.is_some(), "--ca"),
                (!self.dns_name.is_empty(), "--dns-name"),
                (self.min_validity.is_some(), "--min-validity"),
            ]
            .into_iter()
            .filter_map(|(given, flag)| given.then_some(flag))
            .collect();
            if !orphans.is_empty() {
                return usage(format!("{} need a --cert to check", orphans.join(", ")));
            }
        }
        if self.key.len() > self.cert.len() {
            return usage(format!(
                "{} --key for {} --cert: the n-th --key belongs to the n-th --cert",
                self.key.len(),
                self.cert.len()
            ));
        }
        let mut files = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let Some(format) = self.format.or_else(|| Format::from_path(path)) else {
                return usage(format!(
                    "cannot tell the format of {} from its extension; expected .json, .yaml, \
                     .yml or .toml, or give --format",
                    path.display()
                ));
            };
            files.push((path.clone(), format));
        }
        Ok(Config {
            files,
            schema: self.schema.clone(),
            allow_empty: self.allow_empty,
            x509: x509::Options {
                certs: self.cert.clone(),
                keys: self.key.clone(),
                ca: self.ca.clone(),
                names: self.dns_name.clone(),
                min_validity: self.min_validity.clone(),
            },
            env: self.env.clone(),
            env_regex: self.env_regex.clone(),
            environment: std::env::vars_os().collect(),
            now: SystemTime::now(),
        })
    }
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-validate` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew validate …`) with `pitcrew-validate` as the program name,
/// or its own unchanged when called through a `/validate` link. clap's messages say
/// `pitcrew-validate` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-validate: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match validate(&args) {
        Ok(report) => {
            let summary = report.summary();
            let code = report.exit_code();
            if report.problems.is_empty() {
                tracing::info!(
                    files = report.files,
                    certificates = report.certificates,
                    variables = report.variables,
                    problems = 0,
                    "{summary}"
                );
            } else {
                tracing::error!(
                    files = report.files,
                    certificates = report.certificates,
                    variables = report.variables,
                    problems = report.problems.len(),
                    exit_code = code.code(),
                    "{summary}"
                );
                write_termination_log(&args.termination_log, &report.termination_message());
            }
            code.into()
        }
        Err(err) => {
            tracing::error!(exit_code = err.exit_code().code(), "{err}");
            write_termination_log(&args.termination_log, &err.to_string());
            err.exit_code().into()
        }
    }
}

/// Listens for SIGTERM/SIGINT first (as PID 1 nothing else would stop a long run), then checks.
fn validate(args: &Args) -> Result<crate::Report, ValidateError> {
    let stop = pitcrew_core::stop::listen()
        .map_err(|err| ValidateError::Failure(format!("cannot install the signal handlers: {err}")))?;
    let config = args.config()?;
    crate::run(&config, &stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pitcrew-validate").chain(args.iter().copied()))
    }

    fn usage(args: &[&str]) -> String {
        match parse(args).unwrap().config() {
            Err(ValidateError::Usage(message)) => message,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_that_do_not_fit_together_are_refused() {
        assert!(usage(&[]).contains("nothing to check"));
        assert!(usage(&["--schema", "s.json", "--env", "A"]).contains("--schema needs a FILE"));
        assert_eq!(
            usage(&["--key", "k", "--ca", "c", "--env", "A"]),
            "--key, --ca need a --cert to check"
        );
        assert!(usage(&["--cert", "c", "--key", "a", "--key", "b"]).contains("2 --key for 1 --cert"));
        assert!(usage(&["app.conf"]).contains("app.conf"));
        assert_eq!(
            parse(&["--format", "yaml", "app.conf"])
                .unwrap()
                .config()
                .unwrap()
                .files[0]
                .1,
            Format::Yaml
        );
    }

    #[test]
    fn bad_values_name_the_value() {
        for (args, shown) in [
            (&["--format", "xml", "a"][..], "\"xml\""),
            (&["--min-validity", "7", "--cert", "c"][..], "\"7\""),
            (&["--dns-name", "bad name", "--cert", "c"][..], "\"bad name\""),
            (&["--env", "A=B"][..], "\"A=B\""),
            (&["--env-regex", "A=("][..], "\"(\""),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(shown), "{args:?}: {err}");
        }
    }

    #[test]
    fn repeatable_flags_collect_in_order() {
        let args = parse(&[
            "a.json",
            "--cert",
            "1.pem",
            "--cert",
            "2.pem",
            "--dns-name",
            "a.local,10.0.0.1",
            "--env",
            "A,B_*",
            "--env-regex",
            "P=[0-9]{1,5}",
            "b.yaml",
        ])
        .unwrap();
        assert_eq!(args.files.len(), 2);
        assert_eq!(args.cert.len(), 2);
        assert_eq!(args.dns_name.len(), 2);
        assert_eq!(args.env.len(), 2);
        // A comma inside a regex is not a separator.
        assert_eq!(args.env_regex[0].text, "[0-9]{1,5}");
    }

    #[test]
    fn every_flag_has_an_env_twin() {
        use clap::CommandFactory as _;
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{id} has no env twin"))
                .to_string_lossy()
                .into_owned();
            let expected = format!("PITCREW_VALIDATE_{}", id.to_ascii_uppercase());
            let shared = [
                "PITCREW_TERMINATION_LOG",
                "PITCREW_LOG_FORMAT",
                "PITCREW_LOG_LEVEL",
            ];
            assert!(env == expected || shared.contains(&env.as_str()), "--{id}: {env}");
        }
    }
}
