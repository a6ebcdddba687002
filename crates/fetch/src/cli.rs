//! The command line of `pitcrew-fetch`: flags (each with an env twin), help text, and the
//! translation into a [`Config`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::files::{Mode, Owner};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::TlsArgs;
use reqwest::header::HeaderValue;

use crate::checks::{Algorithm, Checksums, ContentType, Expected, parse_size};
use crate::extract::Format;
use crate::http::{Credentials, RedirectPolicy};
use crate::source::{Source, check_name};
use crate::{Config, Digests, ExtractFormat, FetchError, Job};

const EXAMPLES: &str = r#"Examples:
  pitcrew-fetch https://data.example.com/customers.csv /data/input/customers.csv
  pitcrew-fetch --sha256 3a7b…e1 https://example.com/model.bin /models/model.bin
  pitcrew-fetch --to /data --checksums https://example.com/SHA256SUMS \
      https://example.com/a.csv https://example.com/b.csv orders.csv=https://example.com/o?id=7
  pitcrew-fetch --extract auto https://example.com/site.tar.gz /usr/share/nginx/html
  pitcrew-fetch --bearer-token-file /secrets/api/token --header 'Accept: text/csv' URL DEST
  pitcrew-fetch s3://my-bucket/config/config.json /config/config.json   (AWS_* environment)

In a pod spec (init container; replaces `apk add curl && curl -o /data/input/customers.csv
"$DATA_SOURCE_URL/customers.csv" && [ -s /data/input/customers.csv ]`):
  initContainers:
    - name: data-downloader
      image: pitcrew/fetch:0.1.0
      args: ["--to", "/data/input", "--checksums", "/checksums/SHA256SUMS",
             "https://data.example.com/exports/customers.csv",
             "https://data.example.com/exports/orders.csv"]
      env:
        - {name: PITCREW_FETCH_TIMEOUT, value: "15m"}
      volumeMounts:
        - {name: data, mountPath: /data/input}
        - {name: checksums, mountPath: /checksums}
  A pod restart finds the files already there with matching digests and downloads nothing.
"#;

