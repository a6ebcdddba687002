//! The command line of `pitcrew-wait`: flags (each with an env twin), help text, and the
//! translation into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode};
use pitcrew_core::logging::LogArgs;

use crate::WaitError;
use crate::probe::ProbeSettings;
use crate::probe::dns::RecordType;
use crate::probe::http::{HttpSettings, StatusSet};
use crate::runner::{Config, Mode};
use crate::target::Target;

const EXAMPLES: &str = r#"Examples:
  pitcrew-wait tcp://mysql:3306
  pitcrew-wait --timeout 10m postgres://app@postgres:5432/app redis://cache:6379
  pitcrew-wait --http-status 200,204 --http-body '"status":"UP"' http://backend:8080/health
  pitcrew-wait --any tcp://db-primary:5432 tcp://db-replica:5432
  pitcrew-wait file:///shared/ready -- /app/server --port 8080

In a pod spec (init container):
  initContainers:
    - name: wait-for-db
      image: pitcrew/wait:0.1.0
      args: ["postgres://app@postgres:5432/app", "--timeout", "10m"]
"#;

/// Wait until dependencies are ready, then exit 0 (or exec COMMAND).
///
/// Targets are URLs, checked in parallel, each retried with backoff (every 100 ms for the
/// first 10 s, then every --interval). Every failed attempt is logged with its
/// reason. Accepted targets: tcp://HOST:PORT, http(s)://HOST[:PORT]/PATH, dns://NAME,
/// postgres://USER[:PASSWORD]@HOST[:PORT][/DB], mysql://USER[:PASSWORD]@HOST[:PORT][/DB],
/// redis://[[USER]:PASSWORD@]HOST[:PORT], file:///PATH.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "pitcrew-wait", bin_name = "pitcrew-wait", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// What to wait for (see the accepted forms above).
    #[arg(
        value_name = "TARGET",
        required = true,
        env = "PITCREW_WAIT_TARGETS",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub targets: Vec<String>,

    /// Command to exec once every target is ready (after `--`); it replaces pitcrew-wait, so
    /// its exit code is the container's.
    #[arg(value_name = "COMMAND", last = true)]
    pub command: Vec<String>,

    /// Wait until any one target is ready instead of all of them.
    #[arg(long, env = "PITCREW_WAIT_ANY", conflicts_with = "all")]
    pub any: bool,

    /// Wait until every target is ready (the default).
    #[arg(long, env = "PITCREW_WAIT_ALL")]
    pub all: bool,

    /// Give up after this long (exit 124); 0 waits forever.
    #[arg(long, env = "PITCREW_WAIT_TIMEOUT", default_value = "5m", value_parser = pitcrew_core::duration::parse)]
    pub timeout: Duration,

    /// Delay between two attempts at one target once the first 10 s are over (before that,
    /// a tenth of it).
    #[arg(long, env = "PITCREW_WAIT_INTERVAL", default_value = "1s", value_parser = positive_duration)]
    pub interval: Duration,

    /// Longest time one attempt may take before it counts as failed.
    #[arg(long, env = "PITCREW_WAIT_ATTEMPT_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub attempt_timeout: Duration,

    /// Wait until the targets stop answering (e.g. an old instance has shut down).
    #[arg(long, env = "PITCREW_WAIT_INVERT")]
    pub invert: bool,

    /// Log only changes (first failure, a new reason, ready) instead of every attempt.
    #[arg(short, long, env = "PITCREW_WAIT_QUIET")]
    pub quiet: bool,

    /// HTTP statuses that count as ready: codes and ranges, e.g. 200,204,300-399.
    #[arg(long, env = "PITCREW_WAIT_HTTP_STATUS", default_value = "200-299", value_parser = parse_status)]
    pub http_status: StatusSet,

    /// A regular expression the HTTP response body must match.
    #[arg(long, env = "PITCREW_WAIT_HTTP_BODY", value_parser = parse_regex)]
    pub http_body: Option<regex_lite::Regex>,

    /// An HTTP request header, `Name: value`; repeat for more.
    #[arg(long, env = "PITCREW_WAIT_HTTP_HEADER", action = ArgAction::Append, value_delimiter = '\n')]
    pub http_header: Vec<String>,

    /// HTTP request method.
    #[arg(long, env = "PITCREW_WAIT_HTTP_METHOD", default_value = "GET")]
    pub http_method: String,

    /// Extra CA certificates (PEM) to trust for https targets, e.g. a cluster-internal CA.
    #[arg(long, env = "PITCREW_WAIT_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates of https targets (testing only).
    #[arg(long, env = "PITCREW_WAIT_INSECURE")]
    pub insecure: bool,

    /// Address family a dns:// target must resolve to.
    #[arg(long, env = "PITCREW_WAIT_DNS_TYPE", value_enum, default_value = "any")]
    pub dns_type: RecordType,

    /// file:// targets must also be non-empty (a file with content, a directory with entries).
    #[arg(long, env = "PITCREW_WAIT_FILE_NON_EMPTY")]
    pub file_non_empty: bool,

    /// For postgres:// and mysql:// targets with a password: log in and run SELECT 1 (or a
    /// MySQL ping) instead of only checking that the server answers.
    #[arg(long, env = "PITCREW_WAIT_DB_LOGIN")]
    pub db_login: bool,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

