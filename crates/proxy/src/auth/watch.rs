//! Credential files (tokens, htpasswd, JWT secret and keys) loaded at start and swapped when
//! they change. Kubernetes updates a mounted Secret by an atomic swap of the `..data` symlink
//! in the file's directory, so the directory is watched (inotify through notify), and the file
//! itself too (a symlink into another directory); a poll every 10 s is the safety net for
//! everything a watch misses. A file that becomes unreadable or refused keeps the last good
//! content: a half-rotated Secret must not lock every client out, nor let every one in.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use pitcrew_core::shutdown::Shutdown;
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use crate::ProxyError;
use crate::metrics::ProxyMetrics;

/// The safety-net poll: a watch can miss changes (an NFS mount, a lost event, a symlink chain).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// After an event, how long to wait for quiet before reading: a file written in place by
/// something other than the kubelet (an editor, `cat >`) is read once, whole, rather than
/// half-way through.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Turns a file's bytes into the value used, or says (without quoting the file: it holds
/// secrets) why not. The `String` on success is a short summary for the log ("3 tokens").
pub(crate) type Parser<T> = fn(&Path, &[u8]) -> Result<(T, String), String>;

/// One credential file and what was last loaded from it.
pub(crate) struct Watched<T> {
    path: PathBuf,
    /// The flag that named it, for messages (`--bearer-tokens-file`).
    flag: &'static str,
    /// The `file` label of `pitcrew_proxy_reloads_total`.
    label: &'static str,
    parse: Parser<T>,
    current: RwLock<Arc<T>>,
    /// Bumped on every swap, so that what was derived from older content can be told apart.
    generation: AtomicU64,
    state: Mutex<ReadState>,
}

/// What the last look at the file found, so that an unchanged file (every poll) is neither
/// parsed, logged nor counted again.
struct ReadState {
    /// SHA-256 of the bytes last read (good or bad).
    digest: [u8; 32],
    /// Why the current file is not used, while that lasts.
    problem: Option<String>,
}

impl<T> Watched<T> {
    /// Reads and parses the file now: a missing or unreadable file is [`ProxyError::NoInput`]
    /// (exit 66), a refused one [`ProxyError::Config`] (exit 78).
    pub(crate) fn load(
        path: &Path,
        flag: &'static str,
        label: &'static str,
        parse: Parser<T>,
    ) -> Result<Watched<T>, ProxyError> {
        let bytes = std::fs::read(path).map_err(|err| {
            ProxyError::NoInput(format!(
                "cannot read {flag} {}: {}",
                path.display(),
                pitcrew_core::io_error::describe(&err)
            ))
        })?;
        let (value, summary) = parse(path, &bytes)
            .map_err(|problem| ProxyError::Config(format!("{flag} {}: {problem}", path.display())))?;
        tracing::info!("{flag} {}: {summary}", path.display());
        Ok(Watched {
            path: path.to_owned(),
            flag,
            label,
            parse,
            current: RwLock::new(Arc::new(value)),
            generation: AtomicU64::new(0),
            state: Mutex::new(ReadState {
                digest: Sha256::digest(&bytes).into(),
                problem: None,
            }),
        })
    }