/// The shortest --connect-timeout, --read-timeout and --progress-interval.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Download files so they only ever appear complete and verified.
///
/// `pitcrew-fetch URL DEST` saves one file; `pitcrew-fetch --to DIR URL…` saves several into
/// DIR, each under its URL's file name or as `NAME=URL`, a few at a time (--parallel).
/// Sources: http://, https:// (user-info in the URL is sent as basic auth) and s3://BUCKET/KEY
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL,
/// AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN). Each file is written to a temporary file next
/// to its destination, checked while it streams in (digest, sizes, content type), flushed to
/// disk and renamed into place: on any failure or signal nothing is left behind and an existing
/// destination is untouched. An HTTP status outside 2xx is never saved. Connection errors,
/// timeouts, 5xx, 408 and 429 are retried with backoff (honouring Retry-After); a dropped
/// transfer resumes with a Range request when the server allows it and the file is unchanged.
/// A missing destination directory is created. Passwords, tokens, header values and presigned
/// URLs are never logged.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "pitcrew-fetch", bin_name = "pitcrew-fetch", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// `URL DEST`; or with --to, `URL` or `NAME=URL` for each file.
    #[arg(value_name = "URL DEST | URL…", required = true)]
    pub items: Vec<String>,

    /// Save every URL into this directory (under its URL's file name, or NAME for NAME=URL).
    #[arg(long, value_name = "DIR", env = "PITCREW_FETCH_TO")]
    pub to: Option<PathBuf>,

    /// How many files are downloaded at once with --to.
    #[arg(long, value_name = "N", env = "PITCREW_FETCH_PARALLEL", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// A request header, `Name: value`; repeat for more (the env twin takes one per line).
    /// Sent only to the URL's own scheme, host and port, never to another one a redirect
    /// leads to. Values are never logged.
    #[arg(long, value_name = "'NAME: VALUE'", env = "PITCREW_FETCH_HEADER", action = ArgAction::Append, value_delimiter = '\n')]
    pub header: Vec<String>,

    /// A file holding a bearer token (a mounted Secret), sent as `Authorization: Bearer …` to
    /// the URL's own origin only; trailing newlines are ignored. Never logged.
    #[arg(long, value_name = "FILE", env = "PITCREW_FETCH_BEARER_TOKEN_FILE")]
    pub bearer_token_file: Option<PathBuf>,

    /// The expected SHA-256 of the file (64 hex digits). A DEST that already has it is not
    /// downloaded again.
    #[arg(long, value_name = "HEX", env = "PITCREW_FETCH_SHA256", conflicts_with_all = ["sha512", "checksums"])]
    pub sha256: Option<String>,

    /// The expected SHA-512 of the file (128 hex digits). A DEST that already has it is not
    /// downloaded again.
    #[arg(
        long,
        value_name = "HEX",
        env = "PITCREW_FETCH_SHA512",
        conflicts_with = "checksums"
    )]
    pub sha512: Option<String>,

    /// A SHA256SUMS-style file (`HEX  NAME`, `HEX *NAME` or `SHA256 (NAME) = HEX`; sha256 or
    /// sha512), a path or an http(s)/s3 URL; each file's digest is looked up by its
    /// destination's name, else its URL's file name. Files that already match are skipped.
    #[arg(long, value_name = "FILE|URL", env = "PITCREW_FETCH_CHECKSUMS")]
    pub checksums: Option<String>,

    /// The smallest acceptable size (bytes, or with a unit: k, M, G, KiB, MiB, GiB). The
    /// default 1 refuses an empty body; 0 accepts one.
    #[arg(long, value_name = "SIZE", env = "PITCREW_FETCH_MIN_SIZE", default_value = "1", value_parser = parse_size)]
    pub min_size: u64,

    /// The largest acceptable size: the download stops as soon as it is exceeded (or at once,
    /// when Content-Length says so).
    #[arg(long, value_name = "SIZE", env = "PITCREW_FETCH_MAX_SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// The expected media type (`text/csv`, `application/json`, `image/*`), compared with
    /// Content-Type without its parameters. Catches an HTML login page served with 200.
    #[arg(long, value_name = "TYPE", env = "PITCREW_FETCH_CONTENT_TYPE")]
    pub content_type: Option<ContentType>,

    /// Retries after the first attempt, for connection errors, timeouts, 5xx, 408 and 429.
    #[arg(long, value_name = "N", env = "PITCREW_FETCH_RETRIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub retries: u32,

    /// Give up after this long in all (exit 124); 0 means no limit. At most 1y.
    #[arg(long, env = "PITCREW_FETCH_TIMEOUT", default_value = "10m", value_parser = pitcrew_core::duration::parse)]
    pub timeout: Duration,

    /// How long connecting (TCP and TLS) may take.
    #[arg(long, env = "PITCREW_FETCH_CONNECT_TIMEOUT", default_value = "10s", value_parser = at_least_min)]
    pub connect_timeout: Duration,

    /// How long a server may stay silent: waiting for response headers, or between two pieces
    /// of the body. A stalled transfer counts as a dropped one (retried, resumed).
    #[arg(long, env = "PITCREW_FETCH_READ_TIMEOUT", default_value = "30s", value_parser = at_least_min)]
    pub read_timeout: Duration,

    /// Redirects followed at most.
    #[arg(long, value_name = "N", env = "PITCREW_FETCH_MAX_REDIRECTS", default_value_t = 10, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub max_redirects: u16,

    /// Follow a redirect from https to plain http (refused by default).
    #[arg(long, env = "PITCREW_FETCH_ALLOW_HTTPS_DOWNGRADE")]
    pub allow_https_downgrade: bool,

    /// Keep an existing DEST as it is and make no request.
    #[arg(long, env = "PITCREW_FETCH_IF_MISSING")]
    pub if_missing: bool,

    /// Mode of the saved file (octal, e.g. 0644); by default 0644, or an existing file's mode.
    #[arg(long, env = "PITCREW_FETCH_MODE")]
    pub mode: Option<Mode>,

    /// Owner of the saved file, numeric `UID:GID`, `UID` or `:GID` (needs root or CAP_CHOWN).
    #[arg(long, env = "PITCREW_FETCH_OWNER")]
    pub owner: Option<Owner>,

    /// Unpack the download (tar, tar.gz, tar.zst, zip, or auto to tell by its first bytes)
    /// into DEST, a directory; entries that would escape it are refused, set-uid bits dropped.
    /// The archive itself is not kept.
    #[arg(long, value_name = "FORMAT", env = "PITCREW_FETCH_EXTRACT", value_parser = parse_extract)]
    pub extract: Option<ExtractFormat>,

    /// How often a long download logs bytes, rate and ETA. At least 100ms.
    #[arg(long, env = "PITCREW_FETCH_PROGRESS_INTERVAL", default_value = "5s", value_parser = at_least_min)]
    pub progress_interval: Duration,

    /// No progress lines; only the summary line per file and problems.
    #[arg(short, long, env = "PITCREW_FETCH_QUIET")]
    pub quiet: bool,

    /// `--ca-file` and `--insecure` (shared with the other pitcrew tools).
    #[command(flatten)]
    pub tls: TlsArgs,

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
         switches take true/false, 1/0, yes/no, on/off.\n\n{}",
        ExitCode::help_table()
    )
}

