//! Command-line flags of `pitcrew-metrics` → [`crate::Config`], and the program itself
//! ([`main_with_args`]).
//!
//! Errors name the bad value and what was expected: clap's value errors and
//! [`MetricsError::Usage`] exit 64, a missing rule file 66, a refused one 78 (with every
//! problem's line). Every flag has an env twin `PITCREW_METRICS_<FLAG>`; `--log` takes a
//! comma-separated list there (`PITCREW_METRICS_LOG=/var/log/a.log,/var/log/b.log`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExitCode;

use clap::{ArgAction, Parser, ValueEnum};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::TlsArgs;

use crate::rules::RuleFile;
use crate::source::logs;
use crate::{Config, MetricsError, Outcome};

/// The default `--admin-addr`: every address, port 9534 (next to pitcrew-reload's 9533).
pub const DEFAULT_ADMIN_ADDR: &str = ":9534";

/// The largest rule file read (a rule file is a few kilobytes; a bigger one is a mistake,
/// such as a log file given as the rule file).
pub const MAX_RULE_FILE_BYTES: u64 = 4 * 1024 * 1024;

const EXAMPLES: &str = r#"Examples:
  pitcrew-metrics --config /etc/metrics/rules.yaml --log /var/log/nginx/access.log
  pitcrew-metrics --config /etc/metrics/rules.yaml          # status: and statsd: sections only
  pitcrew-metrics --statsd-addr :9125                       # StatsD, names sanitised, no mappings
  pitcrew-metrics --textfile-dir /var/lib/metrics            # *.prom files written by a Job
  pitcrew-metrics --config rules.yaml --check                # validate the rule file and exit

In a pod spec, counters and latency histograms from nginx's access log (the adapter pattern,
replacing mtail or grok_exporter), as a native sidecar:
  spec:
    initContainers:
      - name: metrics
        image: pitcrew/metrics:0.1.0
        restartPolicy: Always
        args: ["--config", "/etc/metrics/rules.yaml", "--log", "/var/log/nginx/access.log"]
        ports: [{name: metrics, containerPort: 9534}]
        readinessProbe:
          httpGet: {path: /readyz, port: 9534}
        volumeMounts:
          - {name: logs, mountPath: /var/log/nginx, readOnly: true}
          - {name: rules, mountPath: /etc/metrics, readOnly: true}
    containers:
      - name: nginx
        image: nginx:1.27
        volumeMounts:
          - {name: logs, mountPath: /var/log/nginx}
    volumes:
      - {name: logs, emptyDir: {}}
      - name: rules
        configMap: {name: nginx-metrics-rules}

A rule file (the schema is in the README):
  rules:
    - name: access
      regex: '"(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) \S+ (?P<seconds>[0-9.]+)$'
      metrics:
        - {name: http_requests_total, type: counter, labels: [method, status]}
        - {name: http_request_seconds, type: histogram, value: seconds, buckets: [0.05, 0.5, 5]}
  status:
    - file: /data/progress/status.json
      metrics:
        - {name: job_progress_ratio, value: $.progress}
  statsd:
    mappings:
      - {match: "app.*.requests", name: app_requests_total, labels: {service: "$1"}}
"#;

