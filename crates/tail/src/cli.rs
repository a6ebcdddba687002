//! Command-line flags (busybox/GNU `tail` compatible, plus pitcrew's) → [`crate::Config`].
//!
//! The drop-in forms work unchanged: `-n+1 -F FILE`, `-n 0 -F`, `-qF a b`, `-fn+1 FILE`,
//! `--follow=name --retry`, `--lines=+5`. Two deliberate differences from GNU tail: without
//! `-n` reading starts at the first line (GNU shows the last 10), because a restarted sidecar
//! must not skip what the app wrote meanwhile; and `-c`/`--bytes` is refused (exit 64), since
//! records are lines.
//!
//! Errors name the bad value and what was expected; clap's value errors and [`TailError::Usage`]
//! exit 64, values that parse but cannot be used together [`TailError::Config`] 78. Header
//! values and sink credentials never appear in a message.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;
use std::time::Duration;

use clap::{ArgAction, ArgGroup, Parser, ValueEnum};
use pitcrew_core::duration;
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::TlsArgs;
use pitcrew_follow::{FollowConfig, StartAt};

use crate::encode::RESERVED_NAMES;
use crate::process::{Multiline, ProcessConfig};
use crate::sink::{BufferConfig, DeliveryConfig, SinkOptions, SinkSpec};
use crate::{Config, Headers, Outcome, OutputFormat, TailError};

const EXAMPLES: &str = r#"Examples:
  pitcrew-tail -n+1 -F /var/log/nginx/access.log
  pitcrew-tail -F --output json --parse json '/var/log/app/*.log'
  pitcrew-tail -F --checkpoint /var/log/app/.tail.checkpoint \
      --sink stdout --sink https://ingest.example.com/logs '/var/log/app/*.log'
  pitcrew-tail -F --multiline-start '^\d{4}-\d{2}-\d{2}' --sink loki+http://loki:3100 /var/log/app/app.log
  pitcrew-tail -F --exit-on /var/log/app/.done /var/log/app/job.log   (classic sidecar of a Job)

In a pod spec (a native sidecar; replaces busybox's `tail -n+1 -F /var/log/nginx/access.log`,
args unchanged):
  initContainers:
    - name: access-log
      image: pitcrew/tail:0.1.0
      restartPolicy: Always
      args: ["-n+1", "-F", "/var/log/nginx/access.log"]
      volumeMounts:
        - {name: logs, mountPath: /var/log/nginx}
  `kubectl logs POD -c access-log` shows the lines. To ship them as well, with pod metadata:
      args: ["-F", "--checkpoint", "/var/log/nginx/.tail.checkpoint",
             "--sink", "stdout", "--sink", "https://ingest.example.com/logs",
             "/var/log/nginx/access.log"]
      env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
"#;

/// The pod metadata added to JSON records when these variables are set and not empty (the
/// downward API's usual names), and the field each becomes.
pub const POD_FIELDS: [(&str, &str); 4] = [
    ("POD_NAME", "pod"),
    ("POD_NAMESPACE", "namespace"),
    ("NODE_NAME", "node"),
    ("CONTAINER_NAME", "container"),
];

/// Shortest `-s`, `--rescan-interval`, `--request-timeout`, `--partial-line-timeout`: below
/// these, polling turns into a busy loop or lines are split before their newline arrives.
const MIN_POLL: Duration = Duration::from_millis(10);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Follow log files (`tail -F`), print them or ship them, and lose no line.
///
/// Files are followed through every rotation (rename and create, copytruncate, delete and
/// recreate, a symlink whose target changes); globs pick up files that appear later. Lines
/// go to stdout as written (the default), or as JSON records, and/or to sinks: HTTP
/// (newline-delimited JSON), Loki, Elasticsearch, syslog, S3. With --checkpoint, the offset of
/// the last line every sink has acknowledged is kept across restarts: nothing is lost, and
/// after a clean stop nothing is sent twice. SIGTERM drains what is in flight (--drain-timeout)
/// and exits 0. Without -f or -F, every file is read to its end once and the command exits.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "pitcrew-tail", bin_name = "pitcrew-tail", version, after_help = after_help(), max_term_width = 100)]
#[command(group = ArgGroup::new("inputs").args(["files", "file_list"]).multiple(true).required(true))]
pub struct Args {
    /// Files to follow: paths or globs (`'/var/log/app/*.log'`; `*`, `?`, `[…]`). A path that
    /// does not exist yet is waited for.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// More files, separated by whitespace (spaces or newlines): the form for the env twin.
    /// Added to FILE. Paths with spaces go in FILE.
    #[arg(long = "files", value_name = "LIST", env = "PITCREW_TAIL_FILES")]
    pub file_list: Option<String>,