fn at_least_min(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, MIN_TIMEOUT)
}

fn parse_extract(value: &str) -> Result<ExtractFormat, String> {
    if value.trim().eq_ignore_ascii_case("auto") {
        return Ok(ExtractFormat::Auto);
    }
    value
        .trim()
        .parse::<Format>()
        .map(ExtractFormat::Format)
        .map_err(|_| format!("invalid --extract {value:?}: expected tar, tar.gz, tar.zst, zip or auto"))
}

impl Args {
    /// Turns the flags into a [`Config`]: parses the URLs and names, reads the token and a
    /// local checksums file.
    pub fn config(&self) -> Result<Config, FetchError> {
        let jobs = self.jobs()?;
        let digests = self.digests(jobs.len())?;
        let mut credentials = Credentials {
            headers: crate::http::parse_headers(&self.header).map_err(FetchError::Config)?,
            bearer: None,
        };
        if let Some(path) = &self.bearer_token_file {
            credentials.bearer = Some(read_token(path)?);
        }
        if let (Some(min), Some(max)) = (Some(self.min_size), self.max_size)
            && min > max
        {
            return Err(FetchError::Usage(format!(
                "--min-size {min} is larger than --max-size {max}: no file could pass"
            )));
        }
        Ok(Config {
            jobs,
            digests,
            credentials,
            redirects: RedirectPolicy {
                max: usize::from(self.max_redirects),
                allow_downgrade: self.allow_https_downgrade,
            },
            retries: self.retries,
            timeout: (!self.timeout.is_zero()).then_some(self.timeout),
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            min_size: self.min_size,
            max_size: self.max_size,
            content_type: self.content_type.clone(),
            parallel: usize::from(self.parallel),
            if_missing: self.if_missing,
            mode: self.mode,
            owner: self.owner,
            extract: self.extract,
            progress_interval: (!self.quiet).then_some(self.progress_interval),
            tls: self.tls.settings(),
        })
    }