/// Serve Prometheus metrics made from an app's log lines, status files, textfiles and StatsD.
///
/// Log lines are matched by the rule file's `rules:` (regex with named captures, JSON or
/// logfmt fields) and counted, set or observed into histograms; status documents (JSON or YAML
/// files, re-read on change, and HTTP JSON endpoints, polled) give gauges picked by path;
/// `*.prom` files are validated and passed through; StatsD and DogStatsD packets are mapped to
/// Prometheus names. Every metric has a cap on its label sets (`max_series`, default 1000;
/// more are dropped and counted in pitcrew_metrics_series_dropped_total) and may forget idle
/// series (`idle_ttl`). A bad rule file is refused at start with each problem's line; after
/// start a bad line, packet or document is counted, logged and never fails a scrape. SIGTERM
/// exits at once with 0.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-metrics", bin_name = "pitcrew-metrics", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// The rule file (YAML): `rules:` for log lines, `status:` for status documents,
    /// `statsd:` for mappings. Read once at start; a refused file exits 78 with every problem.
    #[arg(long, value_name = "FILE", env = "PITCREW_METRICS_CONFIG")]
    pub config: Option<PathBuf>,

    /// A log file or glob (`/var/log/app/*.log`) to follow through the rule file's `rules:`;
    /// repeat for more (the env twin takes a comma-separated list). Rotation, truncation and
    /// files that appear later are handled.
    #[arg(long, value_name = "PATH", env = "PITCREW_METRICS_LOG", action = ArgAction::Append)]
    pub log: Vec<PathBuf>,

    /// Where reading starts in log files that exist at start: `end` (mtail's default: a
    /// restarted sidecar does not count old lines again) or `start`. Files that appear later
    /// are always read from their start.
    #[arg(
        long,
        value_name = "WHERE",
        env = "PITCREW_METRICS_FROM",
        value_enum,
        default_value = "end"
    )]
    pub from: FromArg,

    /// A directory of `*.prom` files (node_exporter's textfile collector format), read at each
    /// scrape, validated and passed through; a bad file is left out and counted.
    #[arg(long, value_name = "DIR", env = "PITCREW_METRICS_TEXTFILE_DIR")]
    pub textfile_dir: Option<PathBuf>,

    /// Receive StatsD/DogStatsD packets on this UDP address: `:PORT` or `IP:PORT` (e.g. :9125,
    /// statsd_exporter's port). Off by default.
    #[arg(long, value_name = "ADDR", env = "PITCREW_METRICS_STATSD_ADDR", value_parser = parse_statsd_addr)]
    pub statsd_addr: Option<SocketAddr>,

    /// Serve /metrics, /healthz and /readyz here: `:PORT` or `IP:PORT`.
    #[arg(long, value_name = "ADDR", env = "PITCREW_METRICS_ADMIN_ADDR", default_value = DEFAULT_ADMIN_ADDR, value_parser = parse_admin_addr)]
    pub admin_addr: SocketAddr,

    /// Check the rule file (and the other flags) and exit: 0 when it loads, 78 with every
    /// problem when it does not. Nothing is served.
    #[arg(long, env = "PITCREW_METRICS_CHECK")]
    pub check: bool,

    /// `--ca-file` and `--insecure`, for https status endpoints.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log_args: LogArgs,
}

/// `--from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromArg {
    /// The first line of existing files.
    Start,
    /// The end of existing files.
    End,
}

fn after_help() -> String {
    let mut text = format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, switches \
         take true/false, 1/0, yes/no, on/off, and --log a comma-separated list.\n\nExit codes:\n"
    );
    for (code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "  {:>3}  {meaning}", code.code());
    }
    text
}

/// The exit codes this tool uses, with what each means here.
pub const EXIT_CODES: &[(ExitCode, &str)] = &[
    (
        ExitCode::Ok,
        "stopped by SIGTERM or SIGINT (a sidecar stopped on purpose), or --check passed",
    ),
    (
        ExitCode::Failure,
        "the runtime or the log follower could not start, or --admin-addr / --statsd-addr cannot be bound",
    ),
    (
        ExitCode::Usage,
        "bad command line: nothing to serve, a bad address, an empty path",
    ),
    (
        ExitCode::NoInput,
        "the rule file (or --ca-file) is missing or unreadable",
    ),
    (
        ExitCode::Config,
        "the rule file is refused (every problem with its line), or its metrics clash",
    ),
];

fn parse_admin_addr(value: &str) -> Result<SocketAddr, String> {
    pitcrew_core::admin::parse_listen_address(value).ok_or_else(|| {
        format!("invalid --admin-addr {value:?}: expected IP:PORT or :PORT, e.g. :9534 or 127.0.0.1:9534")
    })
}

fn parse_statsd_addr(value: &str) -> Result<SocketAddr, String> {
    pitcrew_core::admin::parse_listen_address(value).ok_or_else(|| {
        format!("invalid --statsd-addr {value:?}: expected IP:PORT or :PORT, e.g. :9125 or 127.0.0.1:9125")
    })
}

impl Args {
    /// Checks the flags, loads the rule file and builds the configuration; env twins as this
    /// process has them.
    pub fn config(&self) -> Result<Config, MetricsError> {
        self.config_with(&|name| std::env::var(name).ok())
    }