    /// Follow names and retry: reopen a path that is rotated, replaced or not there yet (=
    /// --follow=name --retry). The env twin of -F and -f is PITCREW_TAIL_FOLLOW=name|descriptor.
    #[arg(short = 'F')]
    pub follow_name_retry: bool,

    /// Follow the files opened at start by descriptor (busybox and GNU `-f`): a rotated file
    /// is read to its end, then let go.
    #[arg(short = 'f')]
    pub follow_descriptor: bool,

    /// `--follow=name` is -F, `--follow` or `--follow=descriptor` is -f.
    #[arg(long, value_name = "HOW", env = "PITCREW_TAIL_FOLLOW", value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "descriptor")]
    pub follow: Option<FollowMode>,

    /// Keep trying to open files that are missing (accepted for GNU compatibility: pitcrew-tail
    /// always does with -F).
    #[arg(long, env = "PITCREW_TAIL_RETRY")]
    pub retry: bool,

    /// Where to start in files present at start: `+N` from line N (`+1`: the first line), `N`
    /// the last N lines, `0` the end. Default: from the first line — unlike GNU tail's last
    /// 10, so that a restarted sidecar loses nothing. Files that appear later start at their
    /// first line; files in the checkpoint resume where it says.
    #[arg(short = 'n', long = "lines", value_name = "[+]N", env = "PITCREW_TAIL_LINES", allow_negative_numbers = true, value_parser = parse_lines)]
    pub lines: Option<StartAt>,

    /// Never print `==> FILE <==` headers (raw output; by default printed when more than one
    /// file is followed, as tail does).
    #[arg(
        short,
        long,
        visible_alias = "silent",
        env = "PITCREW_TAIL_QUIET",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    /// Always print `==> FILE <==` headers (raw output).
    #[arg(short, long, env = "PITCREW_TAIL_VERBOSE")]
    pub verbose: bool,

    /// How often files are checked for growth when no change notification arrives: seconds
    /// (`0.5`, as GNU tail takes them) or a duration (`500ms`). At least 10ms.
    #[arg(short = 's', long, value_name = "SECONDS", env = "PITCREW_TAIL_SLEEP_INTERVAL", default_value = "250ms", value_parser = parse_sleep)]
    pub sleep_interval: Duration,

    /// Not supported: records are lines, so byte mode is refused (exit 64).
    #[arg(short = 'c', long = "bytes", value_name = "N", allow_negative_numbers = true)]
    pub bytes: Option<String>,

    /// A file keeping, per file, the offset of the last line every sink has acknowledged; a
    /// restart resumes there. Written atomically (its directory must be writable).
    #[arg(long, value_name = "PATH", env = "PITCREW_TAIL_CHECKPOINT")]
    pub checkpoint: Option<PathBuf>,

    /// How the stdout sink writes: `raw` (the lines as written, the default) or `json` (one
    /// record per line: time, file, message, parsed and added fields).
    #[arg(long, value_name = "FORMAT", env = "PITCREW_TAIL_OUTPUT", value_enum)]
    pub output: Option<OutputArg>,

