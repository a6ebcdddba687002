//! The command line of `pitcrew-wait`: flags (each with an env twin), help text, and the
//! translation into a [`Config`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use url::Url;

use crate::WaitError;
use crate::probe::dns::RecordType;
use crate::probe::http::{HttpSettings, StatusSet};
use crate::probe::k8s::{K8sSettings, SERVICE_ACCOUNT_DIR};
use crate::probe::{ProbeSettings, Prober};
use crate::runner::{Config, Mode, Verbosity};
use crate::target::Target;
use pitcrew_core::tls::TlsArgs;

const EXAMPLES: &str = r#"Examples:
  pitcrew-wait mysql:3306
  pitcrew-wait --timeout 10m postgres://app@postgres:5432/app redis://cache:6379/0
  pitcrew-wait --db-login --password-file /secrets/pg/password 'postgres://app@db/app?sslmode=verify-full'
  pitcrew-wait --http-status 200,204 --http-json status=UP http://backend:8080/health
  pitcrew-wait --any tcp://db-primary:5432 tcp://db-replica:5432
  pitcrew-wait k8s://job/migrate k8s://endpoints/api
  pitcrew-wait file:///shared/ready -- /app/server --port 8080

In a pod spec (init container):
  initContainers:
    - name: wait-for-db
      image: pitcrew/wait:0.1.0
      args: ["postgres://app@postgres:5432/app", "--timeout", "10m"]
      env:
        - name: PGPASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
"#;

/// The shortest `--interval`: below it a dependency that stays down is probed in a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest `--attempt-timeout`: nothing useful answers faster.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(10);

/// Wait until dependencies are ready, then exit 0 (or exec COMMAND).
///
/// Targets are checked in parallel, each retried with backoff (every 100 ms for the first
/// 10 s, then every --interval). A target's first failure and every change of reason are
/// logged, and a "still waiting" line every 10 s while it stays the same (--verbose: every
/// attempt; --quiet: changes only). Accepted
/// targets: HOST:PORT (tcp), tcp://HOST:PORT, unix:///PATH, http(s)://HOST[:PORT]/PATH,
/// dns://NAME, postgres://USER[:PASSWORD]@HOST[:PORT][/DB][?sslmode=MODE&sslrootcert=FILE],
/// mysql://USER[:PASSWORD]@HOST[:PORT][/DB][?ssl-mode=MODE&ssl-ca=FILE],
/// redis(s)://[[USER]:PASSWORD@]HOST[:PORT][/DB], file:///PATH, k8s://job/NAME,
/// k8s://pods?labelSelector=SELECTOR, k8s://endpoints/SERVICE.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "pitcrew-wait", bin_name = "pitcrew-wait", version, after_help = after_help(), max_term_width = 100)]
#[command(group = clap::ArgGroup::new("what").args(["targets", "target_list"]).multiple(true).required(true))]
pub struct Args {
    /// What to wait for (see the accepted forms above). Each argument is one target, spaces
    /// and all.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// More targets, separated by whitespace (spaces or newlines, e.g. a YAML `|` block): the
    /// form for the env twin. Added to the TARGET arguments.
    #[arg(long = "targets", value_name = "LIST", env = "PITCREW_WAIT_TARGETS", value_parser = parse_target_list)]
    pub target_list: Option<TargetList>,

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

    /// Give up after this long (exit 124); 0 waits forever. At most 1y.
    #[arg(long, env = "PITCREW_WAIT_TIMEOUT", default_value = "5m", value_parser = pitcrew_core::duration::parse)]
    pub timeout: Duration,

    /// Delay between two attempts at one target once the first 10 s are over (before that,
    /// a tenth of it). At least 100ms.
    #[arg(long, env = "PITCREW_WAIT_INTERVAL", default_value = "1s", value_parser = interval)]
    pub interval: Duration,

    /// Longest time one attempt may take before it counts as failed (cut at --timeout).
    #[arg(long, env = "PITCREW_WAIT_ATTEMPT_TIMEOUT", default_value = "5s", value_parser = attempt_timeout)]
    pub attempt_timeout: Duration,

    /// Successful attempts in a row a target needs before it counts as ready (for services
    /// that flap while starting).
    #[arg(long, env = "PITCREW_WAIT_SUCCESSES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub successes: u32,

    /// Wait until the targets stop answering (e.g. an old instance has shut down). Only a
    /// refused or unanswered connection, or a missing file or socket, counts as gone.
    #[arg(long, env = "PITCREW_WAIT_INVERT")]
    pub invert: bool,

