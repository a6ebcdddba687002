//! pitcrew-fetch: downloads files into a volume so that they only ever appear complete and
//! verified (checksum, size, content type), retrying and resuming on the way, and unpacks
//! archives without letting an entry escape the target directory.
//!
//! Module map: [`cli`] (flags → [`Config`]; [`cli::main_with_args`] is the whole program),
//! [`source`] (http, https and s3 URLs, shown without secrets), [`http`] (the client,
//! redirects, header parsers), `download` (attempts, retries, resumes, streaming checks), [`checks`] (digests, checksum files, sizes, content types),
//! [`error`] (exit codes), `extract` (unpacking a verified archive) and `s3` (fetch's side of
//! pitcrew-core's S3 module, which turns `s3://bucket/key` and the AWS environment into
//! presigned requests).
//!
//! [`run`] downloads every [`Job`] of a [`Config`], at most `parallel` at a time, until all are
//! saved, one fails (the others are stopped: every file is all-or-nothing on its own, and the
//! ones already saved stay), `--timeout` passes or a signal arrives.

pub mod checks;
pub mod cli;
mod download;
pub mod error;
pub mod extract;
pub mod http;
pub mod s3;
pub mod source;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pitcrew_core::duration::display as human;
use pitcrew_core::files::{FileError, Mode, Outcome, Owner, WriteOptions};
use pitcrew_core::shutdown::{Shutdown, signal_name};
use pitcrew_core::tls::{Tls, TlsSettings};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checks::{Checksums, ContentType, Expected, human_bytes};
use crate::download::{Engine, Sink, Status, TempArchive, Transfer};
pub use crate::error::FetchError;
use crate::extract::{ExtractOptions, Format};
use crate::http::{Credentials, RedirectPolicy};
use crate::source::Source;

/// A checksums file bigger than this is refused: real ones list a few hundred files.
pub(crate) const MAX_CHECKSUMS_BYTES: u64 = 4 * 1024 * 1024;

/// One file to download.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where from.
    pub source: Source,
    /// Where to: the file, or with `--extract` the directory.
    pub destination: PathBuf,
    /// The name messages use (the destination's file name).
    pub name: String,
}

/// Where the expected digests come from.
#[derive(Debug, Clone)]
pub enum Digests {
    /// None: only sizes and type are checked.
    None,
    /// `--sha256`/`--sha512` (single file).
    Given(Expected),
    /// `--checksums FILE`, already read and parsed.
    File {
        /// The file as named, for messages.
        shown: String,
        /// Its entries.
        checksums: Checksums,
    },
    /// `--checksums URL`, fetched before the downloads.
    Url(Source),
}

/// `--extract FORMAT|auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    /// Told by the archive's first bytes (or else its name).
    Auto,
    /// As named.
    Format(Format),
}

/// Everything a run needs, from the flags.
#[derive(Debug)]
pub struct Config {
    /// The files.
    pub jobs: Vec<Job>,
    /// Expected digests.
    pub digests: Digests,
    /// Headers and bearer token.
    pub credentials: Credentials,
    /// Redirect limits.
    pub redirects: RedirectPolicy,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The whole run's deadline (`None`: no limit).
    pub timeout: Option<Duration>,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// How long a response may be silent (headers or body).
    pub read_timeout: Duration,
    /// At least this many bytes.
    pub min_size: u64,
    /// At most this many bytes.
    pub max_size: Option<u64>,
    /// Expected media type.
    pub content_type: Option<ContentType>,
    /// Downloads at once.
    pub parallel: usize,
    /// Keep an existing destination without a request.
    pub if_missing: bool,
    /// Mode of what is written.
    pub mode: Option<Mode>,
    /// Owner of what is written.
    pub owner: Option<Owner>,
    /// Unpack into the destination directory.
    pub extract: Option<ExtractFormat>,
    /// Progress lines every this long (`None`: `--quiet`).
    pub progress_interval: Option<Duration>,
    /// `--ca-file`, `--insecure`.
    pub tls: TlsSettings,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Downloaded and put in place (or identical to what was there).
    Written {
        /// Created, replaced or unchanged.
        outcome: Outcome,
        /// Its size.
        bytes: u64,
    },
    /// Already there: `--if-missing`, or its digest matched; no request was made.
    AlreadyThere,
    /// Downloaded and unpacked.
    Extracted(extract::Extracted),
}