    /// What is in use now.
    pub(crate) fn get(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many times new content was swapped in.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A file that [`FileWatch`] looks after, whatever it holds.
pub(crate) trait Reloadable: Send + Sync {
    /// The file.
    fn path(&self) -> &Path;
    /// Reads the file again; swaps in its content if it changed and is good, else keeps the
    /// old one. Logs and counts only what changed since the last look.
    fn reload(&self, metrics: &ProxyMetrics);
}

impl<T: Send + Sync> Reloadable for Watched<T> {
    fn path(&self) -> &Path {
        &self.path
    }

    fn reload(&self, metrics: &ProxyMetrics) {
        let read = std::fs::read(&self.path);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => {
                let problem = format!("cannot read it: {}", pitcrew_core::io_error::describe(&err));
                if state.problem.as_ref() != Some(&problem) {
                    tracing::warn!(
                        "{} {}: {problem}; keeping what was loaded before",
                        self.flag,
                        self.path.display()
                    );
                    metrics.reload(self.label, false);
                    state.problem = Some(problem);
                }
                // Whatever comes next is read as new, even the same bytes as before.
                state.digest = [0; 32];
                return;
            }
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if digest == state.digest {
            return;
        }
        state.digest = digest;
        match (self.parse)(&self.path, &bytes) {
            Ok((value, summary)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
                self.generation.fetch_add(1, Ordering::AcqRel);
                state.problem = None;
                tracing::info!("{} {}: reloaded, {summary}", self.flag, self.path.display());
                metrics.reload(self.label, true);
            }
            Err(problem) => {
                tracing::warn!(
                    "{} {}: {problem}; keeping what was loaded before",
                    self.flag,
                    self.path.display()
                );
                metrics.reload(self.label, false);
                state.problem = Some(problem);
            }
        }
    }
}

/// Watches the directories of some files and reloads them on a change or every
/// [`POLL_INTERVAL`], until shutdown.
pub(crate) async fn watch_files(files: Vec<Arc<dyn Reloadable>>, metrics: ProxyMetrics, shutdown: Shutdown) {
    watch_files_polling_every(files, metrics, shutdown, POLL_INTERVAL).await;
}

/// [`watch_files`] with another poll interval (tests: a poll that never comes proves the
/// watch alone sees a change).
async fn watch_files_polling_every(
    files: Vec<Arc<dyn Reloadable>>,
    metrics: ProxyMetrics,
    mut shutdown: Shutdown,
    poll_interval: Duration,
) {
    if files.is_empty() {
        return;
    }
    let doorbell = Arc::new(Notify::new());
    let paths: Vec<PathBuf> = files.iter().map(|file| file.path().to_owned()).collect();
    let mut watcher = start_watcher(&paths, &doorbell);
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: a look right after the watch is armed catches a change
    // made between the load and now, which no event will report.
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            () = doorbell.notified() => {
                // Let a burst of events (a swap is several) settle, then read once.
                tokio::time::sleep(DEBOUNCE).await;
            }
            _ = poll.tick() => {}
        }
        let reload_files = files.clone();
        let reload_metrics = metrics.clone();
        // Reading files blocks; a hung mount must not stall the runtime.
        let _ = tokio::task::spawn_blocking(move || {
            for file in &reload_files {
                file.reload(&reload_metrics);
            }
        })
        .await;
        if let Some(watcher) = watcher.as_mut() {
            arm(watcher, &paths);
        }
    }
}

fn start_watcher(paths: &[PathBuf], doorbell: &Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let doorbell = Arc::clone(doorbell);
    let targets = paths.to_vec();
    let watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let relevant = match result {
            Ok(event) => is_relevant(&event, &targets),
            // Events may have been lost: read to be sure.
            Err(_) => true,
        };
        if relevant {
            doorbell.notify_one();
        }
    });
    match watcher {
        Ok(mut watcher) => {
            arm(&mut watcher, paths);
            Some(watcher)
        }
        Err(err) => {
            tracing::warn!(
                "cannot start the file watcher ({err}); credential files are read every {}s only",
                POLL_INTERVAL.as_secs()
            );
            None
        }
    }
}

/// Watches each file's directory, and each file itself (to follow a symlink elsewhere); called
/// again after every reload because a swapped file is a new inode. Failures are logged once
/// by the poll's existence: nothing is lost, only slower.
fn arm(watcher: &mut notify::RecommendedWatcher, paths: &[PathBuf]) {
    for path in paths {
        let directory = directory(path);
        if let Err(err) = watcher.watch(directory, RecursiveMode::NonRecursive) {
            tracing::debug!(
                "cannot watch {} ({err}); reading {} every {}s",
                directory.display(),
                path.display(),
                POLL_INTERVAL.as_secs()
            );
        }
        if path.exists() {
            let _ = watcher.watch(path, RecursiveMode::NonRecursive);
        }
    }
}