    /// Parse each line (or multiline group) into fields: `json` (an object's members) or
    /// `logfmt` (`key=value key2="v 2"`). Lines that do not parse are kept, without fields.
    #[arg(
        long,
        value_name = "FORMAT",
        env = "PITCREW_TAIL_PARSE",
        value_enum,
        default_value = "none"
    )]
    pub parse: ParseArg,

    /// Parse lines with a regular expression: its named captures (`(?<status>\d+)`) become
    /// fields; lines that do not match are kept, without fields.
    #[arg(long, value_name = "PATTERN", env = "PITCREW_TAIL_REGEX", value_parser = parse_capture_regex)]
    pub regex: Option<regex_lite::Regex>,

    /// Join lines into records (stack traces): a record starts at a line matching this regex;
    /// lines that do not match are appended to it, e.g. `^\d{4}-\d{2}-\d{2}` or `^\S`.
    #[arg(long, value_name = "REGEX", env = "PITCREW_TAIL_MULTILINE_START", value_parser = parse_regex)]
    pub multiline_start: Option<regex_lite::Regex>,

    /// A multiline record is complete when no line joined it for this long. At least 10ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_MULTILINE_TIMEOUT", default_value = "1s", value_parser = at_least_poll)]
    pub multiline_timeout: Duration,

    /// … or when it has this many lines.
    #[arg(long, value_name = "N", env = "PITCREW_TAIL_MULTILINE_MAX_LINES", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub multiline_max_lines: u32,

    /// … or when the next line would take it over this size (256 to 1GiB).
    #[arg(long, value_name = "SIZE", env = "PITCREW_TAIL_MULTILINE_MAX_BYTES", default_value = "1MiB", value_parser = line_size)]
    pub multiline_max_bytes: usize,

    /// A field added to every JSON record, `KEY=VALUE` (KEY: letters, digits, `_`, not
    /// starting with a digit; not time, file or message); repeat for more (the env twin takes
    /// one per line). Overrides the pod metadata field of the same name.
    #[arg(long, value_name = "KEY=VALUE", env = "PITCREW_TAIL_FIELD", action = ArgAction::Append, value_delimiter = '\n')]
    pub field: Vec<String>,

    /// Do not add the pod metadata fields (pod, namespace, node, container from POD_NAME,
    /// POD_NAMESPACE, NODE_NAME, CONTAINER_NAME when set and not empty).
    #[arg(long, env = "PITCREW_TAIL_NO_POD_FIELDS")]
    pub no_pod_fields: bool,

    /// Where records go; repeat for several (the env twin takes a whitespace-separated list):
    /// `stdout` (the default), `http(s)://…` (ndjson POST), `loki+http(s)://HOST:3100`,
    /// `elasticsearch+http(s)://HOST:9200/INDEX` (or `es+`), `syslog+tcp://HOST:514`,
    /// `syslog+udp://HOST:514`, `s3://BUCKET/KEY-TEMPLATE`.
    #[arg(long, value_name = "URL", env = "PITCREW_TAIL_SINKS", action = ArgAction::Append)]
    pub sink: Vec<String>,

    /// A header for the HTTP, Loki and Elasticsearch sinks, `Name: value`; repeat for more (the
    /// env twin takes one per line). Values are secrets: never logged or shown in errors.
    #[arg(long, value_name = "'NAME: VALUE'", env = "PITCREW_TAIL_HEADER", action = ArgAction::Append, value_delimiter = '\n')]
    pub header: Vec<String>,

    /// How long one request to a sink may take (connect, send, answer). At least 100ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_REQUEST_TIMEOUT", default_value = "30s", value_parser = at_least_interval)]
    pub request_timeout: Duration,

    /// A batch is sent when it holds this much (bytes, or with a unit: 512KiB, 1MiB, 10MB;
    /// 1KiB to 1GiB). Larger batches carry more per request to a distant receiver; the
    /// default keeps a sidecar at 100k lines/s under 8 MB of memory.
    #[arg(long, value_name = "SIZE", env = "PITCREW_TAIL_BATCH_MAX_BYTES", default_value = "512KiB", value_parser = batch_size)]
    pub batch_max_bytes: usize,

    /// … or when its first record has waited this long (0: at once).
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_BATCH_MAX_WAIT", default_value = "1s", value_parser = duration::parse)]
    pub batch_max_wait: Duration,

    /// The most record bytes a sink's queue holds in memory; when it is full, reading pauses
    /// (backpressure) rather than dropping. At least --batch-max-bytes; at most 16GiB.
    #[arg(long, value_name = "SIZE", env = "PITCREW_TAIL_QUEUE_MAX_BYTES", default_value = "8MiB", value_parser = queue_size)]
    pub queue_max_bytes: usize,

    /// Longest pause between two retries of a failed batch (the first is 500ms, doubling).
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_RETRY_MAX_DELAY", default_value = "30s", value_parser = retry_delay)]
    pub retry_max_delay: Duration,

    /// Drop a batch that could not be delivered for this long (counted and logged). By
    /// default nothing is ever dropped: reading pauses until the sink is back. At least 1s.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_DROP_AFTER", value_parser = at_least_second)]
    pub drop_after: Option<Duration>,

    /// Spill queued records to this directory when a sink is slow or down, instead of pausing
    /// reading (one subdirectory per sink).
    #[arg(long, value_name = "DIR", env = "PITCREW_TAIL_BUFFER_DIR")]
    pub buffer_dir: Option<PathBuf>,

    /// Size cap of --buffer-dir over all sinks (default 256MiB); when reached, reading pauses.
    #[arg(long, value_name = "SIZE", env = "PITCREW_TAIL_BUFFER_MAX_BYTES", value_parser = buffer_size)]
    pub buffer_max_bytes: Option<u64>,

    /// Longest line kept (256 to 1GiB); longer lines are cut and marked
    /// ` [pitcrew: line truncated]`, the rest of the line skipped.
    #[arg(long, value_name = "SIZE", env = "PITCREW_TAIL_MAX_LINE_BYTES", default_value = "1MiB", value_parser = line_size)]
    pub max_line_bytes: usize,

    /// How long a last line without its newline is held before it is sent on its own. At
    /// least 100ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_PARTIAL_LINE_TIMEOUT", default_value = "5s", value_parser = at_least_interval)]
    pub partial_line_timeout: Duration,

    /// How long a rotated-away or deleted file is kept open after its end, in case the writer
    /// still appends to it.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_ROTATE_WAIT", default_value = "5s", value_parser = duration::parse)]
    pub rotate_wait: Duration,

    /// How often globs are expanded again and files checked for rotation, as a backstop for
    /// missed change notifications. At least 100ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_RESCAN_INTERVAL", default_value = "1s", value_parser = at_least_interval)]
    pub rescan_interval: Duration,

    /// On SIGTERM, how long to wait for in-flight batches before exiting 1 (the checkpoint
    /// keeps what was delivered). Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_DRAIN_TIMEOUT", default_value = "20s", value_parser = duration::parse)]
    pub drain_timeout: Duration,

    /// When this path appears (the app's last act in a Job), read every file to its end,
    /// deliver, and exit 0: a classic sidecar then lets the Job complete.
    #[arg(long, value_name = "PATH", env = "PITCREW_TAIL_EXIT_ON")]
    pub exit_on: Option<PathBuf>,

    /// Serve /healthz, /readyz and /metrics here, e.g. `:9090` or `127.0.0.1:9090`. Off by
    /// default: the containers of a pod share one network namespace, so a fixed port could
    /// take the app's.
    #[arg(long, value_name = "ADDR", env = "PITCREW_TAIL_ADMIN_ADDR", value_parser = parse_admin_addr)]
    pub admin_addr: Option<SocketAddr>,

    /// /readyz fails when a sink has failed for longer than this. At least 1s.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_READY_SINK_FAILURE", default_value = "60s", value_parser = at_least_second)]
    pub ready_sink_failure: Duration,

    /// /readyz fails when a growing file has not been read for longer than this. At least 1s.
    #[arg(long, value_name = "DURATION", env = "PITCREW_TAIL_READY_STALL", default_value = "60s", value_parser = at_least_second)]
    pub ready_stall: Duration,

    /// `--ca-file` and `--insecure`, for https sinks (shared with the other pitcrew tools).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `--follow=HOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FollowMode {
    /// Follow names (-F).
    Name,
    /// Follow the opened files (-f).
    Descriptor,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// The lines as written.
    Raw,
    /// One JSON record per line.
    Json,
}