fn after_help() -> String {
    format!("{EXAMPLES}\n{}", ExitCode::help_table())
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    let duration = pitcrew_core::duration::parse(value)?;
    if duration.is_zero() {
        return Err(format!(
            "invalid duration {value:?}: must be greater than 0, e.g. 1s"
        ));
    }
    Ok(duration)
}

fn parse_status(value: &str) -> Result<StatusSet, String> {
    value.parse()
}

fn parse_regex(value: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(value).map_err(|err| format!("invalid regular expression {value:?}: {err}"))
}

impl Args {
    /// Turns the flags into a [`Config`], parsing every target first.
    pub fn config(&self) -> Result<Config, WaitError> {
        let targets = self
            .targets
            .iter()
            .filter(|target| !target.is_empty())
            .map(|target| Target::parse(target))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| WaitError::Usage(err.to_string()))?;
        let headers = self
            .http_header
            .iter()
            .filter(|header| !header.trim().is_empty())
            .map(|header| parse_header(header))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            targets,
            mode: if self.any { Mode::Any } else { Mode::All },
            timeout: (!self.timeout.is_zero()).then_some(self.timeout),
            interval: self.interval,
            attempt_timeout: self.attempt_timeout,
            invert: self.invert,
            quiet: self.quiet,
            probe: ProbeSettings {
                http: HttpSettings {
                    status: self.http_status.clone(),
                    body: self.http_body.clone(),
                    headers,
                    method: Some(self.http_method.clone()),
                    ca_file: self.ca_file.clone(),
                    insecure: self.insecure,
                },
                dns_record: self.dns_type,
                file_non_empty: self.file_non_empty,
                db_login: self.db_login,
            },
        })
    }
}

fn parse_header(header: &str) -> Result<(String, String), WaitError> {
    match header.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(WaitError::Usage(format!(
            "invalid --http-header {header:?}: expected `Name: value`, e.g. `Authorization: Bearer abc`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pitcrew-wait").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_suit_init_containers() {
        let config = parse(&["tcp://db:5432"]).unwrap().config().unwrap();
        assert_eq!(config.timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.mode, Mode::All);
        assert!(!config.invert);
    }

    #[test]
    fn zero_timeout_means_forever_and_any_switches_mode() {
        let config = parse(&["--timeout", "0", "--any", "tcp://a:1", "tcp://b:2"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(config.timeout, None);
        assert_eq!(config.mode, Mode::Any);
        assert_eq!(config.targets.len(), 2);
    }

    #[test]
    fn command_after_double_dash_is_kept_verbatim() {
        let args = parse(&["tcp://a:1", "--", "/bin/app", "--port", "80"]).unwrap();
        assert_eq!(args.command, ["/bin/app", "--port", "80"]);
        assert_eq!(args.targets, ["tcp://a:1"]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_value() {
        let err = parse(&["--timeout", "30", "tcp://a:1"]).unwrap_err().to_string();
        assert!(err.contains("\"30\""), "{err}");
        let err = parse(&["--interval", "0", "tcp://a:1"]).unwrap_err().to_string();
        assert!(err.contains("greater than 0"), "{err}");
        let err = parse(&["--http-body", "(", "tcp://a:1"]).unwrap_err().to_string();
        assert!(err.contains("invalid regular expression"), "{err}");
        let err = parse(&["--http-header", "NoColon", "tcp://a:1"])
            .unwrap()
            .config()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"NoColon\"") && err.contains("Name: value"),
            "{err}"
        );
        let err = parse(&["ftp://x"]).unwrap().config().unwrap_err().to_string();
        assert!(err.contains("unknown scheme"), "{err}");
        assert!(parse(&[]).is_err(), "a target is required");
        assert!(parse(&["--any", "--all", "tcp://a:1"]).is_err());
    }
}
