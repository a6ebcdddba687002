//! `pitcrew-tail`: follow log files and print them (`tail -F`) or ship them, losing nothing.
//!
//! Module map: [`cli`] (busybox/GNU-compatible flags → [`Config`]; [`cli::main_with_args`] is
//! the whole program), `pitcrew_follow` (the follower engine, its own crate), [`process`] (lines → [`record::Record`]s: JSON, logfmt,
//! regex, multiline, added fields), [`encode`] (records → JSON), [`sink`] (stdout, HTTP ndjson,
//! Loki, Elasticsearch, syslog, S3; batching, retries, the disk buffer), [`pipeline`] (follower
//! → processor → sinks, acknowledgements → checkpoint), [`metrics`] (the admin server's
//! `/metrics`) and [`error`] (exit codes).

pub mod cli;
pub mod encode;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod sink;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::TailError;
use pitcrew_core::shutdown::Shutdown;
pub use pitcrew_follow::FollowConfig;

/// When `==> path <==` headers are printed before lines in raw stdout output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// When more than one file is followed (GNU and busybox tail's default).
    Auto,
    /// Never (`-q`).
    Never,
    /// Always (`-v`).
    Always,
}

/// How the stdout sink writes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The lines as read (default; `kubectl logs` shows exactly what the app wrote).
    Raw,
    /// One JSON object per record ([`encode::json_record`]).
    Json,
}

/// Everything `pitcrew-tail` does, as parsed and checked by [`cli`].
#[derive(Debug, Clone)]
pub struct Config {
    /// What to follow (patterns, start, rotation settings, max line bytes, …).
    pub follow: FollowConfig,
    /// `--checkpoint`: where delivered offsets are kept across restarts.
    pub checkpoint: Option<PathBuf>,
    /// `-q` / `-v`.
    pub headers: Headers,
    /// `--output` for the stdout sink.
    pub output: OutputFormat,
    /// Parsing, multiline joining, added fields.
    pub process: process::ProcessConfig,
    /// Where records go; `[Stdout]` when no `--sink` is given.
    pub sinks: Vec<sink::SinkSpec>,
    /// Batching, retries, backpressure, drop policy, disk buffer.
    pub delivery: sink::DeliveryConfig,
    /// Headers, TLS and timeouts of the network sinks.
    pub sink_options: sink::SinkOptions,
    /// How long SIGTERM waits for in-flight batches before giving up on them.
    pub drain_timeout: Duration,
    /// `--exit-on`: when this path appears, read everything to its end, deliver, exit 0.
    pub exit_on: Option<PathBuf>,
    /// `--admin-addr`: /healthz, /readyz, /metrics; `None` serves nothing.
    pub admin_addr: Option<SocketAddr>,
    /// `/readyz` fails when a sink has failed for longer than this.
    pub ready_sink_failure: Duration,
    /// `/readyz` fails when a growing file has not been read for longer than this.
    pub ready_stall: Duration,
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: drained and checkpointed (exit 0).
    Stopped,
    /// `--exit-on` appeared, or no `-f`/`-F`: everything read was delivered (exit 0).
    Finished,
}

/// Runs until `shutdown`, `--exit-on`, or (without `-f`/`-F`) the end of the files.
/// `admin` is the admin server's listener when `--admin-addr` is set.
pub async fn run(
    config: Config,
    admin: Option<tokio::net::TcpListener>,
    shutdown: Shutdown,
) -> Result<Outcome, TailError> {
    pipeline::run(config, admin, shutdown).await
}