    /// With --invert, a name that no longer resolves also counts as gone (a deleted Service).
    #[arg(long, env = "PITCREW_WAIT_INVERT_DNS", requires = "invert")]
    pub invert_dns: bool,

    /// Log only changes (the first failure, a new reason, the result): no "still waiting"
    /// lines.
    #[arg(short, long, env = "PITCREW_WAIT_QUIET", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log every attempt with its reason and the next delay (ten lines a second at first).
    #[arg(short, long, env = "PITCREW_WAIT_VERBOSE")]
    pub verbose: bool,

    /// Check the flags, the targets and the files they name, print what would be waited for,
    /// and exit 0 without contacting anything.
    #[arg(long, env = "PITCREW_WAIT_DRY_RUN")]
    pub dry_run: bool,

    /// HTTP statuses that count as ready: codes and ranges, e.g. 200,204,300-399.
    #[arg(long, env = "PITCREW_WAIT_HTTP_STATUS", default_value = "200-299", value_parser = parse_status)]
    pub http_status: StatusSet,

    /// A regular expression the HTTP response body must match.
    #[arg(long, env = "PITCREW_WAIT_HTTP_BODY", value_parser = parse_regex)]
    pub http_body: Option<regex_lite::Regex>,

    /// A condition on the JSON response body: `PATH=VALUE`, `PATH!=VALUE` or just `PATH`
    /// (present and not false or null), e.g. status=UP or components.db.status=UP or
    /// checks[0].healthy=true; repeat for more (all must hold).
    #[arg(long, env = "PITCREW_WAIT_HTTP_JSON", action = ArgAction::Append, value_delimiter = '\n')]
    pub http_json: Vec<String>,

    /// An HTTP request header, `Name: value`; repeat for more.
    #[arg(long, env = "PITCREW_WAIT_HTTP_HEADER", action = ArgAction::Append, value_delimiter = '\n')]
    pub http_header: Vec<String>,

    /// A response header that must be present (`Name`) or match a regular expression
    /// (`Name: regex`); repeat for more.
    #[arg(long, env = "PITCREW_WAIT_HTTP_HEADER_EXPECT", action = ArgAction::Append, value_delimiter = '\n')]
    pub http_header_expect: Vec<String>,

    /// HTTP request method.
    #[arg(long, env = "PITCREW_WAIT_HTTP_METHOD", default_value = "GET")]
    pub http_method: String,

    /// Follow HTTP redirects (up to 10) and judge the final response, instead of judging the
    /// redirect status itself.
    #[arg(long, env = "PITCREW_WAIT_HTTP_FOLLOW_REDIRECTS")]
    pub http_follow_redirects: bool,

    /// `--ca-file` and `--insecure`, for https and TLS database targets (shared with the
    /// other pitcrew tools).
    #[command(flatten)]
    pub tls: TlsArgs,

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

    /// A file holding the password (a mounted Secret) for every postgres, mysql and redis
    /// target without one in its URL; one trailing newline is ignored. Without it,
    /// PGPASSWORD, MYSQL_PWD and REDISCLI_AUTH are used as their clients do.
    #[arg(long, env = "PITCREW_WAIT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,

    /// The Kubernetes API server for k8s:// targets; by default the one the pod sees
    /// (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT).
    #[arg(long, env = "PITCREW_WAIT_K8S_API_SERVER", value_parser = parse_url)]
    pub k8s_api_server: Option<Url>,

    /// Where the service account's token, ca.crt and namespace files are.
    #[arg(long, env = "PITCREW_WAIT_K8S_SERVICE_ACCOUNT_DIR", default_value = SERVICE_ACCOUNT_DIR)]
    pub k8s_service_account_dir: PathBuf,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Targets from `--targets` / `PITCREW_WAIT_TARGETS`, split on any whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetList(pub Vec<String>);

// clap's `value_parser` takes a function returning a Result, even one that cannot fail.
#[allow(clippy::unnecessary_wraps)]
fn parse_target_list(value: &str) -> Result<TargetList, String> {
    Ok(TargetList(value.split_whitespace().map(str::to_owned).collect()))
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, and \
         switches take true/false, 1/0, yes/no, on/off.\n\n{}",
        ExitCode::help_table()
    )
}

fn interval(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, MIN_INTERVAL)
}

fn attempt_timeout(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, MIN_ATTEMPT_TIMEOUT)
}

