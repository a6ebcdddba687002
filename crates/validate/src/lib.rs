//! `pitcrew-validate`: the init container that checks an app's inputs before the app starts,
//! so a broken config or an expired certificate is found by one clear log line instead of
//! the app's crash loop.
//!
//! A run checks, in this order and each independently of the others:
//!
//! 1. **Data files** (positional FILE…): JSON, YAML (every document of a stream) and TOML
//!    syntax, with line and column ([`formats`]); duplicate keys; empty files; with
//!    `--schema`, every document against a JSON Schema, each violation with its JSON pointer
//!    and line ([`schema`]).
//! 2. **Certificates** (`--cert`): they parse, are valid now and for `--min-validity` more,
//!    match their `--key`, chain to `--ca`, cover each `--dns-name` ([`x509`]).
//! 3. **Environment variables** (`--env`, `--env-regex`): present, non-empty, matching
//!    ([`env`]).
//!
//! Every problem is collected into a [`Report`] and logged as it is found; one run lists them
//! all. Nothing is written anywhere (the tool only reads), so a run can never leave anything
//! half-done, and re-running it is always safe.

pub mod cli;
pub mod env;
mod error;
pub mod formats;
pub mod problem;
pub mod schema;
pub mod x509;

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pitcrew_core::stop::Stop;

pub use error::ValidateError;
use formats::Format;
pub use problem::Report;
use problem::{Check, Kind, Problem};

/// Largest file read, of any kind: ten times Kubernetes' 1 MiB limit for a ConfigMap or
/// Secret, and a guard against a FILE that is a device or a runaway log.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Everything a run needs, checked by [`cli::Args::config`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Data files, each with the format it is read as.
    pub files: Vec<(PathBuf, Format)>,
    /// `--schema`.
    pub schema: Option<PathBuf>,
    /// `--allow-empty`: an empty data file is a warning, not a problem.
    pub allow_empty: bool,
    /// The certificate checks.
    pub x509: x509::Options,
    /// `--env`.
    pub env: Vec<env::NamePattern>,
    /// `--env-regex`.
    pub env_regex: Vec<env::EnvRegex>,
    /// The environment the variables are looked up in.
    pub environment: Vec<(OsString, OsString)>,
    /// The time certificates must be valid at.
    pub now: SystemTime,
}

/// Runs every check and returns what was found; `Err` only when a signal stopped the run.
pub fn run(config: &Config, stop: &Stop) -> Result<Report, ValidateError> {
    let mut report = Report::default();
    let schema = match &config.schema {
        None => None,
        Some(path) => match schema::load(path) {
            Ok(schema) => Some(schema),
            Err(problems) => {
                for problem in problems {
                    report.add(problem);
                }
                None
            }
        },
    };
    for (path, format) in &config.files {
        stop.check()?;
        check_file(path, *format, schema.as_ref(), config.allow_empty, &mut report);
    }
    stop.check()?;
    x509::check(&config.x509, config.now, &mut report);
    env::check(&config.env, &config.env_regex, &config.environment, &mut report);
    Ok(report)
}

fn check_file(
    path: &Path,
    format: Format,
    schema: Option<&schema::Schema>,
    allow_empty: bool,
    report: &mut Report,
) {
    report.files += 1;
    let name = path.display().to_string();
    let bytes = match read_file(path) {
        Ok(bytes) => bytes,
        Err(message) => {
            report.add(Problem::new(Kind::Unreadable, Check::Read, message).in_file(&name));
            return;
        }
    };
    let parsed = formats::parse(format, &bytes);
    let syntax_ok = parsed
        .problems
        .iter()
        .all(|problem| problem.check != Check::Syntax);
    for problem in parsed.problems {
        report.add(problem.in_file(&name));
    }
    if parsed.empty {
        let empty = Problem::invalid(
            Check::Empty,
            format!(
                "is empty (no {format} data, only whitespace{}); an empty config in an init \
                 container is usually a mistake (--allow-empty accepts it)",
                if format == Format::Json {
                    ""
                } else {
                    " or comments"
                }
            ),
        )
        .in_file(&name);
        if allow_empty {
            report.warn(empty);
        } else {
            report.add(empty);
        }
        return;
    }
    let Some(schema) = schema else { return };
    if !syntax_ok {
        return;
    }
    let several = parsed.documents.len() > 1;
    for (index, document) in parsed.documents.iter().enumerate() {
        for problem in schema.validate(document, several.then_some(index + 1)) {
            report.add(problem.in_file(&name));
        }
    }
}

/// Reads a whole file named on the command line (data, schema, certificate, key, CA), or says
/// why not in words fit for a problem: missing, not readable, a directory, too big.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let describe = |err: &std::io::Error| match err.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied".to_owned(),
        _ => format!("cannot be read: {err}"),
    };
    let file = std::fs::File::open(path).map_err(|err| describe(&err))?;
    let metadata = file.metadata().map_err(|err| describe(&err))?;
    if metadata.is_dir() {
        return Err("is a directory; name the files inside it".to_owned());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| describe(&err))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "is larger than {} MiB, too big for a configuration file",
            MAX_FILE_SIZE / 1024 / 1024
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: Vec<(PathBuf, Format)>) -> Config {
        Config {
            files,
            schema: None,
            allow_empty: false,
            x509: x509::Options::default(),
            env: Vec::new(),
            env_regex: Vec::new(),
            environment: Vec::new(),
            now: SystemTime::now(),
        }
    }

    #[test]
    fn every_file_is_checked_and_every_problem_kept() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        let bad = dir.path().join("bad.yaml");
        let empty = dir.path().join("empty.toml");
        std::fs::write(&good, "{\"a\": 1}").unwrap();
        std::fs::write(&bad, "a: [1\n").unwrap();
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.json");
        let config = config(vec![
            (good, Format::Json),
            (bad, Format::Yaml),
            (empty.clone(), Format::Toml),
            (missing, Format::Json),
            (dir.path().to_path_buf(), Format::Json),
        ]);
        let report = run(&config, &Stop::never()).unwrap();
        assert_eq!(report.files, 5);
        let checks: Vec<Check> = report.problems.iter().map(|p| p.check).collect();
        assert_eq!(checks, [Check::Syntax, Check::Empty, Check::Read, Check::Read]);
        assert_eq!(report.exit_code(), pitcrew_core::exit::ExitCode::Failure);
        assert!(report.problems[3].message.contains("directory"));

        let mut allowed = config.clone();
        allowed.files = vec![(empty, Format::Toml)];
        allowed.allow_empty = true;
        let report = run(&allowed, &Stop::never()).unwrap();
        assert!(report.problems.is_empty());
        assert_eq!(report.warnings.len(), 1);
    }

    #[test]
    fn a_signal_stops_the_run() {
        let stop = Stop::never();
        stop.trigger(15);
        let err = run(&config(vec![(PathBuf::from("x.json"), Format::Json)]), &stop).unwrap_err();
        assert_eq!(err.exit_code().code(), 143);
    }

    #[test]
    fn big_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_SIZE + 1).unwrap();
        assert!(read_file(&path).unwrap_err().contains("larger than 16 MiB"));
    }
}