/// Why a run stops the downloads still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal(i32),
    TimedOut,
    /// Another file failed.
    Failed,
}

/// How a job ended.
enum JobEnd {
    Done(Saved),
    Failed(FetchError),
    /// Stopped from outside; the text says how far it got.
    Interrupted(String),
}

/// Downloads every job; returns what happened to each, in the order given.
pub async fn run(config: Config, mut shutdown: Shutdown) -> Result<Vec<(String, Saved)>, FetchError> {
    let tls = Tls::new(&config.tls, []).map_err(FetchError::Tls)?;
    pitcrew_core::tls::log_proxies("downloads");
    let client = http::client(&tls, config.connect_timeout).map_err(FetchError::Runtime)?;
    let started = Instant::now();
    let deadline = config.timeout.map(|timeout| started + timeout);
    let engine = Arc::new(Engine {
        client,
        credentials: config.credentials.clone(),
        policy: config.redirects,
        retries: config.retries,
        read_timeout: config.read_timeout,
        deadline,
        min_size: config.min_size,
        max_size: config.max_size,
        content_type: config.content_type.clone(),
        progress_interval: config.progress_interval,
        s3: tokio::sync::OnceCell::new(),
    });
    let (stop_sender, stop) = watch::channel(None::<Stop>);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config);

    // The checksums file comes first: every job needs it.
    let checksums = checksums(&config.digests, &engine, &mut shutdown, deadline, started).await?;

    let permits = Arc::new(Semaphore::new(config.parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (index, job) in config.jobs.iter().enumerate() {
        let status = Arc::new(Status::default());
        let task = JobTask {
            engine: Arc::clone(&engine),
            config: Arc::clone(&config),
            job: job.clone(),
            checksums: checksums.clone(),
            status,
            stop: stop.clone(),
            stop_flag: Arc::clone(&stop_flag),
            permits: Arc::clone(&permits),
        };
        tasks.spawn(async move { (index, task.run().await) });
    }

    let mut results: Vec<Option<Saved>> = vec![None; config.jobs.len()];
    let mut first_error: Option<FetchError> = None;
    let mut interrupted: Vec<String> = Vec::new();
    let mut stopped: Option<Stop> = None;
    let mut signal_watch = shutdown.clone();
    loop {
        let stopping = stopped.is_some();
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (index, end) = joined.map_err(|err| FetchError::Runtime(format!("a download task failed: {err}")))?;
                match end {
                    JobEnd::Done(saved) => results[index] = Some(saved),
                    JobEnd::Interrupted(detail) => interrupted.push(detail),
                    JobEnd::Failed(err) => {
                        if first_error.is_none() {
                            first_error = Some(err);
                        }
                        if !stopping {
                            stopped = Some(Stop::Failed);
                            stop_flag.store(true, Ordering::SeqCst);
                            stop_sender.send_replace(Some(Stop::Failed));
                        }
                    }
                }
            }
            signal = signal_watch.recv(), if !stopping => {
                tracing::warn!("{}: stopping the downloads; nothing partial is left behind", signal_name(signal));
                stopped = Some(Stop::Signal(signal));
                stop_flag.store(true, Ordering::SeqCst);
                stop_sender.send_replace(stopped);
            }
            () = sleep_until(deadline), if !stopping => {
                stopped = Some(Stop::TimedOut);
                stop_flag.store(true, Ordering::SeqCst);
                stop_sender.send_replace(stopped);
            }
        }
    }
    let results = config
        .jobs
        .iter()
        .zip(results)
        .map(|(job, saved)| (job.name.clone(), saved.unwrap_or(Saved::AlreadyThere)))
        .collect();
    conclude(stopped, first_error, &interrupted, started.elapsed(), results)
}