fn parse_status(value: &str) -> Result<StatusSet, String> {
    value.parse()
}

fn parse_regex(value: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(value).map_err(|err| format!("invalid regular expression {value:?}: {err}"))
}

fn parse_url(value: &str) -> Result<Url, String> {
    Url::parse(value)
        .map_err(|err| format!("invalid URL {value:?} ({err}); expected e.g. https://10.96.0.1:443"))
}

impl Args {
    /// Every target given, on the command line first, then from `--targets`.
    pub fn all_targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(String::as_str).chain(
            self.target_list
                .iter()
                .flat_map(|list| list.0.iter().map(String::as_str)),
        )
    }

    /// Turns the flags into a [`Config`]: parses every target, reads `--password-file`.
    pub fn config(&self) -> Result<Config, WaitError> {
        let mut targets = self
            .all_targets()
            .map(Target::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| WaitError::Usage(err.to_string()))?;
        if targets.is_empty() {
            return Err(WaitError::Usage(
                "no target given: PITCREW_WAIT_TARGETS / --targets is empty and no TARGET argument was given"
                    .into(),
            ));
        }
        self.fill_passwords(&mut targets)?;
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
            invert_dns: self.invert_dns,
            successes: self.successes,
            verbosity: match (self.quiet, self.verbose) {
                (true, _) => Verbosity::Quiet,
                (_, true) => Verbosity::Verbose,
                _ => Verbosity::Normal,
            },
            probe: ProbeSettings {
                http: HttpSettings {
                    status: self.http_status.clone(),
                    body: self.http_body.clone(),
                    headers,
                    method: Some(self.http_method.clone()),
                    expect_headers: non_empty(&self.http_header_expect),
                    json: non_empty(&self.http_json),
                    follow_redirects: self.http_follow_redirects,
                    connect_timeout: Some(self.attempt_timeout),
                },
                tls: self.tls.settings(),
                dns_record: self.dns_type,
                file_non_empty: self.file_non_empty,
                db_login: self.db_login,
                k8s: K8sSettings {
                    api_server: self.k8s_api_server.clone(),
                    service_account_dir: Some(self.k8s_service_account_dir.clone()),
                },
            },
        })
    }

    /// Gives every database and Redis target without a password in its URL the one from
    /// `--password-file`, or else from its client's usual environment variable.
    fn fill_passwords(&self, targets: &mut [Target]) -> Result<(), WaitError> {
        let from_file = self
            .password_file
            .as_deref()
            .map(read_password_file)
            .transpose()?;
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let mut used = false;
        for target in targets {
            let (slot, variable) = match target {
                Target::Postgres(db) => (&mut db.password, "PGPASSWORD"),
                Target::Mysql(db) => (&mut db.password, "MYSQL_PWD"),
                Target::Redis(redis) => (&mut redis.password, "REDISCLI_AUTH"),
                _ => continue,
            };
            if slot.is_some() {
                continue;
            }
            if let Some(password) = &from_file {
                *slot = Some(password.clone());
                used = true;
            } else if let Some(password) = env(variable) {
                *slot = Some(password);
            }
        }
        if from_file.is_some() && !used {
            tracing::warn!(
                "--password-file is not used: no postgres, mysql or redis target lacks a password"
            );
        }
        Ok(())
    }
}

/// Reads a password file: the whole content but one trailing newline (`echo pw > file` and
/// `kubectl create secret --from-file` leave one). Unreadable is exit 66, empty exit 78; the
/// content is never shown.
fn read_password_file(path: &Path) -> Result<String, WaitError> {
    let bytes = std::fs::read(path).map_err(|err| {
        WaitError::NoInput(format!(
            "cannot read --password-file {}: {}",
            path.display(),
            crate::probe::describe_io(&err)
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| WaitError::Config(format!("--password-file {} is not UTF-8 text", path.display())))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(WaitError::Config(format!(
            "--password-file {} is empty",
            path.display()
        )));
    }
    Ok(password.to_owned())
}

fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .filter(|value| !value.trim().is_empty())
        .cloned()
        .collect()
}

fn parse_header(header: &str) -> Result<(String, String), WaitError> {
    match header.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        // Only the name is shown: the value may be a token.
        _ => Err(WaitError::Usage(format!(
            "invalid --http-header {:?}: expected `Name: value`, e.g. `Authorization: Bearer abc`",
            header.split(':').next().unwrap_or_default().trim()
        ))),
    }
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-wait` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew wait …`) with `pitcrew-wait` as the program name,
/// or its own unchanged when called through a `/wait` link. clap's messages say
/// `pitcrew-wait` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-wait: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    let result = if args.dry_run { dry_run(&args) } else { wait(&args) };
    match result {
        Ok(()) if args.command.is_empty() || args.dry_run => ExitCode::Ok.into(),
        // Only returns if the command could not be started.
        Ok(()) => fail(&args, &crate::exec::exec(&args.command)),
        Err(err) => fail(&args, &err),
    }
}