/// `--parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParseArg {
    /// No parsing.
    None,
    /// A JSON object per line.
    Json,
    /// logfmt pairs.
    Logfmt,
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, and \
         switches take true/false, 1/0, yes/no, on/off. -n: without it reading starts at the \
         first line (GNU tail: the last 10). -c/--bytes is not supported (exit 64).\n\n{}",
        ExitCode::help_table()
    )
}

/// `-n`/`--lines`: `+N` (from line N; `+0` and `+1` from the first), `N` or `-N` (the last
/// N lines; `0` from the end).
fn parse_lines(value: &str) -> Result<StartAt, String> {
    let text = value.trim();
    let (from_start, digits) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('-').unwrap_or(text)),
    };
    let expected =
        "expected +N (from line N; +1 is the first line), N (the last N lines) or 0 (from the end)";
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid line count {value:?}: {expected}"));
    }
    let count: u64 = digits.parse().map_err(|_| {
        format!(
            "invalid line count {value:?}: larger than the largest accepted, {}",
            u64::MAX
        )
    })?;
    Ok(match (from_start, count) {
        (true, 0 | 1) => StartAt::Beginning,
        (true, line) => StartAt::FromLine(line),
        (false, 0) => StartAt::End,
        (false, lines) => StartAt::LastLines(lines),
    })
}

/// `-s`: seconds as GNU tail takes them (`1`, `0.5`) or a human duration (`500ms`).
fn parse_sleep(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let seconds_form = !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.')
        && text.bytes().filter(|&byte| byte == b'.').count() <= 1
        && text != ".";
    let duration = if seconds_form {
        let seconds: f64 = text.parse().map_err(|_| {
            format!("invalid interval {value:?}: expected seconds (0.5) or a duration (500ms)")
        })?;
        if seconds > duration::MAX.as_secs_f64() {
            return Err(format!(
                "invalid interval {value:?}: longer than the longest accepted, 1y"
            ));
        }
        Duration::from_secs_f64(seconds)
    } else {
        duration::parse(text).map_err(|err| format!("{err} (or seconds, e.g. 0.5)"))?
    };
    if duration < MIN_POLL {
        return Err(format!("invalid interval {value:?}: must be at least 10ms"));
    }
    Ok(duration)
}

fn at_least_poll(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, MIN_POLL)
}

fn at_least_interval(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, MIN_INTERVAL)
}

fn at_least_second(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, Duration::from_secs(1))
}

fn retry_delay(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, DeliveryConfig::default().retry_first_delay)
}