    /// [`Args::config`] with the environment lookup given (to tell a flag's value from its
    /// env twin's list), for tests.
    pub fn config_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, MetricsError> {
        let logs = pitcrew_core::cli::env_paths(&self.log, env("PITCREW_METRICS_LOG"));
        if let Some(index) = logs.iter().position(|path| path.as_os_str().is_empty()) {
            return Err(MetricsError::Usage(format!(
                "--log number {} is empty: expected a path or glob",
                index + 1
            )));
        }
        if self
            .textfile_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(MetricsError::Usage(
                "--textfile-dir is empty: expected a directory".to_owned(),
            ));
        }
        let rules = match &self.config {
            Some(path) if path.as_os_str().is_empty() => {
                return Err(MetricsError::Usage(
                    "--config is empty: expected the rule file's path".to_owned(),
                ));
            }
            Some(path) => Some(load_rule_file(path)?),
            None => None,
        };
        if !logs.is_empty() && rules.as_ref().is_none_or(|rules| rules.logs.rules().is_empty()) {
            return Err(MetricsError::Usage(
                "--log needs a --config with `rules:`: without rules no line would become a metric"
                    .to_owned(),
            ));
        }
        let has_source = !logs.is_empty()
            || self.textfile_dir.is_some()
            || self.statsd_addr.is_some()
            || rules.as_ref().is_some_and(|rules| !rules.status.is_empty());
        if !has_source && !self.check {
            return Err(MetricsError::Usage(
                "nothing to serve: give --log with a --config holding `rules:`, a --config with `status:`, \
                 --textfile-dir or --statsd-addr"
                    .to_owned(),
            ));
        }
        let tls = pitcrew_core::tls::Tls::new(&self.tls.settings(), []).map_err(MetricsError::Tls)?;
        Ok(Config {
            rules,
            logs,
            from: match self.from {
                FromArg::Start => logs::From::Start,
                FromArg::End => logs::From::End,
            },
            textfile_dir: self.textfile_dir.clone(),
            tls,
        })
    }
}

/// Reads and validates the rule file: 66 when it cannot be read, 78 with every problem.
pub fn load_rule_file(path: &Path) -> Result<RuleFile, MetricsError> {
    let shown = path.display();
    let describe = |err: &std::io::Error| pitcrew_core::io_error::describe(err);
    let metadata = std::fs::metadata(path)
        .map_err(|err| MetricsError::NoInput(format!("--config {shown}: {}", describe(&err))))?;
    if metadata.is_dir() {
        return Err(MetricsError::NoInput(format!(
            "--config {shown}: is a directory; expected the rule file (e.g. {shown}/rules.yaml)"
        )));
    }
    if metadata.len() > MAX_RULE_FILE_BYTES {
        return Err(MetricsError::Config(format!(
            "--config {shown}: {} bytes; a rule file is at most {MAX_RULE_FILE_BYTES} bytes (is it the right file?)",
            metadata.len()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|err| MetricsError::NoInput(format!("--config {shown}: {}", describe(&err))))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        MetricsError::Config(format!(
            "--config {shown}: not UTF-8 text (byte {} is not valid UTF-8)",
            err.utf8_error().valid_up_to()
        ))
    })?;
    RuleFile::parse(&text).map_err(|err| MetricsError::Config(format!("--config {shown}: {err}")))
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-metrics` program: parses `args` (the program name first), sets up logging,
/// serves until SIGTERM/SIGINT, and returns the exit code (the table in --help), a start-up
/// failure's reason written to the termination log first.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log_args) {
        eprintln!("pitcrew-metrics: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match serve(&args) {
        Ok(None) => {
            tracing::info!("the rule file and flags are valid");
            ExitCode::Ok.into()
        }
        Ok(Some(Outcome::Stopped(signal))) => {
            tracing::info!("stopped by {}", pitcrew_core::shutdown::signal_name(signal));
            ExitCode::Ok.into()
        }
        Err(err) => {
            let message = pitcrew_core::redact::url_passwords_in(&err.to_string());
            tracing::error!(exit_code = err.exit_code().code(), "{message}");
            write_termination_log(&args.termination_log, &message);
            err.exit_code().into()
        }
    }
}

/// Builds the configuration, binds the sockets and runs (`None`: `--check` only), on a
/// runtime that ends without waiting for lookups still hanging (see `pitcrew_core::runtime`),
/// with SIGTERM/SIGINT handlers installed first.
fn serve(args: &Args) -> Result<Option<Outcome>, MetricsError> {
    let config = args.config()?;
    if args.check {
        return Ok(None);
    }
    let admin_addr = args.admin_addr;
    let statsd_addr = args.statsd_addr;
    pitcrew_core::runtime::block_on(|shutdown| async move {
        let admin = tokio::net::TcpListener::bind(admin_addr).await.map_err(|err| {
            MetricsError::Listen(format!(
                "--admin-addr {admin_addr}: cannot listen: {} (another container of the pod may use the port: give another)",
                pitcrew_core::io_error::describe(&err)
            ))
        })?;
        let statsd = match statsd_addr {
            Some(address) => Some(tokio::net::UdpSocket::bind(address).await.map_err(|err| {
                MetricsError::Listen(format!(
                    "--statsd-addr {address}: cannot listen: {}",
                    pitcrew_core::io_error::describe(&err)
                ))
            })?),
            None => None,
        };
        crate::run(config, admin, statsd, shutdown).await.map(Some)
    })
    .map_err(|err| MetricsError::Runtime(err.to_string()))?
}