/// Waits on a runtime that ends without waiting for lookups still hanging, so that exit and
/// exec happen as soon as the wait is over (see `pitcrew_core::runtime`).
fn wait(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| async move { crate::run(&config, shutdown).await.map(drop) })
        .map_err(|err| WaitError::Runtime(err.to_string()))?
}

/// `--dry-run`: everything that can be checked without contacting a target (flags, targets,
/// the files they name), then what would be done, on stdout: a pod spec's args and env can be
/// checked on a laptop with the image.
fn dry_run(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    Prober::new(config.probe.clone(), &config.targets)?;
    let (mode, goal) = match (config.mode, config.invert) {
        (Mode::All, false) => ("all", "ready"),
        (Mode::Any, false) => ("any one", "ready"),
        (Mode::All, true) => ("all", "gone"),
        (Mode::Any, true) => ("any one", "gone"),
    };
    println!(
        "would wait until {mode} of these targets {} {goal}:",
        if config.targets.len() == 1 { "is" } else { "are" }
    );
    for target in &config.targets {
        println!("  {target}");
    }
    let human = pitcrew_core::duration::display;
    println!(
        "settings: timeout={} interval={} attempt-timeout={} successes={} quiet={} verbose={} db-login={} invert-dns={}",
        config.timeout.map_or_else(|| "none".to_owned(), human),
        human(config.interval),
        human(config.attempt_timeout),
        config.successes,
        config.verbosity == Verbosity::Quiet,
        config.verbosity == Verbosity::Verbose,
        config.probe.db_login,
        config.invert_dns,
    );
    if !args.command.is_empty() {
        println!("then exec: {}", args.command.join(" "));
    }
    Ok(())
}

fn fail(args: &Args, err: &WaitError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
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
        assert!(err.contains("at least 100ms"), "{err}");
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
        assert!(
            parse(&["--invert-dns", "tcp://a:1"]).is_err(),
            "--invert-dns needs --invert"
        );
        let err = parse(&["--successes", "0", "tcp://a:1"]).unwrap_err().to_string();
        assert!(err.contains("'0'"), "{err}");
    }

    /// Regression: `--timeout 300000000000y` and `--interval 30000000000y` parsed, then
    /// panicked in clock arithmetic (exit 134); `--interval 1ns` made thousands of attempts.
    #[test]
    fn durations_are_bounded_on_both_sides() {
        for (flag, value, message) in [
            (
                "--timeout",
                "300000000000y",
                "longer than the longest accepted, 1y",
            ),
            (
                "--interval",
                "30000000000y",
                "longer than the longest accepted, 1y",
            ),
            ("--attempt-timeout", "2y", "1y"),
            ("--interval", "1ns", "at least 100ms"),
            ("--attempt-timeout", "1ms", "at least 10ms"),
        ] {
            let err = parse(&[flag, value, "tcp://a:1"]).unwrap_err().to_string();
            assert!(
                err.contains(value) && err.contains(message),
                "{flag} {value}: {err}"
            );
        }
        let config = parse(&["--timeout", "1y", "--interval", "1y", "tcp://a:1"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(config.timeout, Some(pitcrew_core::duration::MAX));
    }

    /// Regression: targets on the command line were split on spaces, so the single argument
    /// `file:///data/a b/ready` became two bad targets. Only the list form splits.
    #[test]
    fn only_the_target_list_is_split_on_whitespace() {
        let config = parse(&["file:///data/a b/ready"]).unwrap().config().unwrap();
        assert_eq!(config.targets.len(), 1);
        assert_eq!(config.targets[0].to_string(), "file:///data/a b/ready");
        let args = parse(&["db:1", "--targets", " tcp://a:1\n\tredis://b:2  \n"]).unwrap();
        let listed: Vec<&str> = args.all_targets().collect();
        assert_eq!(listed, ["db:1", "tcp://a:1", "redis://b:2"]);
    }
}
