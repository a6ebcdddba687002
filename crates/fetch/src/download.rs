//! The download engine for one file: attempts with retries and backoff, resumes with
//! `Range`/`If-Range`, the checks made while the bytes stream in, and the sinks the bytes go
//! to (the destination's temporary file, an archive's temporary file, or memory for a
//! checksums file).
//!
//! The hash is fed as each chunk arrives and its state survives a resume (a 206 continues the
//! same temporary file and the same running hash), so a file is never read back; a 200 to a
//! range request means the file changed on the server, and everything starts over. Nothing is
//! put in place until every check holds, and a dropped transfer (error, timeout, signal)
//! leaves no temporary file: [`AtomicFile`] and [`TempArchive`] remove theirs on drop.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pitcrew_core::backoff::Backoff;
use pitcrew_core::duration::display as human;
use pitcrew_core::files::{AtomicFile, FileError, WriteOptions};
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::checks::{Algorithm, ContentType, Expected, Hasher, hex, human_bytes};
use crate::error::FetchError;
use crate::http::{self, Credentials, RedirectPolicy, SendError};
use crate::s3::{self, S3Error, S3Object, S3Settings};
use crate::source::Source;

/// The first retry waits this long; each next one twice as long, up to [`RETRY_CEILING`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts (unless Retry-After asks for more).
const RETRY_CEILING: Duration = Duration::from_secs(30);
/// How long a presigned S3 URL is valid: only its start must fall within it.
const PRESIGN_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// At most this much of an error response's body is read for the message.
const ERROR_BODY_BYTES: usize = 4096;
/// At most this many characters of it are shown.
const ERROR_SNIPPET_CHARS: usize = 200;

/// What every download shares: the client and the checks and limits from the flags.
pub(crate) struct Engine {
    pub client: reqwest::Client,
    pub credentials: Credentials,
    pub policy: RedirectPolicy,
    pub retries: u32,
    pub read_timeout: Duration,
    pub deadline: Option<Instant>,
    pub min_size: u64,
    pub max_size: Option<u64>,
    pub content_type: Option<ContentType>,
    pub progress_interval: Option<Duration>,
    pub s3: tokio::sync::OnceCell<(S3Settings, s3::Credentials)>,
}

/// What a running download shows to the run that may have to stop it: for the timeout and
/// signal messages.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Bytes received so far.
    pub received: AtomicU64,
    /// The whole length once known, `u64::MAX` before.
    pub total: AtomicU64,
    /// The last attempt's failure, if any.
    pub last_error: Mutex<Option<String>>,
}

impl Status {
    /// `1.2 MiB of 3.0 MiB received; last error: …`.
    pub fn describe(&self) -> String {
        let received = self.received.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let mut text = if total == u64::MAX || total == 0 {
            format!("{} received", human_bytes(received))
        } else {
            format!("{} of {} received", human_bytes(received), human_bytes(total))
        };
        if let Some(error) = self.last_error.lock().ok().and_then(|last| last.clone()) {
            text.push_str("; last error: ");
            text.push_str(&error);
        }
        text
    }
}

/// Where the bytes go.
pub(crate) enum Sink {
    /// The destination's temporary file.
    File {
        /// The destination.
        destination: PathBuf,
        /// Mode and owner at commit.
        options: WriteOptions,
        /// The temporary file (always `Some` between calls).
        file: Option<AtomicFile>,
    },
    /// An archive's temporary file in the extraction directory.
    Archive(TempArchive),
    /// A checksums file, bounded.
    Memory(Vec<u8>),
}