    /// The files: `URL DEST`, or each item under `--to DIR`.
    fn jobs(&self) -> Result<Vec<Job>, FetchError> {
        let usage = FetchError::Usage;
        let Some(directory) = &self.to else {
            let [url, destination] = self.items.as_slice() else {
                return Err(usage(format!(
                    "expected URL DEST (got {} argument{}); use --to DIR for several files",
                    self.items.len(),
                    if self.items.len() == 1 { "" } else { "s" }
                )));
            };
            let source = Source::parse(url).map_err(usage)?;
            let mut destination = PathBuf::from(destination);
            if destination.as_os_str().is_empty() {
                return Err(usage("DEST is empty".to_owned()));
            }
            let as_directory = self.extract.is_none()
                && (destination.to_string_lossy().ends_with('/') || destination.is_dir());
            if as_directory {
                // As cp: into an existing directory, under the source's name.
                let name = source.file_name().ok_or_else(|| {
                    usage(format!(
                        "DEST {} is a directory and {source} ends in `/`: name the file, e.g. {}/data.csv",
                        destination.display(),
                        destination.display()
                    ))
                })?;
                check_name(&name).map_err(usage)?;
                destination.push(name);
            }
            let name = if self.extract.is_some() {
                source.file_name().unwrap_or_else(|| "archive".to_owned())
            } else {
                display_name(&destination)
            };
            return Ok(vec![Job {
                source,
                destination,
                name,
            }]);
        };
        if self.extract.is_some() {
            return Err(usage(
                "--extract takes one URL and a DEST directory, not --to DIR".to_owned(),
            ));
        }
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        for item in &self.items {
            let (name, url) = split_named(item);
            let source = Source::parse(url).map_err(usage)?;
            let name = match name {
                Some(name) => name.to_owned(),
                None => source.file_name().ok_or_else(|| {
                    usage(format!(
                        "{source} ends in `/`, so it names no file: give it one as NAME=URL"
                    ))
                })?,
            };
            check_name(&name).map_err(usage)?;
            if !seen.insert(name.clone()) {
                return Err(usage(format!(
                    "two URLs would be saved as {name:?} in {}: give one a NAME=URL",
                    directory.display()
                )));
            }
            jobs.push(Job {
                source,
                destination: directory.join(&name),
                name,
            });
        }
        Ok(jobs)
    }