/// The run's result once every job has ended: a signal or the timeout name what was
/// interrupted; otherwise the first failure, or what each file became.
fn conclude(
    stopped: Option<Stop>,
    first_error: Option<FetchError>,
    interrupted: &[String],
    elapsed: Duration,
    results: Vec<(String, Saved)>,
) -> Result<Vec<(String, Saved)>, FetchError> {
    match stopped {
        Some(Stop::Signal(signal)) => {
            let during = if interrupted.is_empty() {
                String::new()
            } else {
                format!(" while downloading {}", interrupted.join(", "))
            };
            return Err(FetchError::Stopped {
                signal,
                summary: format!("stopped by {}{during}", signal_name(signal)),
            });
        }
        Some(Stop::TimedOut) if first_error.is_none() => {
            return Err(FetchError::TimedOut(format!(
                "timed out after {} (--timeout): {}",
                human(elapsed),
                if interrupted.is_empty() {
                    "no file was finished".to_owned()
                } else {
                    interrupted.join("; ")
                }
            )));
        }
        _ => {}
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    Ok(results)
}

/// The checksums from `--checksums`: already read, or fetched now (stopping on a signal or
/// the deadline like the downloads do).
async fn checksums(
    digests: &Digests,
    engine: &Engine,
    shutdown: &mut Shutdown,
    deadline: Option<Instant>,
    started: Instant,
) -> Result<Option<Arc<Checksums>>, FetchError> {
    let checksums = match digests {
        Digests::Url(source) => {
            let fetched = fetch_checksums(engine, source);
            tokio::select! {
                result = fetched => Some(Arc::new(result?)),
                signal = shutdown.recv() => {
                    return Err(FetchError::Stopped {
                        signal,
                        summary: format!("stopped by {} while fetching the checksums file", signal_name(signal)),
                    });
                }
                () = sleep_until(deadline) => {
                    return Err(FetchError::TimedOut(format!(
                        "timed out after {} (--timeout) while fetching the checksums file {source}",
                        human(started.elapsed())
                    )));
                }
            }
        }
        Digests::File { checksums, .. } => Some(Arc::new(checksums.clone())),
        _ => None,
    };
    Ok(checksums)
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Fetches and parses `--checksums URL` into memory (bounded), with the usual retries.
async fn fetch_checksums(engine: &Engine, source: &Source) -> Result<Checksums, FetchError> {
    let name = source.file_name().unwrap_or_else(|| "checksums file".to_owned());
    let mut transfer = Transfer::new(Sink::Memory(Vec::new()), None);
    let status = Status::default();
    let bounded = Engine {
        max_size: Some(MAX_CHECKSUMS_BYTES),
        min_size: 1,
        content_type: None,
        progress_interval: None,
        client: engine.client.clone(),
        credentials: engine.credentials.clone(),
        policy: engine.policy,
        retries: engine.retries,
        read_timeout: engine.read_timeout,
        deadline: engine.deadline,
        s3: tokio::sync::OnceCell::new(),
    };
    bounded
        .download(&name, source, None, &mut transfer, &status)
        .await?;
    let Sink::Memory(bytes) = transfer.sink else {
        unreachable!("a memory sink stays one")
    };
    let text = String::from_utf8_lossy(&bytes);
    let checksums = Checksums::parse(&text);
    if checksums.is_empty() {
        return Err(FetchError::failed(
            &name,
            format!("the checksums file {source} lists no sha256 or sha512 digest"),
        ));
    }
    tracing::info!("{name}: {} checksums read from {source}", checksums.len());
    Ok(checksums)
}

/// One job with what it needs from the run.
struct JobTask {
    engine: Arc<Engine>,
    config: Arc<Config>,
    job: Job,
    checksums: Option<Arc<Checksums>>,
    status: Arc<Status>,
    stop: watch::Receiver<Option<Stop>>,
    stop_flag: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
}

impl JobTask {
    async fn run(self) -> JobEnd {
        // Directories this job may create; removed again (when still empty) if it does not
        // finish, so a failed run leaves nothing new behind, not even a directory.
        let missing = missing_ancestors(&self.directory());
        let end = self.attempt().await;
        if !matches!(end, JobEnd::Done(_)) {
            for directory in &missing {
                if std::fs::remove_dir(directory).is_ok() {
                    tracing::debug!(
                        "removed the directory {} made for this download",
                        directory.display()
                    );
                }
            }
        }
        end
    }

    /// The directory the job writes into: DEST's parent, or DEST itself with --extract.
    fn directory(&self) -> PathBuf {
        if self.config.extract.is_some() {
            self.job.destination.clone()
        } else {
            parent(&self.job.destination).to_owned()
        }
    }

    async fn attempt(&self) -> JobEnd {
        let mut stop = self.stop.clone();
        let work = async {
            let _permit = self.permits.acquire().await;
            self.download().await
        };
        let result = tokio::select! {
            result = work => result,
            _ = stop.wait_for(Option::is_some) => {
                return JobEnd::Interrupted(format!("{} ({})", self.job.name, self.status.describe()));
            }
        };
        let ready = match result {
            Ok(Ready::AlreadyThere) => return JobEnd::Done(Saved::AlreadyThere),
            Ok(ready) => ready,
            Err(err) => return JobEnd::Failed(err),
        };
        match self.finish(ready).await {
            Ok(saved) => JobEnd::Done(saved),
            Err(FetchError::Extract {
                source: extract::ExtractError::Stopped,
                ..
            }) => JobEnd::Interrupted(format!("{} (stopped while extracting)", self.job.name)),
            Err(err) => JobEnd::Failed(err),
        }
    }

    /// The expected digest: `--sha256`/`--sha512`, or the checksums file's entry for the
    /// destination's name (else the URL's file name).
    fn expected(&self) -> Result<Option<Expected>, FetchError> {
        match &self.config.digests {
            Digests::Given(expected) => Ok(Some(expected.clone())),
            Digests::None => Ok(None),
            Digests::File { .. } | Digests::Url(_) => {
                let checksums = self.checksums.as_deref().cloned().unwrap_or_default();
                let shown = match &self.config.digests {
                    Digests::File { shown, .. } => shown.clone(),
                    Digests::Url(source) => source.to_string(),
                    _ => String::new(),
                };
                let mut names = vec![self.job.name.clone()];
                if let Some(from_url) = self.job.source.file_name()
                    && !names.contains(&from_url)
                {
                    names.push(from_url);
                }
                for name in &names {
                    match checksums.lookup(name) {
                        Ok(Some(expected)) => return Ok(Some(expected.clone())),
                        Ok(None) => {}
                        Err(why) => {
                            return Err(FetchError::failed(
                                &self.job.name,
                                format!("checksums file {shown}: {why}"),
                            ));
                        }
                    }
                }
                Err(FetchError::failed(
                    &self.job.name,
                    format!(
                        "not listed in the checksums file {shown} (looked up as {})",
                        names
                            .iter()
                            .map(|name| format!("{name:?}"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ))
            }
        }
    }

    /// Everything up to a verified download (cancelled from outside at any point).
    async fn download(&self) -> Result<Ready, FetchError> {
        let job = &self.job;
        let name = job.name.as_str();
        let expected = self.expected()?;
        if self.already_there(expected.as_ref()).await? {
            return Ok(Ready::AlreadyThere);
        }
        let directory = self.directory();
        if !directory.is_dir() {
            std::fs::create_dir_all(&directory).map_err(|err| FetchError::File {
                file: name.to_owned(),
                source: FileError::output(&directory, "create directory", err),
            })?;
            tracing::info!("{name}: created the directory {}", directory.display());
        }
        let file_error = |err| FetchError::File {
            file: name.to_owned(),
            source: err,
        };
        let sink = if self.config.extract.is_some() {
            Sink::Archive(TempArchive::create(&directory, name).map_err(file_error)?)
        } else {
            let options = WriteOptions {
                mode: self.config.mode,
                owner: self.config.owner,
                ..WriteOptions::default()
            };
            Sink::file(&job.destination, options).map_err(file_error)?
        };
        let mut transfer = Transfer::new(sink, expected.as_ref().map(|expected| expected.algorithm));
        self.engine
            .download(name, &job.source, expected.as_ref(), &mut transfer, &self.status)
            .await?;
        Ok(Ready::Downloaded {
            transfer: Box::new(transfer),
            expected,
        })
    }

    /// Whether the destination is already what is asked for, so no request is needed:
    /// `--if-missing` and it exists, or its digest matches.
    async fn already_there(&self, expected: Option<&Expected>) -> Result<bool, FetchError> {
        let job = &self.job;
        let name = job.name.as_str();
        if self.config.extract.is_some() {
            let filled =
                std::fs::read_dir(&job.destination).is_ok_and(|mut entries| entries.next().is_some());
            if self.config.if_missing && filled {
                tracing::info!(
                    "{name}: {} already has content; kept, not downloaded (--if-missing)",
                    job.destination.display()
                );
                return Ok(true);
            }
            return Ok(false);
        }
        if self.config.if_missing && std::fs::symlink_metadata(&job.destination).is_ok() {
            tracing::info!(
                "{name}: {} exists; kept, not downloaded (--if-missing)",
                job.destination.display()
            );
            return Ok(true);
        }
        let Some(expected) = expected else {
            return Ok(false);
        };
        let path = job.destination.clone();
        let algorithm = expected.algorithm;
        let hashed = tokio::task::spawn_blocking(move || checks::hash_file(&path, algorithm))
            .await
            .map_err(|err| FetchError::Runtime(format!("hashing the existing file failed: {err}")))?;
        match hashed {
            Ok(Some(digest)) if digest == expected.digest => {
                tracing::info!(
                    "{name}: already there, {} matches; not downloaded ({})",
                    algorithm.as_str(),
                    job.destination.display()
                );
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err) => {
                // Replaced below like any other outdated file, if the directory allows.
                tracing::debug!(
                    "{name}: cannot read the existing {}: {}",
                    job.destination.display(),
                    pitcrew_core::io_error::describe(&err)
                );
                Ok(false)
            }
        }
    }

    /// Puts a verified download in place (or unpacks it) and logs the summary line.
    async fn finish(&self, ready: Ready) -> Result<Saved, FetchError> {
        let Ready::Downloaded { transfer, expected } = ready else {
            return Ok(Saved::AlreadyThere);
        };
        let name = self.job.name.clone();
        let bytes = transfer.received;
        let elapsed = transfer.started.elapsed();
        let rate = download::rate(bytes, elapsed);
        let mut checked = expected.map_or_else(
            || "no checksum given".to_owned(),
            |expected| format!("{} ok", expected.algorithm.as_str()),
        );
        if transfer.resumes > 0 {
            let _ = write!(
                checked,
                ", resumed {} time{}",
                transfer.resumes,
                if transfer.resumes == 1 { "" } else { "s" }
            );
        }
        let figures = format!(
            "{} in {} ({}/s), {checked}",
            human_bytes(bytes),
            human(elapsed),
            human_bytes(rate)
        );
        let destination = self.job.destination.clone();
        let file_error = |err| FetchError::File {
            file: name.clone(),
            source: err,
        };
        match transfer.sink {
            Sink::File { file, .. } => {
                let file = file.expect("open until committed");
                let written = tokio::task::spawn_blocking(move || file.commit())
                    .await
                    .map_err(|err| FetchError::Runtime(format!("saving failed: {err}")))?
                    .map_err(file_error)?;
                let note = if written.outcome == Outcome::Unchanged {
                    " (identical to the file already there, left as it was)"
                } else {
                    ""
                };
                tracing::info!("saved {}: {figures}{note}", destination.display());
                Ok(Saved::Written {
                    outcome: written.outcome,
                    bytes,
                })
            }
            Sink::Archive(mut archive) => {
                archive.finish().map_err(file_error)?;
                let format = self.archive_format(&archive)?;
                let options = ExtractOptions {
                    mode: self.config.mode,
                    owner: self.config.owner,
                    ..ExtractOptions::default()
                };
                let stop = Arc::clone(&self.stop_flag);
                let into = destination.clone();
                let extracted = tokio::task::spawn_blocking(move || {
                    // The archive stays until extraction is over, then goes with `archive`.
                    let result = extract::extract(archive.path(), format, &into, &options, &stop);
                    drop(archive);
                    result
                })
                .await
                .map_err(|err| FetchError::Runtime(format!("extraction failed: {err}")))?
                .map_err(|source| FetchError::Extract {
                    file: name.clone(),
                    source,
                })?;
                tracing::info!(
                    "extracted {name} into {}: {} files, {} directories, {} links, {} (archive: {figures})",
                    destination.display(),
                    extracted.files,
                    extracted.directories,
                    extracted.links,
                    human_bytes(extracted.bytes)
                );
                Ok(Saved::Extracted(extracted))
            }
            Sink::Memory(_) => Ok(Saved::AlreadyThere),
        }
    }

    /// `--extract FORMAT`, or for `auto` the archive's first bytes, else its name.
    fn archive_format(&self, archive: &TempArchive) -> Result<Format, FetchError> {
        let name = &self.job.name;
        if let Some(ExtractFormat::Format(format)) = self.config.extract {
            return Ok(format);
        }
        let mut head = [0_u8; 512];
        let read = std::fs::File::open(archive.path())
            .and_then(|mut file| std::io::Read::read(&mut file, &mut head))
            .unwrap_or(0);
        Format::sniff(&head[..read])
            .or_else(|| format_from_name(name))
            .ok_or_else(|| {
                FetchError::failed(
                    name,
                    "cannot tell the archive format from its first bytes or its name; \
                     name it: --extract tar, tar.gz, tar.zst or zip",
                )
            })
    }
}

/// A format from a file name's ending.
fn format_from_name(name: &str) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    [
        (".tar.gz", Format::TarGz),
        (".tgz", Format::TarGz),
        (".tar.zst", Format::TarZst),
        (".tzst", Format::TarZst),
        (".tar", Format::Tar),
        (".zip", Format::Zip),
    ]
    .into_iter()
    .find_map(|(suffix, format)| lower.ends_with(suffix).then_some(format))
}

/// A job's download, ready to be put in place.
enum Ready {
    AlreadyThere,
    Downloaded {
        transfer: Box<Transfer>,
        expected: Option<Expected>,
    },
}

/// The directory a path is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `directory` and those of its ancestors that do not exist yet, deepest first.
fn missing_ancestors(directory: &Path) -> Vec<PathBuf> {
    directory
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && std::fs::symlink_metadata(path).is_err())
        .map(Path::to_path_buf)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_formats_follow_the_name_when_the_bytes_do_not_tell() {
        assert_eq!(format_from_name("x.TGZ"), Some(Format::TarGz));
        assert_eq!(format_from_name("x.tar.zst"), Some(Format::TarZst));
        assert_eq!(format_from_name("x.tar"), Some(Format::Tar));
        assert_eq!(format_from_name("x.zip"), Some(Format::Zip));
        assert_eq!(format_from_name("x.csv"), None);
    }
}