impl Sink {
    /// Opens the destination's temporary file.
    pub fn file(destination: &Path, options: WriteOptions) -> Result<Sink, FileError> {
        Ok(Sink::File {
            destination: destination.to_owned(),
            options,
            file: Some(AtomicFile::create(destination, options)?),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        match self {
            Sink::File {
                destination, file, ..
            } => file
                .as_mut()
                .expect("the temporary file is open between calls")
                .write_all(bytes)
                .map_err(|err| FileError::output(destination.as_path(), "write", err)),
            Sink::Archive(archive) => archive.write(bytes),
            Sink::Memory(buffer) => {
                buffer.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Throws away what was written: a fresh, empty temporary file.
    fn restart(&mut self) -> Result<(), FileError> {
        match self {
            Sink::File {
                destination,
                options,
                file,
            } => {
                // Dropping the old one removes its temporary file first.
                *file = None;
                *file = Some(AtomicFile::create(destination, *options)?);
                Ok(())
            }
            Sink::Archive(archive) => archive.truncate(),
            Sink::Memory(buffer) => {
                buffer.clear();
                Ok(())
            }
        }
    }
}

/// A download in progress: the sink, the running hash and what a resume needs.
pub(crate) struct Transfer {
    pub sink: Sink,
    hasher: Option<Hasher>,
    algorithm: Option<Algorithm>,
    pub received: u64,
    /// Set when the first response allowed resuming: `Accept-Ranges: bytes` and a validator.
    resume: Option<HeaderValue>,
    /// How many times a dropped transfer was resumed.
    pub resumes: u32,
    /// When the first byte was asked for, for the rate.
    pub started: Instant,
}

impl Transfer {
    /// A transfer into `sink`, hashing with `algorithm` when a digest is to be checked.
    pub fn new(sink: Sink, algorithm: Option<Algorithm>) -> Transfer {
        Transfer {
            sink,
            hasher: algorithm.map(Hasher::new),
            algorithm,
            received: 0,
            resume: None,
            resumes: 0,
            started: Instant::now(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.sink.write(bytes)?;
        self.received += bytes.len() as u64;
        Ok(())
    }

    fn restart(&mut self) -> Result<(), FileError> {
        self.sink.restart()?;
        self.hasher = self.algorithm.map(Hasher::new);
        self.received = 0;
        self.resume = None;
        Ok(())
    }

    /// The digest of everything received (once, at the end).
    pub fn digest(&mut self) -> Option<Vec<u8>> {
        self.hasher.take().map(Hasher::finish)
    }
}

/// How an attempt failed.
enum Failure {
    /// Give up: retrying cannot help.
    Fatal(FetchError),
    /// Worth another attempt, after `after` if the server said so.
    Retry { reason: String, after: Option<Duration> },
}

impl Failure {
    fn file(name: &str, err: FileError) -> Failure {
        Failure::Fatal(FetchError::File {
            file: name.to_owned(),
            source: err,
        })
    }
}

impl Engine {
    /// Downloads `source` into `transfer` (retrying, resuming) and checks sizes and the
    /// digest. `name` is the file the messages name.
    pub async fn download(
        &self,
        name: &str,
        source: &Source,
        expected: Option<&Expected>,
        transfer: &mut Transfer,
        status: &Status,
    ) -> Result<(), FetchError> {
        let shown = source.to_string();
        tracing::info!("{name}: downloading {shown}");
        let started = Instant::now();
        let mut backoff = Backoff::new(FIRST_RETRY, RETRY_CEILING).with_warmup(Duration::ZERO);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if transfer.received > 0 && transfer.resume.is_none() {
                tracing::info!(
                    "{name}: starting over: the server did not offer a way to resume \
                     (Accept-Ranges: bytes and an ETag or Last-Modified)"
                );
                transfer.restart().map_err(|err| file_error(name, err))?;
            }
            match self.attempt(name, source, transfer, status).await {
                Ok(()) => break,
                Err(Failure::Fatal(err)) => return Err(err),
                Err(Failure::Retry { reason, after }) => {
                    if let Ok(mut last) = status.last_error.lock() {
                        *last = Some(reason.clone());
                    }
                    if attempt > self.retries {
                        let tries = if attempt == 1 {
                            "1 attempt".to_owned()
                        } else {
                            format!("{attempt} attempts")
                        };
                        return Err(FetchError::failed(
                            name,
                            format!("{reason} (gave up after {tries}; --retries {})", self.retries),
                        ));
                    }
                    let delay = after.unwrap_or_else(|| backoff.next_delay(started.elapsed()));
                    if let Some(deadline) = self.deadline
                        && Instant::now() + delay >= deadline
                    {
                        return Err(FetchError::TimedOut(format!(
                            "{name}: {reason}; gave up: the next attempt (in {}{}) would come after --timeout",
                            human(delay),
                            if after.is_some() {
                                ", as Retry-After asks"
                            } else {
                                ""
                            }
                        )));
                    }
                    let next = if transfer.received > 0 && transfer.resume.is_some() {
                        format!(
                            "resuming at {} in {}",
                            human_bytes(transfer.received),
                            human(delay)
                        )
                    } else {
                        format!("retrying in {}", human(delay))
                    };
                    tracing::warn!("{name}: attempt {attempt}: {reason}; {next}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        self.verify(name, expected, transfer)
    }

    /// The size and digest checks, once everything arrived.
    fn verify(
        &self,
        name: &str,
        expected: Option<&Expected>,
        transfer: &mut Transfer,
    ) -> Result<(), FetchError> {
        let bytes = transfer.received;
        if bytes < self.min_size {
            let reason = if bytes == 0 {
                format!("the body is empty (--min-size {} bytes)", self.min_size)
            } else {
                format!("{bytes} bytes, fewer than --min-size {}", self.min_size)
            };
            return Err(FetchError::failed(name, reason));
        }
        if let Some(expected) = expected {
            let got = transfer.digest().unwrap_or_default();
            if got != expected.digest {
                return Err(FetchError::failed(
                    name,
                    format!(
                        "{} mismatch: expected {}, got {}",
                        expected.algorithm.as_str(),
                        expected.hex(),
                        hex(&got)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One request and as much of its body as arrives.
    async fn attempt(
        &self,
        name: &str,
        source: &Source,
        transfer: &mut Transfer,
        status: &Status,
    ) -> Result<(), Failure> {
        let url = match source {
            Source::Http(url) => url.clone(),
            Source::S3(object) => self.presign(name, object).await?,
        };
        let mut extra = HeaderMap::new();
        let resuming = match &transfer.resume {
            Some(validator) if transfer.received > 0 => {
                let range = HeaderValue::from_str(&format!("bytes={}-", transfer.received))
                    .expect("digits make a header value");
                extra.insert(header::RANGE, range);
                extra.insert(header::IF_RANGE, validator.clone());
                true
            }
            _ => false,
        };
        let response = http::get(
            &self.client,
            &url,
            &self.credentials,
            &extra,
            self.policy,
            self.read_timeout,
        )
        .await
        .map_err(|err| match err {
            SendError::Transient(reason) => Failure::Retry { reason, after: None },
            SendError::Permanent(reason) => Failure::Fatal(FetchError::failed(name, reason)),
        })?;
        if !response.status().is_success() {
            return Err(self
                .status_failure(name, source, response, transfer, resuming)
                .await);
        }
        self.judge_start(name, &response, transfer, status, resuming)?;
        self.stream_body(name, response, transfer, status).await
    }

    /// Whether a 2xx answer continues the transfer (a 206 whose Content-Range starts where
    /// asked), starts it over (a 200 to a range request) or starts it.
    fn judge_start(
        &self,
        name: &str,
        response: &reqwest::Response,
        transfer: &mut Transfer,
        status: &Status,
        resuming: bool,
    ) -> Result<(), Failure> {
        let code = response.status().as_u16();
        let headers = response.headers();
        match (code, resuming) {
            (206, true) => {
                let asked = transfer.received;
                match http::content_range(headers) {
                    Some(range) if range.start == asked => {
                        tracing::info!(
                            "{name}: resuming at {} (HTTP 206, the file is unchanged)",
                            human_bytes(asked)
                        );
                        transfer.resumes += 1;
                    }
                    _ => {
                        let shown = headers.get(header::CONTENT_RANGE).map_or_else(
                            || "none".to_owned(),
                            |value| http::printable(value.as_bytes(), 60),
                        );
                        transfer.restart().map_err(|err| Failure::file(name, err))?;
                        return Err(Failure::Retry {
                            reason: format!(
                                "asked for bytes {asked}- but the server sent Content-Range {shown:?}; starting over"
                            ),
                            after: Some(Duration::ZERO),
                        });
                    }
                }
            }
            (206, false) => {
                return Err(Failure::Fatal(FetchError::failed(
                    name,
                    "HTTP 206 Partial Content to a request for the whole file",
                )));
            }
            (_, true) => {
                tracing::info!(
                    "{name}: HTTP {code} to the range request: the file changed on the server \
                     (or the server ignores ranges); starting over"
                );
                transfer.restart().map_err(|err| Failure::file(name, err))?;
                self.accept_fresh(name, response, transfer, status)?;
            }
            _ => self.accept_fresh(name, response, transfer, status)?,
        }
        Ok(())
    }

    /// Reads the body into the transfer, checking --max-size as it grows.
    async fn stream_body(
        &self,
        name: &str,
        mut response: reqwest::Response,
        transfer: &mut Transfer,
        status: &Status,
    ) -> Result<(), Failure> {
        let expected_end = response
            .content_length()
            .map(|length| transfer.received.saturating_add(length));
        let mut progress = Progress::new(self.progress_interval, transfer.received);
        loop {
            let chunk = match tokio::time::timeout(self.read_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(Failure::Retry {
                        reason: format!(
                            "no data for {} (--read-timeout) after {}",
                            human(self.read_timeout),
                            human_bytes(transfer.received)
                        ),
                        after: None,
                    });
                }
                Ok(Err(err)) => {
                    return Err(Failure::Retry {
                        reason: format!(
                            "the transfer broke off after {}: {}",
                            human_bytes(transfer.received),
                            http::describe(&err)
                        ),
                        after: None,
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            let total = transfer.received.saturating_add(chunk.len() as u64);
            if let Some(max) = self.max_size
                && total > max
            {
                return Err(Failure::Fatal(FetchError::failed(
                    name,
                    format!("larger than --max-size {max} bytes ({total} bytes received so far)"),
                )));
            }
            transfer.write(&chunk).map_err(|err| Failure::file(name, err))?;
            status.received.store(transfer.received, Ordering::Relaxed);
            progress.tick(name, transfer.received, expected_end);
        }
        if let Some(end) = expected_end
            && transfer.received != end
        {
            return Err(Failure::Retry {
                reason: format!(
                    "the body ended after {} bytes where Content-Length announced {end}",
                    transfer.received
                ),
                after: None,
            });
        }
        Ok(())
    }

    /// Checks a full (200) response's headers and notes whether it can be resumed.
    fn accept_fresh(
        &self,
        name: &str,
        response: &reqwest::Response,
        transfer: &mut Transfer,
        status: &Status,
    ) -> Result<(), Failure> {
        let headers = response.headers();
        if let Some(expected) = &self.content_type {
            let actual = headers
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            match actual {
                Some(actual) if expected.matches(&actual) => {}
                Some(actual) => {
                    return Err(Failure::Fatal(FetchError::failed(
                        name,
                        format!(
                            "content type {:?}, expected {expected} (--content-type)",
                            http::printable(actual.as_bytes(), 100)
                        ),
                    )));
                }
                None => {
                    return Err(Failure::Fatal(FetchError::failed(
                        name,
                        format!("the response has no Content-Type, expected {expected} (--content-type)"),
                    )));
                }
            }
        }
        let length = response.content_length();
        if let (Some(length), Some(max)) = (length, self.max_size)
            && length > max
        {
            return Err(Failure::Fatal(FetchError::failed(
                name,
                format!("larger than --max-size {max} bytes (Content-Length: {length})"),
            )));
        }
        status.total.store(length.unwrap_or(u64::MAX), Ordering::Relaxed);
        transfer.resume = if http::accepts_ranges(headers) {
            http::validator(headers)
        } else {
            None
        };
        Ok(())
    }

    /// A response outside 2xx: retried (5xx, 408, 429), started over (416 to a range), or
    /// the end. The message has the status and a short printable piece of the body.
    async fn status_failure(
        &self,
        name: &str,
        source: &Source,
        mut response: reqwest::Response,
        transfer: &mut Transfer,
        resuming: bool,
    ) -> Failure {
        let status = response.status();
        let code = status.as_u16();
        let after = http::retry_after(response.headers(), SystemTime::now());
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_BYTES {
            match tokio::time::timeout(self.read_timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_BYTES - body.len())]);
                }
                _ => break,
            }
        }
        let reason = match source {
            Source::S3(_) => s3::describe_error(code, &body),
            Source::Http(_) => {
                let canonical = status
                    .canonical_reason()
                    .map_or_else(String::new, |reason| format!(" {reason}"));
                let snippet = http::printable(&body, ERROR_SNIPPET_CHARS);
                if snippet.is_empty() {
                    format!("HTTP {code}{canonical}")
                } else {
                    format!("HTTP {code}{canonical}: {snippet}")
                }
            }
        };
        if code == 416 && resuming {
            if let Err(err) = transfer.restart() {
                return Failure::file(name, err);
            }
            return Failure::Retry {
                reason: format!("{reason} (to the range request); starting over"),
                after: Some(Duration::ZERO),
            };
        }
        if status.is_server_error() || code == 408 || code == 429 {
            Failure::Retry { reason, after }
        } else {
            Failure::Fatal(FetchError::failed(name, reason))
        }
    }

    /// A presigned URL for this attempt; the S3 settings and credentials are read once.
    async fn presign(&self, name: &str, object: &S3Object) -> Result<Url, Failure> {
        let s3_error = |source: S3Error| {
            Failure::Fatal(FetchError::S3 {
                file: name.to_owned(),
                source,
            })
        };
        let (settings, credentials) = self
            .s3
            .get_or_try_init(|| async {
                let settings = s3::settings_from_process_env()?;
                let credentials = s3::credentials(&settings, &self.client).await?;
                Ok((settings, credentials))
            })
            .await
            .map_err(s3_error)?;
        s3::presigned_get(settings, credentials, object, SystemTime::now(), PRESIGN_VALIDITY)
            .map_err(s3_error)
    }
}

fn file_error(name: &str, err: FileError) -> FetchError {
    FetchError::File {
        file: name.to_owned(),
        source: err,
    }
}

/// Logs bytes, rate and ETA every `interval` while a body streams in.
struct Progress {
    interval: Option<Duration>,
    next: Instant,
    started: Instant,
    first: u64,
}

impl Progress {
    fn new(interval: Option<Duration>, first: u64) -> Progress {
        let now = Instant::now();
        Progress {
            interval,
            next: now + interval.unwrap_or_default(),
            started: now,
            first,
        }
    }

    fn tick(&mut self, name: &str, received: u64, end: Option<u64>) {
        let Some(interval) = self.interval else { return };
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + interval;
        let rate = rate(received.saturating_sub(self.first), now - self.started);
        let of = match end {
            Some(end) if end > 0 => {
                let percent = received.saturating_mul(100) / end;
                let eta = end
                    .saturating_sub(received)
                    .checked_div(rate)
                    .map_or_else(String::new, |secs| {
                        format!(", ETA {}", human(Duration::from_secs(secs)))
                    });
                format!(
                    " of {} ({percent}%), {}/s{eta}",
                    human_bytes(end),
                    human_bytes(rate)
                )
            }
            _ => format!(", {}/s", human_bytes(rate)),
        };
        tracing::info!("{name}: {}{of}", human_bytes(received));
    }
}

/// Bytes per second.
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let millis = elapsed.as_millis().max(1);
    u64::try_from(u128::from(bytes) * 1000 / millis).unwrap_or(u64::MAX)
}

/// A unique suffix for archive temporary files within this process.
static ARCHIVE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An archive being downloaded into the extraction directory (so it needs no space
/// elsewhere, and never crosses file systems); removed on drop, whatever happens.
pub(crate) struct TempArchive {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl TempArchive {
    /// Creates `.NAME.PID-N.pitcrew-archive` (mode 0600) in `directory`.
    pub fn create(directory: &Path, name: &str) -> Result<TempArchive, FileError> {
        loop {
            let path = directory.join(format!(
                ".{name}.{}-{}.pitcrew-archive",
                std::process::id(),
                ARCHIVE_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempArchive {
                        path,
                        writer: Some(BufWriter::with_capacity(64 * 1024, file)),
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(FileError::output(directory, "write", err)),
            }
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.writer
            .as_mut()
            .expect("open until finished")
            .write_all(bytes)
            .map_err(|err| FileError::output(&self.path, "write", err))
    }

    fn truncate(&mut self) -> Result<(), FileError> {
        self.writer = None;
        let file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(|err| FileError::output(&self.path, "write", err))?;
        self.writer = Some(BufWriter::with_capacity(64 * 1024, file));
        Ok(())
    }

    /// Flushes and closes it, ready to be read by the extractor.
    pub fn finish(&mut self) -> Result<(), FileError> {
        if let Some(writer) = self.writer.take() {
            writer
                .into_inner()
                .map_err(|err| FileError::output(&self.path, "write", err.into_error()))?;
        }
        Ok(())
    }
}

impl Drop for TempArchive {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_archive_is_removed_whatever_happens() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = TempArchive::create(dir.path(), "a.tar").unwrap();
        archive.write(b"abc").unwrap();
        archive.truncate().unwrap();
        archive.write(b"de").unwrap();
        archive.finish().unwrap();
        assert_eq!(std::fs::read(archive.path()).unwrap(), b"de");
        drop(archive);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_restarted_transfer_starts_a_fresh_hash_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("x");
        let sink = Sink::file(&destination, WriteOptions::default()).unwrap();
        let mut transfer = Transfer::new(sink, Some(Algorithm::Sha256));
        transfer.write(b"stale").unwrap();
        transfer.restart().unwrap();
        transfer.write(b"abc").unwrap();
        let mut fresh = Hasher::new(Algorithm::Sha256);
        fresh.update(b"abc");
        assert_eq!(transfer.digest().unwrap(), fresh.finish());
        assert_eq!(transfer.received, 3);
        // One temporary file, not two.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(transfer);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn rates_do_not_overflow() {
        assert_eq!(rate(1000, Duration::from_secs(1)), 1000);
        assert_eq!(rate(u64::MAX, Duration::ZERO), u64::MAX);
    }
}