    /// `--sha256`/`--sha512` (one file only) or `--checksums`.
    fn digests(&self, files: usize) -> Result<Digests, FetchError> {
        let given = match (&self.sha256, &self.sha512) {
            (Some(hex), _) => Some(Expected::parse(Algorithm::Sha256, hex)),
            (_, Some(hex)) => Some(Expected::parse(Algorithm::Sha512, hex)),
            _ => None,
        };
        if let Some(given) = given {
            if files > 1 {
                return Err(FetchError::Usage(
                    "--sha256/--sha512 name one file's digest; for several files use --checksums".to_owned(),
                ));
            }
            return given.map(Digests::Given).map_err(FetchError::Config);
        }
        let Some(checksums) = &self.checksums else {
            return Ok(Digests::None);
        };
        if checksums.contains("://") {
            return Source::parse(checksums)
                .map(Digests::Url)
                .map_err(|err| FetchError::Usage(format!("--checksums: {err}")));
        }
        let path = Path::new(checksums);
        let unreadable = |err: std::io::Error| {
            FetchError::NoInput(format!(
                "cannot read --checksums {}: {}",
                path.display(),
                pitcrew_core::io_error::describe(&err)
            ))
        };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if metadata.len() > crate::MAX_CHECKSUMS_BYTES {
            return Err(FetchError::Config(format!(
                "--checksums {} is {} bytes; a checksums file is expected to be small",
                path.display(),
                metadata.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let parsed = Checksums::parse(&String::from_utf8_lossy(&bytes));
        if parsed.is_empty() {
            return Err(FetchError::Config(format!(
                "--checksums {} lists no sha256 or sha512 digest (expected lines like `HEX  NAME`)",
                path.display()
            )));
        }
        Ok(Digests::File {
            shown: path.display().to_string(),
            checksums: parsed,
        })
    }
}

/// `NAME=URL` → `(Some(NAME), URL)`; a plain URL (whose query may hold `=`) → `(None, URL)`.
fn split_named(item: &str) -> (Option<&str>, &str) {
    match item.split_once('=') {
        Some((name, url)) if !name.contains("://") && url.contains("://") => (Some(name), url),
        _ => (None, item),
    }
}

/// The destination's file name, for messages.
fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Reads the bearer token: the whole file but trailing newlines. Unreadable is exit 66, empty
/// or not a valid header value exit 78; the content is never shown.
fn read_token(path: &Path) -> Result<HeaderValue, FetchError> {
    let bytes = std::fs::read(path).map_err(|err| {
        FetchError::NoInput(format!(
            "cannot read --bearer-token-file {}: {}",
            path.display(),
            pitcrew_core::io_error::describe(&err)
        ))
    })?;
    let mut token = bytes.as_slice();
    while let [rest @ .., b'\n' | b'\r'] = token {
        token = rest;
    }
    if token.iter().all(u8::is_ascii_whitespace) {
        return Err(FetchError::Config(format!(
            "--bearer-token-file {} is empty",
            path.display()
        )));
    }
    let mut value = HeaderValue::from_bytes(&[b"Bearer ".as_slice(), token].concat()).map_err(|_| {
        FetchError::Config(format!(
            "--bearer-token-file {} holds characters a header cannot carry (control characters \
             or line breaks inside the token)",
            path.display()
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-fetch` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew fetch …`) with `pitcrew-fetch` as the program name,
/// or its own unchanged when called through a `/fetch` link. clap's messages say
/// `pitcrew-fetch` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-fetch: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match fetch(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// Downloads on a runtime that ends without waiting for lookups still hanging (see
/// `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn fetch(args: &Args) -> Result<(), FetchError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| async move { crate::run(config, shutdown).await.map(drop) })
        .map_err(|err| FetchError::Runtime(err.to_string()))?
}

fn fail(args: &Args, err: &FetchError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pitcrew-fetch").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> Result<Config, FetchError> {
        parse(args).unwrap().config()
    }

    #[test]
    fn defaults_suit_init_containers() {
        let config = config(&["https://h/x.csv", "/data/x.csv"]).unwrap();
        assert_eq!(config.jobs.len(), 1);
        assert_eq!(config.jobs[0].name, "x.csv");
        assert_eq!(config.min_size, 1);
        assert_eq!(config.retries, 5);
        assert_eq!(config.timeout, Some(Duration::from_secs(600)));
        assert_eq!(config.parallel, 4);
        assert_eq!(config.redirects.max, 10);
        assert!(!config.redirects.allow_downgrade);
        assert_eq!(config.progress_interval, Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_directory_dest_gets_the_urls_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().to_str().unwrap();
        let config = config(&["https://h/a/b.csv?x=1", dest]).unwrap();
        assert_eq!(config.jobs[0].destination, dir.path().join("b.csv"));
        let err = parse(&["https://h/a/", dest]).unwrap().config().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
    }

    #[test]
    fn names_under_to_are_plain_and_unique() {
        let parsed = config(&[
            "--to",
            "/d",
            "https://h/a.csv",
            "b.csv=https://h/q?id=1&x=y",
            "https://h/c?v=1=2",
        ])
        .unwrap();
        let names: Vec<&str> = parsed.jobs.iter().map(|job| job.name.as_str()).collect();
        assert_eq!(names, ["a.csv", "b.csv", "c"]);
        assert_eq!(parsed.jobs[1].destination, PathBuf::from("/d/b.csv"));
        for (bad, wanted) in [
            (vec!["../x=https://h/a"], "plain path component"),
            (vec!["a/b=https://h/a"], "plain path component"),
            (vec!["https://h/..%2Fetc%2Fpasswd"], "plain path component"),
            (vec!["https://h/dir/"], "NAME=URL"),
            (
                vec!["https://h/a.csv", "https://other/a.csv"],
                "two URLs would be saved as \"a.csv\"",
            ),
            (vec!["a=https://h/x", "a=https://h/y"], "two URLs"),
            (vec!["ftp://h/a"], "unknown scheme"),
        ] {
            let mut args = vec!["--to", "/d"];
            args.extend(bad.iter());
            let err = config(&args).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::Usage, "{bad:?}: {err}");
            assert!(err.to_string().contains(wanted), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_single_form_needs_exactly_url_and_dest() {
        for args in [vec!["https://h/a"], vec!["https://h/a", "/x", "/y"]] {
            let err = config(&args).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
            assert!(err.to_string().contains("expected URL DEST"), "{err}");
        }
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn digests_are_checked_at_start() {
        let err = config(&["--sha256", &SHA[..10], "https://h/a", "/a"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config, "{err}");
        let err = config(&["--sha256", SHA, "--to", "/d", "https://h/a", "https://h/b"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
        assert!(parse(&["--sha256", SHA, "--sha512", SHA, "https://h/a", "/a"]).is_err());
        let err = config(&["--checksums", "/nonexistent/SHA256SUMS", "https://h/a", "/a"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
        let dir = tempfile::tempdir().unwrap();
        let sums = dir.path().join("SUMS");
        std::fs::write(&sums, "nothing here\n").unwrap();
        let err = config(&["--checksums", sums.to_str().unwrap(), "https://h/a", "/a"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config, "{err}");
        std::fs::write(&sums, format!("{SHA}  a\n")).unwrap();
        assert!(matches!(
            config(&["--checksums", sums.to_str().unwrap(), "https://h/a", "/a"])
                .unwrap()
                .digests,
            Digests::File { .. }
        ));
        assert!(matches!(
            config(&["--checksums", "https://h/SHA256SUMS", "https://h/a", "/a"])
                .unwrap()
                .digests,
            Digests::Url(_)
        ));
    }

    #[test]
    fn the_token_file_is_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cr3t-t0ken\r\n\n").unwrap();
        let config = config(&[
            "--bearer-token-file",
            token.to_str().unwrap(),
            "https://h/a",
            "/a",
        ])
        .unwrap();
        let bearer = config.credentials.bearer.unwrap();
        assert_eq!(bearer, "Bearer s3cr3t-t0ken");
        assert!(bearer.is_sensitive());
        for (content, code) in [("\n", ExitCode::Config), ("s3cr3t\nt0ken\n", ExitCode::Config)] {
            std::fs::write(&token, content).unwrap();
            let err = parse(&[
                "--bearer-token-file",
                token.to_str().unwrap(),
                "https://h/a",
                "/a",
            ])
            .unwrap()
            .config()
            .unwrap_err();
            assert_eq!(err.exit_code(), code, "{err}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        let err = parse(&["--bearer-token-file", "/nonexistent/token", "https://h/a", "/a"])
            .unwrap()
            .config()
            .unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
    }

    #[test]
    fn bad_values_are_refused_naming_the_value() {
        for (args, wanted) in [
            (vec!["--timeout", "30"], "\"30\""),
            (vec!["--timeout", "300000000000y"], "1y"),
            (vec!["--read-timeout", "1ns"], "at least 100ms"),
            (vec!["--max-size", "99999999999999999999999"], "invalid size"),
            (vec!["--max-size", "18446744073709551615GiB"], "largest"),
            (vec!["--parallel", "0"], "0"),
            (vec!["--retries", "-1"], "-1"),
            (vec!["--content-type", "csv"], "media type"),
            (vec!["--extract", "rar"], "expected tar"),
            (vec!["--mode", "u+x"], "octal"),
        ] {
            let mut all = args.clone();
            all.extend(["https://h/a", "/a"]);
            let err = parse(&all).unwrap_err().to_string();
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
        let err = config(&["--header", "NoColon", "https://h/a", "/a"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config, "{err}");
        let err = config(&["--min-size", "10", "--max-size", "5", "https://h/a", "/a"]).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
        let config = config(&[
            "--max-size",
            "18446744073709551615",
            "--timeout",
            "0",
            "https://h/a",
            "/a",
        ])
        .unwrap();
        assert_eq!(config.max_size, Some(u64::MAX));
        assert_eq!(config.timeout, None);
    }
}