/// The directory `path` is in (`.` for a bare name).
fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether an event may have changed one of the files: it names one, or a kubelet-internal
/// `..data` entry beside one; reads (our own among them) do not count, or every reload would
/// ring the bell for the next.
fn is_relevant(event: &notify::Event, paths: &[PathBuf]) -> bool {
    if event.need_rescan() {
        return true;
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    event.paths.iter().any(|changed| {
        paths.iter().any(|path| {
            changed == path
                || (changed.parent() == Some(directory(path))
                    && changed
                        .file_name()
                        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"..")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_lines(_: &Path, bytes: &[u8]) -> Result<(Vec<String>, String), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        if text.contains("bad") {
            return Err("refused".to_owned());
        }
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let summary = format!("{} lines", lines.len());
        Ok((lines, summary))
    }

    fn reloads(metrics: &ProxyMetrics, result: &'static str) -> u64 {
        metrics
            .reloads
            .get_or_create(&crate::metrics::ReloadLabels { file: "test", result })
            .get()
    }

    #[test]
    fn load_errors_have_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Watched::load(&dir.path().join("nope"), "--x", "test", parse_lines);
        assert!(matches!(missing, Err(ProxyError::NoInput(_))));
        std::fs::write(dir.path().join("bad"), "bad").unwrap();
        let refused = Watched::load(&dir.path().join("bad"), "--x", "test", parse_lines);
        assert!(matches!(refused, Err(ProxyError::Config(message)) if message.contains("refused")));
    }

    /// A good change is swapped in and counted once; a bad one or a vanished file keeps the
    /// last good content, counted once per spell, however many polls see it.
    #[test]
    fn keeps_last_good_content() {
        let (metrics, _registry) = ProxyMetrics::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, "a\n").unwrap();
        let watched = Watched::load(&path, "--x", "test", parse_lines).unwrap();
        watched.reload(&metrics);
        assert_eq!((reloads(&metrics, "ok"), reloads(&metrics, "failed")), (0, 0));

        std::fs::write(&path, "a\nb\n").unwrap();
        watched.reload(&metrics);
        watched.reload(&metrics);
        assert_eq!(*watched.get(), ["a", "b"]);
        assert_eq!(reloads(&metrics, "ok"), 1);

        std::fs::write(&path, "bad\n").unwrap();
        watched.reload(&metrics);
        watched.reload(&metrics);
        assert_eq!(*watched.get(), ["a", "b"]);
        assert_eq!(reloads(&metrics, "failed"), 1);

        std::fs::remove_file(&path).unwrap();
        watched.reload(&metrics);
        watched.reload(&metrics);
        assert_eq!(*watched.get(), ["a", "b"]);
        assert_eq!(reloads(&metrics, "failed"), 2);

        // Back with the very bytes loaded before: still read, since the file was gone.
        std::fs::write(&path, "a\nb\n").unwrap();
        watched.reload(&metrics);
        assert_eq!(reloads(&metrics, "ok"), 2);
    }

    /// With a poll that never comes, the directory watch alone notices the kubelet's swap of
    /// `..data` (the file itself is a symlink through it and is never written).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_sees_a_data_symlink_swap() {
        let (metrics, _registry) = ProxyMetrics::new();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/file"), "one\n").unwrap();
        std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/file", root.join("file")).unwrap();
        let watched = Arc::new(Watched::load(&root.join("file"), "--x", "test", parse_lines).unwrap());
        let (trigger, shutdown) = Shutdown::manual();
        let task = tokio::spawn(watch_files_polling_every(
            vec![Arc::clone(&watched) as Arc<dyn Reloadable>],
            metrics.clone(),
            shutdown,
            Duration::from_secs(3600),
        ));
        // Two swaps: the first may be found by the look the task takes once at its start,
        // before the watch could report anything; the second can only come through the watch.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for version in ["v2", "v3"] {
            std::fs::create_dir(root.join(format!("..{version}"))).unwrap();
            std::fs::write(root.join(format!("..{version}/file")), version).unwrap();
            std::os::unix::fs::symlink(format!("..{version}"), root.join("..data_tmp")).unwrap();
            std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
            while *watched.get() != [version] {
                assert!(std::time::Instant::now() < deadline, "{version} was not noticed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        trigger.trigger(15);
        task.await.unwrap();
    }
}