/// A size: bytes, or a number with a unit (`KiB`, `MiB`, `GiB` are powers of 1024; `KB`,
/// `MB`, `GB` and `k`, `M`, `G` powers of 1000; case does not matter).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000 * 1000,
        "g" | "gb" => 1000 * 1000 * 1000,
        "ki" | "kib" => KIB,
        "mi" | "mib" => MIB,
        "gi" | "gib" => GIB,
        _ => 0,
    };
    if digits.is_empty() || factor == 0 {
        return Err(format!(
            "invalid size {value:?}: expected bytes with an optional unit, e.g. 65536, 512KiB, 1MiB, 10MB"
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(factor))
        .ok_or_else(|| format!("invalid size {value:?}: far larger than any accepted size"))
}

/// [`parse_size`] within `min..=max`, both named in the error.
fn size_in(value: &str, min: u64, max: u64) -> Result<u64, String> {
    let size = parse_size(value)?;
    if size < min || size > max {
        return Err(format!(
            "invalid size {value:?}: expected {} to {}",
            show_size(min),
            show_size(max)
        ));
    }
    Ok(size)
}

/// `1048576` → `1MiB`, for messages.
fn show_size(bytes: u64) -> String {
    for (unit, name) in [(GIB * 1024, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

fn to_usize(size: u64) -> usize {
    // Every bound below fits a 64-bit usize; saturate on smaller targets.
    usize::try_from(size).unwrap_or(usize::MAX)
}

fn line_size(value: &str) -> Result<usize, String> {
    size_in(value, 256, GIB).map(to_usize)
}

fn batch_size(value: &str) -> Result<usize, String> {
    size_in(value, KIB, GIB).map(to_usize)
}

fn queue_size(value: &str) -> Result<usize, String> {
    size_in(value, KIB, 16 * GIB).map(to_usize)
}

fn buffer_size(value: &str) -> Result<u64, String> {
    size_in(value, MIB, 1024 * 1024 * GIB)
}

fn parse_regex(value: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(value).map_err(|err| format!("invalid regular expression {value:?}: {err}"))
}

fn parse_capture_regex(value: &str) -> Result<regex_lite::Regex, String> {
    let regex = parse_regex(value)?;
    for name in regex.capture_names().flatten() {
        check_field_name(name)
            .map_err(|why| format!("invalid --regex {value:?}: capture name {name:?} {why}"))?;
    }
    if regex.capture_names().flatten().next().is_none() {
        return Err(format!(
            "invalid --regex {value:?}: it has no named capture, so it would find no field; \
             name them, e.g. (?<status>\\d+)"
        ));
    }
    Ok(regex)
}

/// `:9090` (every address), `0.0.0.0:9090`, `127.0.0.1:9090`, `[::]:9090`.
fn parse_admin_addr(value: &str) -> Result<SocketAddr, String> {
    pitcrew_core::admin::parse_listen_address(value).ok_or_else(|| {
        format!("invalid --admin-addr {value:?}: expected IP:PORT or :PORT, e.g. :9090 or 127.0.0.1:9090")
    })
}

/// Why `name` cannot be a field name, if it cannot. The rule suits every sink: Loki label
/// names, Elasticsearch fields, syslog structured-data names.
fn check_field_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if !valid {
        return Err("is not a valid field name: expected letters, digits and _, not starting with a digit, at most 128 characters".to_owned());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "is reserved: every record has {} of its own",
            RESERVED_NAMES.join(", ")
        ));
    }
    Ok(())
}

impl Args {
    /// Checks the flags and builds the configuration (pod metadata from this process's
    /// environment, sinks through [`SinkSpec::parse`]).
    pub fn config(&self) -> Result<Config, TailError> {
        self.config_with(&|name| std::env::var(name).ok(), &SinkSpec::parse)
    }

    /// [`Args::config`] with the environment lookup and the sink parser given, for tests.
    pub fn config_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        parse_sink: &dyn Fn(&str) -> Result<SinkSpec, String>,
    ) -> Result<Config, TailError> {
        let usage = |text: String| TailError::Usage(text);
        if let Some(bytes) = &self.bytes {
            return Err(usage(format!(
                "-c/--bytes {bytes}: byte mode is not supported; pitcrew-tail works on lines (use -n)"
            )));
        }
        let sinks = self.sinks(env, parse_sink)?;
        let stdout_only = sinks.iter().all(|sink| matches!(sink, SinkSpec::Stdout));
        let has_stdout = sinks.iter().any(|sink| matches!(sink, SinkSpec::Stdout));
        let output = match self.output {
            Some(OutputArg::Json) => OutputFormat::Json,
            Some(OutputArg::Raw) | None => OutputFormat::Raw,
        };
        if self.output.is_some() && !has_stdout {
            return Err(usage(
                "--output sets how the stdout sink writes, and no --sink is stdout: add --sink stdout or drop --output".to_owned(),
            ));
        }
        if output == OutputFormat::Json && self.verbose {
            return Err(usage(
                "-v/--verbose prints `==> FILE <==` headers in raw output; with --output json every record names its file"
                    .to_owned(),
            ));
        }
        let parser = self.parser()?;
        if !matches!(parser, crate::process::Parser::None) && stdout_only && output == OutputFormat::Raw {
            return Err(usage(
                "--parse/--regex find fields, but raw output to stdout prints lines only: add --output json or a --sink"
                    .to_owned(),
            ));
        }
        if self.queue_max_bytes < self.batch_max_bytes {
            return Err(TailError::Config(format!(
                "--queue-max-bytes {} is smaller than --batch-max-bytes {}: a batch could never fill",
                show_size(self.queue_max_bytes as u64),
                show_size(self.batch_max_bytes as u64)
            )));
        }
        if self.buffer_max_bytes.is_some() && self.buffer_dir.is_none() {
            return Err(usage(
                "--buffer-max-bytes caps --buffer-dir, which is not given".to_owned(),
            ));
        }
        let sink_options = self.sink_options()?;
        if !sink_options.headers.is_empty()
            && !sinks.iter().any(|sink| {
                matches!(
                    sink,
                    SinkSpec::Http(_) | SinkSpec::Loki(_) | SinkSpec::Elasticsearch(_)
                )
            })
        {
            return Err(usage(
                "--header is sent to http(s), loki and elasticsearch sinks, and none is given".to_owned(),
            ));
        }
        Ok(Config {
            follow: self.follow_config()?,
            checkpoint: self.checkpoint.clone(),
            headers: if self.quiet {
                Headers::Never
            } else if self.verbose {
                Headers::Always
            } else {
                Headers::Auto
            },
            output,
            process: ProcessConfig {
                parser,
                multiline: self.multiline_start.as_ref().map(|start| Multiline {
                    start: start.clone(),
                    timeout: self.multiline_timeout,
                    max_lines: self.multiline_max_lines as usize,
                    max_bytes: self.multiline_max_bytes,
                }),
                added_fields: self.added_fields(env)?,
            },
            sinks,
            delivery: DeliveryConfig {
                batch_max_bytes: self.batch_max_bytes,
                batch_max_wait: self.batch_max_wait,
                queue_max_bytes: self.queue_max_bytes,
                retry_max_delay: self.retry_max_delay,
                drop_after: self.drop_after,
                buffer: self.buffer_dir.as_ref().map(|dir| BufferConfig {
                    dir: dir.clone(),
                    max_bytes: self.buffer_max_bytes.unwrap_or(256 * MIB),
                }),
                ..DeliveryConfig::default()
            },
            drain_timeout: self.drain_timeout,
            exit_on: self.exit_on.clone(),
            admin_addr: self.admin_addr,
            ready_sink_failure: self.ready_sink_failure,
            ready_stall: self.ready_stall,
            sink_options,
        })
    }

    /// The settings every sink shares: `--header`, TLS, `--request-timeout`. (Not part of
    /// [`Config`] yet: the pipeline takes them from here.) Header values never appear in an
    /// error.
    pub fn sink_options(&self) -> Result<SinkOptions, TailError> {
        const FORM: &str = "expected `Name: value`, e.g. `Authorization: Bearer …`";
        let mut headers = Vec::new();
        for text in self.header.iter().filter(|text| !text.trim().is_empty()) {
            let (name, value) = pitcrew_core::text::header_flag(
                text,
                FORM,
                &["host", "content-length", "transfer-encoding", "content-type"],
                "pitcrew-tail",
            )
            .map_err(TailError::Usage)?;
            headers.push((name.to_owned(), value.to_owned()));
        }
        Ok(SinkOptions {
            headers,
            tls: self.tls.settings(),
            request_timeout: self.request_timeout,
        })
    }

    /// FILE and `--files`, as patterns; at least one.
    fn patterns(&self) -> Result<Vec<PathBuf>, TailError> {
        let mut patterns = self.files.clone();
        if let Some(list) = &self.file_list {
            patterns.extend(list.split_whitespace().map(PathBuf::from));
        }
        if patterns.is_empty() {
            return Err(TailError::Usage(
                "no file to follow: give FILE arguments or PITCREW_TAIL_FILES".to_owned(),
            ));
        }
        if let Some(empty) = patterns.iter().position(|path| path.as_os_str().is_empty()) {
            return Err(TailError::Usage(format!(
                "FILE number {} is empty: expected a path or a glob",
                empty + 1
            )));
        }
        Ok(patterns)
    }

    fn follow_config(&self) -> Result<FollowConfig, TailError> {
        let patterns = self.patterns()?;
        if let Some(checkpoint) = &self.checkpoint
            && let Some(pattern) = patterns
                .iter()
                .find(|pattern| pitcrew_follow::pattern_matches(pattern, checkpoint))
        {
            return Err(TailError::Usage(format!(
                "--checkpoint {} matches FILE {}: pitcrew-tail would follow its own checkpoint; \
                 put it elsewhere or give it a name with a leading dot (e.g. .checkpoint), which globs do not match",
                checkpoint.display(),
                pattern.display()
            )));
        }
        let mut follow = FollowConfig::new(patterns);
        let names = self.follow_name_retry || self.follow == Some(FollowMode::Name);
        let descriptor = self.follow_descriptor || self.follow == Some(FollowMode::Descriptor);
        follow.follow_names = names;
        follow.once = !names && !descriptor;
        follow.start = self.lines.unwrap_or(StartAt::Beginning);
        follow.poll_interval = self.sleep_interval;
        follow.rescan_interval = self.rescan_interval;
        follow.rotate_wait = self.rotate_wait;
        follow.max_line_bytes = self.max_line_bytes;
        follow.partial_line_timeout = self.partial_line_timeout;
        Ok(follow)
    }

    fn parser(&self) -> Result<crate::process::Parser, TailError> {
        use crate::process::Parser;
        Ok(match (self.parse, &self.regex) {
            (ParseArg::None, None) => Parser::None,
            (ParseArg::None, Some(regex)) => Parser::Regex(regex.clone()),
            (ParseArg::Json, None) => Parser::Json,
            (ParseArg::Logfmt, None) => Parser::Logfmt,
            (parse, Some(_)) => {
                return Err(TailError::Usage(format!(
                    "--regex is a parser of its own and --parse {} another: give one",
                    parse
                        .to_possible_value()
                        .map_or_else(String::new, |v| v.get_name().to_owned())
                )));
            }
        })
    }

    /// `--sink` values, or stdout. Only the env twin's list is split on whitespace: a
    /// `--sink` flag is one URL, whose credentials (from a Secret) may hold a space.
    fn sinks(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        parse_sink: &dyn Fn(&str) -> Result<SinkSpec, String>,
    ) -> Result<Vec<SinkSpec>, TailError> {
        let from_env = matches!(
            (self.sink.as_slice(), env("PITCREW_TAIL_SINKS")),
            ([one], Some(value)) if *one == value
        );
        let texts: Vec<&str> = if from_env {
            self.sink
                .iter()
                .flat_map(|text| text.split_whitespace())
                .collect()
        } else {
            self.sink.iter().map(String::as_str).collect()
        };
        if texts.is_empty() {
            return Ok(vec![SinkSpec::Stdout]);
        }
        let mut sinks = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            if texts[..index].contains(text) {
                return Err(TailError::Usage(format!(
                    "--sink {} is given twice: every record would be sent twice",
                    pitcrew_core::redact::url_password(text)
                )));
            }
            let spec = if text.eq_ignore_ascii_case("stdout") || *text == "-" {
                SinkSpec::Stdout
            } else {
                parse_sink(text)
                    .map_err(|err| TailError::Usage(pitcrew_core::redact::url_passwords_in(&err)))?
            };
            sinks.push(spec);
        }
        if sinks
            .iter()
            .filter(|sink| matches!(sink, SinkSpec::Stdout))
            .count()
            > 1
        {
            return Err(TailError::Usage(
                "--sink stdout is given twice: every record would be printed twice".to_owned(),
            ));
        }
        Ok(sinks)
    }

    /// Pod metadata from `env` (unless --no-pod-fields), then `--field`s, which override a
    /// pod field of the same name.
    fn added_fields(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, TailError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        if !self.no_pod_fields {
            for (variable, name) in POD_FIELDS {
                if let Some(value) = env(variable).filter(|value| !value.is_empty()) {
                    fields.push((name.to_owned(), value));
                }
            }
        }
        let mut given: Vec<&str> = Vec::new();
        for text in self.field.iter().filter(|text| !text.trim().is_empty()) {
            let Some((name, value)) = text.split_once('=') else {
                let shown: String = text.chars().take(40).collect();
                return Err(TailError::Usage(format!(
                    "invalid --field {shown:?}: expected KEY=VALUE, e.g. cluster=prod-eu"
                )));
            };
            let name = name.trim();
            check_field_name(name)
                .map_err(|why| TailError::Usage(format!("invalid --field {name:?}: the name {why}")))?;
            if given.contains(&name) {
                return Err(TailError::Usage(format!(
                    "--field {name:?} is given twice: give each name once"
                )));
            }
            given.push(name);
            match fields.iter_mut().find(|(existing, _)| existing == name) {
                Some(slot) => value.clone_into(&mut slot.1),
                None => fields.push((name.to_owned(), value.to_owned())),
            }
        }
        Ok(fields)
    }
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-tail` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew tail …`) with `pitcrew-tail` as the program name,
/// or its own unchanged when called through a `/tail` link. clap's messages say
/// `pitcrew-tail` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-tail: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match tail(&args) {
        Ok(outcome) => {
            match outcome {
                Outcome::Stopped => tracing::info!("stopped: everything read was delivered"),
                Outcome::Finished => tracing::info!("finished: everything was read and delivered"),
            }
            ExitCode::Ok.into()
        }
        Err(err) => {
            tracing::error!(exit_code = err.exit_code().code(), "{err}");
            write_termination_log(&args.termination_log, &err.to_string());
            err.exit_code().into()
        }
    }
}

/// Follows and delivers on a runtime that ends without waiting for lookups still hanging
/// (see `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn tail(args: &Args) -> Result<Outcome, TailError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| async move {
        let admin =
            match config.admin_addr {
                Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(|err| {
                    TailError::Admin(format!("--admin-addr {address}: cannot listen: {err}"))
                })?),
                None => None,
            };
        crate::run(config, admin, shutdown).await
    })
    .map_err(|err| TailError::Runtime(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_in_every_tail_spelling() {
        assert_eq!(parse_lines("+1").unwrap(), StartAt::Beginning);
        assert_eq!(parse_lines("+0").unwrap(), StartAt::Beginning);
        assert_eq!(parse_lines("+5").unwrap(), StartAt::FromLine(5));
        assert_eq!(parse_lines("0").unwrap(), StartAt::End);
        assert_eq!(parse_lines("10").unwrap(), StartAt::LastLines(10));
        assert_eq!(parse_lines("-10").unwrap(), StartAt::LastLines(10));
        assert_eq!(
            parse_lines("18446744073709551615").unwrap(),
            StartAt::LastLines(u64::MAX)
        );
        for bad in [
            "",
            "+",
            "-",
            "ten",
            "1.5",
            "10K",
            "++1",
            "+-1",
            "18446744073709551616",
            " + 1",
        ] {
            let err = parse_lines(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sleep_intervals_take_gnu_seconds_and_durations() {
        assert_eq!(parse_sleep("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_sleep("1").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_sleep("2.").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_sleep("250ms").unwrap(), Duration::from_millis(250));
        for (bad, wanted) in [
            ("0", "at least 10ms"),
            ("0.001", "at least 10ms"),
            ("1ms", "at least 10ms"),
            ("-1", "\"-1\""),
            ("", "\"\""),
            (".", "\".\""),
            ("1.2.3", "\"1.2.3\""),
            ("99999999999", "1y"),
            ("1e9", "\"1e9\""),
            ("fast", "\"fast\""),
        ] {
            let err = parse_sleep(bad).unwrap_err();
            assert!(err.contains(wanted), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_take_units_and_refuse_overflow() {
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("1 mib").unwrap(), 1 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        for bad in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "1 parsec",
            "0x10",
            "18446744073709551615KiB",
            "99999999999999999999999",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
        assert!(line_size("255").unwrap_err().contains("256 bytes to 1GiB"));
        assert!(line_size("2GiB").unwrap_err().contains("256 bytes to 1GiB"));
        assert!(batch_size("0").unwrap_err().contains("1KiB to 1GiB"));
        assert_eq!(show_size(3 * 1024), "3KiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn admin_addresses() {
        assert_eq!(
            parse_admin_addr(":9090").unwrap(),
            "0.0.0.0:9090".parse().unwrap()
        );
        assert_eq!(
            parse_admin_addr("127.0.0.1:9090").unwrap(),
            "127.0.0.1:9090".parse().unwrap()
        );
        assert_eq!(
            parse_admin_addr("[::]:9090").unwrap(),
            "[::]:9090".parse().unwrap()
        );
        for bad in ["9090", "localhost:9090", ":", ":99999", "", "1.2.3.4"] {
            let err = parse_admin_addr(bad).unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains(":9090"),
                "{err}"
            );
        }
    }

    #[test]
    fn regexes_need_valid_named_captures() {
        assert!(parse_capture_regex(r"(?<status>\d+) (?P<path>\S+)").is_ok());
        for (bad, wanted) in [
            (r"(\d+)", "no named capture"),
            (r"\d+", "no named capture"),
            (r"(?<status>\d+", "invalid regular expression"),
            (r"(?<message>.*)", "reserved"),
            (r"(?<time>.*)", "reserved"),
        ] {
            let err = parse_capture_regex(bad).unwrap_err();
            assert!(
                err.contains(wanted) && err.contains(&format!("{bad:?}")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn field_names_suit_every_sink() {
        for good in ["pod", "_x", "cluster_name", "a1"] {
            assert!(check_field_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "1a",
            "a-b",
            "a.b",
            "é",
            "a b",
            long.as_str(),
            "time",
            "file",
            "message",
        ] {
            assert!(check_field_name(bad).is_err(), "{bad}");
        }
    }
}
