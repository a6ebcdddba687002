//! The follower thread: discovery, reading, rotation.
//!
//! One thread does everything: expands the patterns, opens files, reads them with one large
//! buffer, and hands complete lines to the consumer through a bounded channel. notify only rings
//! a doorbell (two flags and a one-slot channel); the periodic rescan and the poll interval make
//! up for any event it misses, and are all there is when it cannot start.
//!
//! Per file the engine keeps the descriptor it opened (so a renamed or deleted file is still read
//! to its end), the offset read so far, the offset up to which lines were handed out, the held
//! part of an unterminated last line, and the file's first bytes as last verified (its identity:
//! see [`crate::identity`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::identity::FINGERPRINT_BYTES;
use crate::{
    Checkpoint, Chunk, Cut, Event, FileInfo, FileKey, FileStatus, Fingerprint, FollowConfig, FollowError,
    StartAt, TRUNCATION_MARKER,
};

/// How many reads one file gets per pass before the others get their turn.
const READS_PER_PASS: usize = 64;
/// How many bytes before the last handed-out line end are remembered, to recognise the copy of
/// a truncated file (see [`Engine::copy_offset`]).
const TAIL_BYTES: usize = 64;
/// How often the status snapshot is refreshed while reading.
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// How patterns match: like a shell, `*.log` does not match `.app.log.tmp` (temporary files of
/// atomic writers, the checkpoint's own temporary file).
pub(crate) const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// State shared between the follower thread and its [`crate::FollowControl`]s.
pub(crate) struct Shared {
    stop: AtomicBool,
    finish: AtomicBool,
    /// Set by notify's thread: something in a watched directory changed its entries.
    pending_scan: AtomicBool,
    /// The doorbell: one slot, so a burst of events costs one wake-up.
    doorbell: std_mpsc::SyncSender<()>,
    /// The engine waits here while the channel is full; the consumer rings after each receive.
    space: Mutex<()>,
    space_ready: Condvar,
    status: Mutex<Vec<FileStatus>>,
}

impl Shared {
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ring();
        self.consumed();
    }

    pub(crate) fn finish(&self) {
        self.finish.store(true, Ordering::SeqCst);
        self.ring();
    }

    pub(crate) fn status(&self) -> Vec<FileStatus> {
        self.status
            .lock()
            .map(|status| status.clone())
            .unwrap_or_default()
    }

    /// Called by the consumer after each receive: wakes the engine if it waits for room.
    pub(crate) fn consumed(&self) {
        let _guard = self.space.lock();
        self.space_ready.notify_one();
    }

    fn ring(&self) {
        // Full means a wake-up is already pending: nothing is lost.
        let _ = self.doorbell.try_send(());
    }
}

pub(crate) fn spawn(config: FollowConfig) -> Result<(mpsc::Receiver<Event>, Arc<Shared>), FollowError> {
    let patterns = config
        .patterns
        .iter()
        .map(|pattern| Pattern::new(pattern))
        .collect::<Result<Vec<_>, _>>()?;
    if patterns.is_empty() {
        return Err(FollowError::Pattern {
            pattern: String::new(),
            reason: "no paths or patterns given".into(),
        });
    }
    let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
    let (doorbell, wake) = std_mpsc::sync_channel(1);
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        finish: AtomicBool::new(false),
        pending_scan: AtomicBool::new(false),
        doorbell,
        space: Mutex::new(()),
        space_ready: Condvar::new(),
        status: Mutex::new(Vec::new()),
    });
    let engine = Engine::new(config, patterns, tx, Arc::clone(&shared), wake);
    std::thread::Builder::new()
        .name("pitcrew-follow".into())
        .spawn(move || engine.run())
        .map_err(|err| FollowError::Start(format!("cannot start its thread: {err}")))?;
    Ok((rx, shared))
}

/// One path or glob from the configuration.
struct Pattern {
    text: String,
    path: PathBuf,
    is_glob: bool,
    /// The directory watched for new entries (non-recursive).
    watch_dir: PathBuf,
    announced_waiting: bool,
}

impl Pattern {
    fn new(path: &Path) -> Result<Pattern, FollowError> {
        let text = path.to_string_lossy().into_owned();
        // A path that is not UTF-8 cannot be a glob (the glob crate takes &str): it is literal.
        let is_glob = path.to_str().is_some_and(|text| text.contains(['*', '?', '[']));
        if is_glob {
            glob::Pattern::new(&text).map_err(|err| FollowError::Pattern {
                pattern: text.clone(),
                reason: format!("{} at character {}", err.msg, err.pos),
            })?;
        }
        if text.is_empty() {
            return Err(FollowError::Pattern {
                pattern: text,
                reason: "an empty path".into(),
            });
        }
        // The deepest directory with no glob character in it: a glob in the last component
        // (the usual `/var/log/app/*.log`) watches its parent; deeper globs rely on rescans.
        let mut watch_dir = PathBuf::new();
        let components: Vec<_> = path.components().collect();
        for component in &components[..components.len().saturating_sub(1)] {
            if component
                .as_os_str()
                .to_str()
                .is_some_and(|part| part.contains(['*', '?', '[']))
            {
                break;
            }
            watch_dir.push(component);
        }
        if watch_dir.as_os_str().is_empty() {
            watch_dir = PathBuf::from(".");
        }
        Ok(Pattern {
            text,
            path: path.to_owned(),
            is_glob,
            watch_dir,
            announced_waiting: false,
        })
    }

    /// The paths matching now, and directories the glob could not read.
    fn expand(&self) -> (Vec<PathBuf>, Vec<glob::GlobError>) {
        if !self.is_glob {
            return (
                if self.path.exists() {
                    vec![self.path.clone()]
                } else {
                    Vec::new()
                },
                Vec::new(),
            );
        }
        let options = MATCH_OPTIONS;
        let (mut paths, mut errors) = (Vec::new(), Vec::new());
        // Checked at start-up: the pattern is valid.
        if let Ok(matches) = glob::glob_with(&self.text, options) {
            for found in matches {
                match found {
                    Ok(path) => paths.push(path),
                    Err(err) => errors.push(err),
                }
            }
        }
        (paths, errors)
    }
}

/// A truncation seen recently: a new file whose first bytes and tail match is its copy.
struct Truncation {
    head: Vec<u8>,
    /// Lines before this offset were handed out.
    at: u64,
    /// The bytes just before `at`.
    tail: Vec<u8>,
    when: Instant,
}

/// One open file.
struct Tracked {
    info: Arc<FileInfo>,
    file: File,
    dev: u64,
    ino: u64,
    /// The first bytes as last verified (at most FINGERPRINT_BYTES).
    head: Vec<u8>,
    /// The next byte to read.
    offset: u64,
    /// Lines before this were handed out.
    emitted: u64,
    /// The kept part of the line being read (bytes `emitted..offset` unless `skipped` is set).
    partial: Vec<u8>,
    partial_since: Option<Instant>,
    /// Set while skipping the rest of an over-long line: bytes skipped so far.
    skipped: Option<u64>,
    /// Up to TAIL_BYTES bytes just before `emitted`.
    tail: Vec<u8>,
    size: u64,
    verified_size: u64,
    last_progress: Instant,
    /// Rotated away or deleted: when it last grew.
    detached: Option<Instant>,
}

impl Tracked {
    fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            ino: self.ino,
            fingerprint: Fingerprint::of(&self.head),
        }
    }

    /// A new `FileInfo` (same id) after the key or path changed; later chunks carry it.
    fn refresh(&mut self, path: Option<PathBuf>) {
        self.info = Arc::new(FileInfo {
            id: self.info.id,
            key: self.key(),
            path: path.unwrap_or_else(|| self.info.path.clone()),
        });
    }

    /// Remembers the bytes that end at `emitted`.
    fn remember_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - TAIL_BYTES..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess);
        }
    }
}

/// The consumer went away or stop() was called: the engine ends.
struct Stopped;

/// The sending side, apart from the files so both can be borrowed at once.
struct Out {
    tx: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    poll: Duration,
}

impl Out {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Sends, waiting while the channel is full (backpressure), but never past a stop.
    fn send(&self, event: Event) -> Result<(), Stopped> {
        let mut event = event;
        let mut guard = self.shared.space.lock().map_err(|_| Stopped)?;
        loop {
            if self.stopped() {
                return Err(Stopped);
            }
            match self.tx.try_send(event) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    event = back;
                    // The consumer rings `space_ready` under this lock after each receive, so
                    // the wake-up cannot slip between try_send and wait; the timeout is a guard.
                    guard = self
                        .shared
                        .space_ready
                        .wait_timeout(guard, self.poll)
                        .map_err(|_| Stopped)?
                        .0;
                }
            }
        }
    }
}

struct Engine {
    config: FollowConfig,
    patterns: Vec<Pattern>,
    out: Out,
    wake: std_mpsc::Receiver<()>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    files: Vec<Tracked>,
    next_id: AtomicU64,
    /// Checkpoint entries not matched yet, by device and inode.
    resume: Option<HashMap<(u64, u64), Vec<crate::CheckpointEntry>>>,
    truncations: Vec<Truncation>,
    /// New files whose first bytes equal a followed file's: maybe a copy being made before a
    /// truncation (copytruncate). Held back until the window ends or the truncation is seen.
    deferred: HashMap<(u64, u64), Instant>,
    /// New files found empty, not opened yet: an empty file says nothing about whether it is a
    /// copy being made (copytruncate), so it is judged when its first bytes arrive. Checked
    /// with one stat each at every wake-up, so that moment is not missed.
    empty: HashMap<(u64, u64), PathBuf>,
    /// Paths that could not be opened, with the reason last logged.
    unreadable: HashMap<PathBuf, String>,
    buf: Vec<u8>,
    last_status: Instant,
}

impl Engine {
    fn new(
        config: FollowConfig,
        patterns: Vec<Pattern>,
        tx: mpsc::Sender<Event>,
        shared: Arc<Shared>,
        wake: std_mpsc::Receiver<()>,
    ) -> Engine {
        let resume = config.resume.as_ref().map(|checkpoint: &Checkpoint| {
            let mut map: HashMap<(u64, u64), Vec<crate::CheckpointEntry>> = HashMap::new();
            for entry in &checkpoint.entries {
                map.entry((entry.key.dev, entry.key.ino))
                    .or_default()
                    .push(entry.clone());
            }
            map
        });
        let buf = vec![0; config.read_buffer_bytes.max(4096)];
        let poll = config.poll_interval;
        Engine {
            config,
            patterns,
            out: Out { tx, shared, poll },
            wake,
            watcher: None,
            watched: HashSet::new(),
            files: Vec::new(),
            next_id: AtomicU64::new(1),
            resume,
            truncations: Vec::new(),
            deferred: HashMap::new(),
            empty: HashMap::new(),
            unreadable: HashMap::new(),
            buf,
            last_status: Instant::now(),
        }
    }

    fn run(mut self) {
        // Ending drops the sender: the consumer's `next()` returns None.
        let _ = self.follow();
        self.publish_status();
    }

    fn follow(&mut self) -> Result<(), Stopped> {
        let watching = self.config.follow_names && !self.config.once;
        if watching {
            self.start_watcher();
        }
        self.scan(true)?;
        if self.config.once {
            return self.drain_to_end();
        }
        let mut next_rescan = Instant::now() + self.config.rescan_interval;
        loop {
            // Stopped, or the consumer dropped its `Follower`: end rather than poll forever.
            if self.out.stopped() || self.out.tx.is_closed() {
                return Err(Stopped);
            }
            if self.out.shared.finish.load(Ordering::SeqCst) {
                if self.config.follow_names {
                    self.scan(false)?;
                }
                return self.drain_to_end();
            }
            let more = self.read_pass()?;
            self.publish_status_every();
            if !more {
                let timeout = self
                    .next_deadline(next_rescan)
                    .saturating_duration_since(Instant::now());
                if self.wake.recv_timeout(timeout).is_ok() {
                    // Drain a second ring that may have come while we were busy.
                    let _ = self.wake.try_recv();
                }
            }
            let asked = self.out.shared.pending_scan.swap(false, Ordering::SeqCst) || self.empty_grew();
            if self.config.follow_names && (asked || Instant::now() >= next_rescan) {
                if watching {
                    self.watch_new_dirs();
                }
                self.scan(false)?;
                next_rescan = Instant::now() + self.config.rescan_interval;
            }
        }
    }

    /// Whether a new file that was empty has bytes now (or is gone): time for a scan.
    fn empty_grew(&self) -> bool {
        self.empty
            .iter()
            .any(|((dev, ino), path)| match std::fs::metadata(path) {
                Ok(metadata) => metadata.dev() != *dev || metadata.ino() != *ino || metadata.len() > 0,
                Err(_) => true,
            })
    }

    /// The earliest time something is due without any event.
    fn next_deadline(&self, next_rescan: Instant) -> Instant {
        let now = Instant::now();
        let mut due = (now + self.config.poll_interval).min(next_rescan);
        for tracked in &self.files {
            if let Some(since) = tracked.partial_since {
                due = due.min(since + self.config.partial_line_timeout);
            }
            if let Some(since) = tracked.detached {
                due = due.min(since + self.config.rotate_wait);
            }
        }
        due
    }

    // ---- notify -------------------------------------------------------------------------

    fn start_watcher(&mut self) {
        let shared = Arc::clone(&self.out.shared);
        let handler = move |event: notify::Result<notify::Event>| {
            use notify::EventKind;
            let scan = match &event {
                Ok(event) => !matches!(
                    event.kind,
                    EventKind::Modify(notify::event::ModifyKind::Data(_)) | EventKind::Access(_)
                ),
                Err(_) => true,
            };
            if scan {
                shared.pending_scan.store(true, Ordering::SeqCst);
            }
            shared.ring();
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => {
                self.watcher = Some(watcher);
                self.watch_new_dirs();
            }
            Err(err) => tracing::warn!(
                "cannot watch for file changes ({err}); polling followed files every {:?} and \
                 looking for new ones every {:?} instead",
                self.config.poll_interval,
                self.config.rescan_interval
            ),
        }
    }

    /// Watches pattern directories not watched yet (they may appear after start-up).
    fn watch_new_dirs(&mut self) {
        use notify::Watcher as _;
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for pattern in &self.patterns {
            if self.watched.contains(&pattern.watch_dir) || !pattern.watch_dir.is_dir() {
                continue;
            }
            match watcher.watch(&pattern.watch_dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(pattern.watch_dir.clone());
                }
                Err(err) => {
                    tracing::warn!(
                        "cannot watch {} for changes ({err}); polling it every {:?} instead",
                        pattern.watch_dir.display(),
                        self.config.rescan_interval
                    );
                    // Do not retry (and warn) at every rescan: polling covers it.
                    self.watched.insert(pattern.watch_dir.clone());
                }
            }
        }
    }

    // ---- discovery ----------------------------------------------------------------------

    /// Expands the patterns, notices renamed, rotated and deleted files, opens new ones.
    fn scan(&mut self, first: bool) -> Result<(), Stopped> {
        let now = Instant::now();
        let window = self.config.rotate_wait + self.config.rescan_interval;
        self.truncations
            .retain(|truncation| now.duration_since(truncation.when) < window);
        // Truncations first, so that a copy found below is judged against fresh records.
        for index in 0..self.files.len() {
            self.check(index, true)?;
        }

        let mut found: Vec<(PathBuf, u64, u64)> = Vec::new();
        let mut seen = HashSet::new();
        for pattern in &mut self.patterns {
            let (paths, errors) = pattern.expand();
            for err in errors {
                note_unreadable(&mut self.unreadable, err.path(), err.error());
            }
            let mut matched = false;
            for path in paths {
                match std::fs::metadata(&path) {
                    Ok(metadata) if metadata.is_file() => {
                        matched = true;
                        if seen.insert((metadata.dev(), metadata.ino())) {
                            found.push((path, metadata.dev(), metadata.ino()));
                        }
                    }
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => note_unreadable(&mut self.unreadable, &path, &err),
                }
            }
            if !matched && !pattern.announced_waiting && (first || self.config.follow_names) {
                pattern.announced_waiting = true;
                if self.config.once {
                    tracing::info!("no file matches {}; nothing to read", pattern.text);
                } else if pattern.is_glob {
                    tracing::info!("no file matches {} yet; waiting", pattern.text);
                } else {
                    tracing::info!("{} does not exist yet; waiting", pattern.text);
                }
            }
        }
        if !first && !self.config.follow_names {
            return Ok(());
        }

        let mut by_identity: HashMap<(u64, u64), PathBuf> = found
            .iter()
            .map(|(path, dev, ino)| ((*dev, *ino), path.clone()))
            .collect();
        for tracked in &mut self.files {
            match by_identity.remove(&(tracked.dev, tracked.ino)) {
                Some(path) => {
                    if tracked.detached.take().is_some() {
                        tracing::debug!("{}: followed again", path.display());
                    }
                    // Renamed but still matched (app.log -> app.log.1 under app.log*): the same
                    // file, followed on; only the name it is reported under changes, and only
                    // when its old name no longer leads to it.
                    if path != tracked.info.path && !same_file(&tracked.info.path, tracked.dev, tracked.ino) {
                        tracked.refresh(Some(path));
                    }
                }
                None if tracked.detached.is_none() && !first => {
                    tracing::debug!(
                        "{}: rotated away, deleted or replaced; reading it to its end",
                        tracked.info.path.display()
                    );
                    tracked.detached = Some(now);
                }
                None => {}
            }
        }
        self.deferred
            .retain(|identity, _| by_identity.contains_key(identity));
        // Re-judged below: still empty files go back in, grown ones are opened.
        self.empty.clear();
        for (path, dev, ino) in found {
            if by_identity.contains_key(&(dev, ino)) {
                self.open_new(&path, first)?;
            }
        }
        self.publish_status();
        Ok(())
    }

    /// Opens a file found by a scan and decides where reading starts.
    fn open_new(&mut self, path: &Path, first: bool) -> Result<(), Stopped> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => {
                note_unreadable(&mut self.unreadable, path, &err);
                return Ok(());
            }
        };
        let metadata = match file.metadata() {
            Ok(metadata) if metadata.is_file() => metadata,
            Ok(_) => return Ok(()),
            Err(err) => {
                note_unreadable(&mut self.unreadable, path, &err);
                return Ok(());
            }
        };
        if self.unreadable.remove(path).is_some() {
            tracing::info!("{}: readable now; following it", path.display());
        }
        let (dev, ino, size) = (metadata.dev(), metadata.ino(), metadata.len());
        // The name may now lead to a file we follow already (replaced between stat and open).
        if self
            .files
            .iter()
            .any(|tracked| tracked.dev == dev && tracked.ino == ino)
        {
            return Ok(());
        }
        if size == 0 && !first {
            self.empty.insert((dev, ino), path.to_owned());
            return Ok(());
        }
        let head = match read_head(&file, size) {
            Ok(head) => head,
            Err(err) => {
                note_unreadable(&mut self.unreadable, path, &err);
                return Ok(());
            }
        };

        let Some((start, truncated_at)) = self.decide_start(&mut file, path, (dev, ino, size), &head, first)
        else {
            return Ok(());
        };
        let (offset, reason) = start;
        if let Err(err) = file.seek(SeekFrom::Start(offset)) {
            note_unreadable(&mut self.unreadable, path, &err);
            return Ok(());
        }
        self.deferred.remove(&(dev, ino));
        let now = Instant::now();
        let mut tracked = Tracked {
            info: Arc::new(FileInfo {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                key: FileKey {
                    dev,
                    ino,
                    fingerprint: Fingerprint::of(&head),
                },
                path: path.to_owned(),
            }),
            file,
            dev,
            ino,
            head,
            offset,
            emitted: offset,
            partial: Vec::new(),
            partial_since: None,
            skipped: None,
            tail: Vec::new(),
            size,
            verified_size: size,
            last_progress: now,
            detached: None,
        };
        if offset > 0 {
            // The bytes before the start, for recognising a copy if this file is truncated
            // before anything is read from it.
            let from = offset.saturating_sub(TAIL_BYTES as u64);
            let mut tail = vec![0; usize::try_from(offset - from).unwrap_or(0)];
            if tracked.file.read_exact_at(&mut tail, from).is_ok() {
                tracked.tail = tail;
            }
        }
        tracing::debug!("{}: following from offset {offset} ({reason})", path.display());
        let opened = Arc::clone(&tracked.info);
        self.files.push(tracked);
        self.out.send(Event::Opened {
            file: Arc::clone(&opened),
            offset,
            reason,
        })?;
        if let Some(at) = truncated_at {
            tracing::info!(
                "{}: shorter than the checkpoint's offset {at}: truncated while not followed; \
                 reading it from the start",
                path.display()
            );
            self.out.send(Event::Truncated { file: opened, at })?;
        }
        Ok(())
    }

    /// Where reading starts in a newly found file, and the checkpoint offset it was truncated
    /// below while not followed; `None` to leave it for now (held back, or unreadable).
    #[allow(clippy::type_complexity)]
    fn decide_start(
        &mut self,
        file: &mut File,
        path: &Path,
        (dev, ino, size): (u64, u64, u64),
        head: &[u8],
        first: bool,
    ) -> Option<((u64, &'static str), Option<u64>)> {
        if let Some(entry) = self.take_resume(dev, ino, head) {
            return Some(if size < entry.offset {
                ((0, "checkpoint"), Some(entry.offset))
            } else {
                ((entry.offset, "checkpoint"), None)
            });
        }
        if let Some(offset) = self.copy_offset(file, size, head) {
            return Some(((offset, "copy of a truncated file"), None));
        }
        if !first && self.defer(dev, ino, head) {
            return None;
        }
        if first && self.resume.is_none() {
            return match self.start_offset(file, size) {
                Ok(start) => Some((start, None)),
                Err(err) => {
                    note_unreadable(&mut self.unreadable, path, &err);
                    None
                }
            };
        }
        Some(((0, "new file"), None))
    }

    /// The checkpoint entry for this file, if any (used once).
    fn take_resume(&mut self, dev: u64, ino: u64, head: &[u8]) -> Option<crate::CheckpointEntry> {
        let entries = self.resume.as_mut()?.get_mut(&(dev, ino))?;
        let index = entries
            .iter()
            .position(|entry| entry.key.fingerprint.matches(head))?;
        Some(entries.swap_remove(index))
    }

    /// Copytruncate with the copy followed too: a new file whose first bytes are those of a
    /// file truncated within the window, at least as long as what was handed out from it, and
    /// holding the same bytes just before that offset, is the copy: it is read from that offset
    /// (no duplicates), so lines the writer added between our last read and the truncation are
    /// read from the copy (no loss).
    fn copy_offset(&mut self, file: &File, size: u64, head: &[u8]) -> Option<u64> {
        let index = self.truncations.iter().position(|truncation| {
            size >= truncation.at
                && truncation.at > 0
                && head.starts_with(&truncation.head[..truncation.head.len().min(head.len())])
                && head.len()
                    >= truncation
                        .head
                        .len()
                        .min(usize::try_from(size).unwrap_or(usize::MAX))
                && {
                    let mut tail = vec![0; truncation.tail.len()];
                    file.read_exact_at(&mut tail, truncation.at - truncation.tail.len() as u64)
                        .is_ok()
                        && tail == truncation.tail
                }
        })?;
        Some(self.truncations.swap_remove(index).at)
    }

    /// Whether to hold back a new file whose first bytes are a followed file's (a copy being
    /// made, its source about to be truncated), until the window ends.
    fn defer(&mut self, dev: u64, ino: u64, head: &[u8]) -> bool {
        let window = self.config.rotate_wait + self.config.rescan_interval;
        let now = Instant::now();
        if let Some(since) = self.deferred.get(&(dev, ino)) {
            return now.duration_since(*since) < window;
        }
        let looks_like_copy = !head.is_empty()
            && self.files.iter().any(|tracked| {
                let common = tracked.head.len().min(head.len());
                tracked.detached.is_none() && common > 0 && tracked.head[..common] == head[..common]
            });
        if looks_like_copy {
            self.deferred.insert((dev, ino), now);
        }
        looks_like_copy
    }

    /// Where to start in a file present at start-up, per `start`.
    fn start_offset(&mut self, file: &mut File, size: u64) -> io::Result<(u64, &'static str)> {
        Ok(match self.config.start {
            StartAt::Beginning | StartAt::FromLine(0 | 1) => (0, "start of file"),
            StartAt::End | StartAt::LastLines(0) => (size, "end of file"),
            StartAt::LastLines(lines) => (last_lines(file, size, lines, &mut self.buf)?, "last lines"),
            StartAt::FromLine(line) => (from_line(file, size, line, &mut self.buf)?, "from line"),
        })
    }

    // ---- reading ------------------------------------------------------------------------

    /// Checks one file for truncation (smaller than what was read, or first bytes changed) and
    /// refreshes its fingerprint while it is shorter than FINGERPRINT_BYTES.
    fn check(&mut self, index: usize, rescan: bool) -> Result<(), Stopped> {
        let tracked = &mut self.files[index];
        let Ok(metadata) = tracked.file.metadata() else {
            return Ok(());
        };
        let size = metadata.len();
        tracked.size = size;
        let shrank = size < tracked.offset;
        let mut rewritten = false;
        if !shrank && (rescan || size != tracked.verified_size) {
            tracked.verified_size = size;
            if let Ok(head) = read_head(&tracked.file, size) {
                if head.starts_with(&tracked.head) {
                    if head.len() > tracked.head.len() {
                        tracked.head = head;
                        tracked.refresh(None);
                    }
                } else {
                    rewritten = true;
                }
            }
        }
        if !shrank && !rewritten {
            return Ok(());
        }
        let at = tracked.offset;
        tracing::info!(
            "{}: truncated (size {size}, {at} bytes read); reading it again from the start",
            tracked.info.path.display()
        );
        // A copy held back (or about to appear) is judged against this record at the next
        // scan: make it the next thing the loop does.
        self.out.shared.pending_scan.store(true, Ordering::SeqCst);
        self.truncations.push(Truncation {
            head: std::mem::take(&mut tracked.head),
            at: tracked.emitted,
            tail: std::mem::take(&mut tracked.tail),
            when: Instant::now(),
        });
        tracked.offset = 0;
        tracked.emitted = 0;
        tracked.partial.clear();
        tracked.partial_since = None;
        tracked.skipped = None;
        tracked.verified_size = size;
        tracked.head = read_head(&tracked.file, size).unwrap_or_default();
        tracked.refresh(None);
        if let Err(err) = tracked.file.seek(SeekFrom::Start(0)) {
            tracing::warn!("{}: cannot seek to the start: {err}", tracked.info.path.display());
        }
        let file = Arc::clone(&tracked.info);
        self.out.send(Event::Truncated { file, at })
    }

    /// Reads every file once (up to a budget each); releases rotated files that stayed quiet
    /// for `rotate_wait`. Returns whether a file had more to read than its budget.
    fn read_pass(&mut self) -> Result<bool, Stopped> {
        let mut more = false;
        let mut index = 0;
        while index < self.files.len() {
            self.check(index, false)?;
            let (progress, budget_used) = self.read_file(index, None)?;
            more |= budget_used;
            let now = Instant::now();
            let tracked = &mut self.files[index];
            if let Some(since) = tracked.partial_since
                && now.duration_since(since) >= self.config.partial_line_timeout
                && tracked.skipped.is_none()
            {
                flush_partial(tracked, &self.out)?;
            }
            if let Some(since) = tracked.detached {
                if progress {
                    tracked.detached = Some(now);
                } else if now.duration_since(since) >= self.config.rotate_wait {
                    flush_partial(tracked, &self.out)?;
                    let tracked = self.files.remove(index);
                    tracing::debug!(
                        "{}: released at offset {} (rotated away or deleted, and quiet for {:?})",
                        tracked.info.path.display(),
                        tracked.offset,
                        self.config.rotate_wait
                    );
                    self.out.send(Event::Released {
                        file: tracked.info,
                        offset: tracked.offset,
                    })?;
                    self.publish_status();
                    continue;
                }
            }
            index += 1;
        }
        Ok(more)
    }

    /// Reads every file to its current end, emits unterminated last lines, and ends.
    fn drain_to_end(&mut self) -> Result<(), Stopped> {
        for index in 0..self.files.len() {
            self.check(index, false)?;
            let limit = self.files[index].size;
            self.read_file(index, Some(limit))?;
            flush_partial(&mut self.files[index], &self.out)?;
        }
        Ok(())
    }

    /// Reads one file: up to READS_PER_PASS reads, or up to `limit` bytes when given.
    /// Returns (any bytes read, budget used up with more possibly waiting).
    fn read_file(&mut self, index: usize, limit: Option<u64>) -> Result<(bool, bool), Stopped> {
        let Engine {
            files,
            buf,
            out,
            config,
            ..
        } = self;
        let mut progress = false;
        let mut reads = 0;
        loop {
            // About to block on a full channel: let status() show where reading paused (once
            // per read of read_buffer_bytes at most: cheap next to the read).
            if out.tx.capacity() == 0 {
                publish_status(files, &out.shared);
            }
            let tracked = &mut files[index];
            if out.stopped() {
                return Err(Stopped);
            }
            if limit.is_some_and(|limit| tracked.offset >= limit) {
                return Ok((progress, false));
            }
            if limit.is_none() && reads == READS_PER_PASS {
                return Ok((progress, true));
            }
            reads += 1;
            let read = match tracked.file.read(buf) {
                Ok(0) => return Ok((progress, false)),
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::warn!(
                        "{}: read failed at offset {}: {err}; trying again at the next poll",
                        tracked.info.path.display(),
                        tracked.offset
                    );
                    return Ok((progress, false));
                }
            };
            progress = true;
            tracked.last_progress = Instant::now();
            split_lines(tracked, &buf[..read], config.max_line_bytes, out)?;
        }
    }

    fn publish_status_every(&mut self) {
        if self.last_status.elapsed() >= STATUS_EVERY {
            self.publish_status();
        }
    }

    fn publish_status(&mut self) {
        self.last_status = Instant::now();
        publish_status(&self.files, &self.out.shared);
    }
}

fn publish_status(files: &[Tracked], shared: &Shared) {
    let status = files
        .iter()
        .map(|tracked| FileStatus {
            file: Arc::clone(&tracked.info),
            read_offset: tracked.offset,
            size: tracked.size.max(tracked.offset),
            last_progress: tracked.last_progress,
        })
        .collect();
    if let Ok(mut shared) = shared.status.lock() {
        *shared = status;
    }
}

/// Hands out the complete lines in `data` (the bytes just read at `tracked.offset`), holding
/// back an unterminated last line. The work per read: one memrchr for the last newline, a
/// memchr for the first when a line is held, and the long-line check only when the complete
/// part is longer than a line may be.
fn split_lines(tracked: &mut Tracked, data: &[u8], max_line: usize, out: &Out) -> Result<(), Stopped> {
    let base = tracked.offset;
    tracked.offset += data.len() as u64;
    let mut pos = 0;
    if tracked.skipped.is_some() || !tracked.partial.is_empty() {
        match memchr::memchr(b'\n', data) {
            None => {
                absorb(tracked, data, max_line);
                return Ok(());
            }
            Some(newline) => {
                absorb(tracked, &data[..newline], max_line);
                pos = newline + 1;
                let end = base + pos as u64;
                finish_held_line(tracked, end, &data[..pos], out)?;
            }
        }
    }
    let rest = &data[pos..];
    if let Some(last) = memchr::memrchr(b'\n', rest) {
        emit_complete(tracked, &rest[..=last], base + pos as u64, max_line, out)?;
        pos += last + 1;
    }
    if pos < data.len() {
        absorb(tracked, &data[pos..], max_line);
    }
    Ok(())
}

/// Adds bytes of an unterminated line to the held part, switching to skipping once the line is
/// longer than `max_line` (memory stays bounded by `max_line` whatever the line's length).
fn absorb(tracked: &mut Tracked, bytes: &[u8], max_line: usize) {
    if bytes.is_empty() {
        return;
    }
    if tracked.partial.is_empty() && tracked.skipped.is_none() {
        tracked.partial_since = Some(Instant::now());
    }
    if let Some(skipped) = tracked.skipped.as_mut() {
        *skipped += bytes.len() as u64;
        return;
    }
    let room = max_line - tracked.partial.len().min(max_line);
    if bytes.len() <= room {
        tracked.partial.extend_from_slice(bytes);
    } else {
        tracked.partial.extend_from_slice(&bytes[..room]);
        tracked.skipped = Some((bytes.len() - room) as u64);
        warn_long_line(tracked, tracked.emitted, max_line);
    }
}

fn warn_long_line(tracked: &Tracked, at: u64, max_line: usize) {
    tracing::warn!(
        "{}: the line at offset {at} is longer than {max_line} bytes; keeping its first {max_line} \
         bytes, skipping the rest, and marking it truncated",
        tracked.info.path.display()
    );
}

/// The held line got its newline at file offset `end`; `last_bytes` are the file bytes that
/// end there (for the copy-recognition tail).
fn finish_held_line(tracked: &mut Tracked, end: u64, last_bytes: &[u8], out: &Out) -> Result<(), Stopped> {
    let start = tracked.emitted;
    let mut data = std::mem::take(&mut tracked.partial);
    let cut = tracked.skipped.take().map(|dropped| Cut::Truncated { dropped });
    tracked.tail.clear();
    if cut.is_some() {
        data.extend_from_slice(TRUNCATION_MARKER);
        data.push(b'\n');
        // The line's last bytes, not its kept start: the copy check compares file bytes.
        tracked.remember_tail(last_bytes);
    } else {
        data.push(b'\n');
        tracked.remember_tail(&data);
    }
    tracked.partial_since = None;
    tracked.emitted = end;
    let chunk = Chunk {
        file: Arc::clone(&tracked.info),
        data: Bytes::from(data),
        start,
        end,
        cut,
    };
    out.send(Event::Lines(chunk))
}

/// Hands out `region` (complete lines starting at file offset `start`), cutting lines longer
/// than `max_line`.
fn emit_complete(
    tracked: &mut Tracked,
    region: &[u8],
    start: u64,
    max_line: usize,
    out: &Out,
) -> Result<(), Stopped> {
    // No line can be longer than the whole region: the common case skips the per-line scan.
    if region.len() <= max_line.saturating_add(1) {
        return emit_exact(tracked, region, start, out);
    }
    let mut segment = 0;
    let mut line_start = 0;
    for newline in memchr::memchr_iter(b'\n', region) {
        if newline - line_start > max_line {
            if line_start > segment {
                emit_exact(tracked, &region[segment..line_start], start + segment as u64, out)?;
            }
            let line_offset = start + line_start as u64;
            warn_long_line(tracked, line_offset, max_line);
            let mut line = Vec::with_capacity(max_line + TRUNCATION_MARKER.len() + 1);
            line.extend_from_slice(&region[line_start..line_start + max_line]);
            line.extend_from_slice(TRUNCATION_MARKER);
            line.push(b'\n');
            let end = start + newline as u64 + 1;
            let dropped = (newline - line_start - max_line) as u64;
            tracked.emitted = end;
            tracked.tail.clear();
            tracked.remember_tail(&region[line_start..=newline]);
            let chunk = Chunk {
                file: Arc::clone(&tracked.info),
                data: Bytes::from(line),
                start: line_offset,
                end,
                cut: Some(Cut::Truncated { dropped }),
            };
            out.send(Event::Lines(chunk))?;
            segment = newline + 1;
        }
        line_start = newline + 1;
    }
    if segment < region.len() {
        emit_exact(tracked, &region[segment..], start + segment as u64, out)?;
    }
    Ok(())
}

/// Hands out file bytes `start..start + bytes.len()` as they are: one copy, no per-line work.
fn emit_exact(tracked: &mut Tracked, bytes: &[u8], start: u64, out: &Out) -> Result<(), Stopped> {
    let end = start + bytes.len() as u64;
    tracked.emitted = end;
    tracked.remember_tail(bytes);
    let chunk = Chunk {
        file: Arc::clone(&tracked.info),
        data: Bytes::copy_from_slice(bytes),
        start,
        end,
        cut: None,
    };
    out.send(Event::Lines(chunk))
}

/// Emits a held unterminated line on its own, a newline added (`Cut::Unterminated`), or a held
/// over-long one as `Cut::Truncated`; what follows in the file is a line of its own.
fn flush_partial(tracked: &mut Tracked, out: &Out) -> Result<(), Stopped> {
    if tracked.partial.is_empty() && tracked.skipped.is_none() {
        return Ok(());
    }
    let start = tracked.emitted;
    let end = tracked.offset;
    let mut line = std::mem::take(&mut tracked.partial);
    let cut = if let Some(dropped) = tracked.skipped.take() {
        line.extend_from_slice(TRUNCATION_MARKER);
        // The file bytes before `end` were skipped: no tail to recognise a copy by.
        tracked.tail.clear();
        Cut::Truncated { dropped }
    } else {
        tracked.remember_tail(&line);
        Cut::Unterminated
    };
    line.push(b'\n');
    tracked.partial_since = None;
    tracked.emitted = end;
    let chunk = Chunk {
        file: Arc::clone(&tracked.info),
        data: Bytes::from(line),
        start,
        end,
        cut: Some(cut),
    };
    out.send(Event::Lines(chunk))
}

/// Logs an unreadable path once per reason (not at every rescan).
fn note_unreadable(unreadable: &mut HashMap<PathBuf, String>, path: &Path, err: &io::Error) {
    let reason = describe(err);
    if unreadable.get(path) != Some(&reason) {
        tracing::warn!(
            "cannot read {}: {reason}; following the other files and trying again at each rescan",
            path.display()
        );
        unreadable.insert(path.to_owned(), reason);
    }
}

/// io::Error's text without the "(os error N)" tail.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(index) => text[..index].to_lowercase(),
        None => text,
    }
}

fn same_file(path: &Path, dev: u64, ino: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.dev() == dev && metadata.ino() == ino)
}

/// The first up to FINGERPRINT_BYTES bytes of a file of `size` bytes.
fn read_head(file: &File, size: u64) -> io::Result<Vec<u8>> {
    let want = usize::try_from(size).unwrap_or(usize::MAX).min(FINGERPRINT_BYTES);
    let mut head = vec![0; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// The offset of the last `lines` lines (`tail -n N`), scanning backwards from the end in
/// blocks. An unterminated last line counts as a line.
fn last_lines(file: &File, size: u64, lines: u64, buf: &mut [u8]) -> io::Result<u64> {
    let block = buf.len().min(64 * 1024) as u64;
    let mut end = size;
    let mut remaining = lines;
    // A newline that ends the file ends the last line; it does not start one.
    let mut skip_final_newline = true;
    while end > 0 {
        let start = end.saturating_sub(block);
        let chunk = &mut buf[..usize::try_from(end - start).unwrap_or(0)];
        file.read_exact_at(chunk, start)?;
        let mut slice_end = chunk.len();
        if skip_final_newline {
            skip_final_newline = false;
            if chunk.last() == Some(&b'\n') {
                slice_end -= 1;
            }
        }
        for newline in memchr::memrchr_iter(b'\n', &chunk[..slice_end]) {
            remaining -= 1;
            if remaining == 0 {
                return Ok(start + newline as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// The offset of line `line` counting from 1 (`tail -n +N`); the end when there are fewer.
fn from_line(file: &File, size: u64, line: u64, buf: &mut [u8]) -> io::Result<u64> {
    let mut to_skip = line.saturating_sub(1);
    let mut offset = 0;
    while offset < size && to_skip > 0 {
        let read = file.read_at(buf, offset)?;
        if read == 0 {
            break;
        }
        for newline in memchr::memchr_iter(b'\n', &buf[..read]) {
            to_skip -= 1;
            if to_skip == 0 {
                return Ok(offset + newline as u64 + 1);
            }
        }
        offset += read as u64;
    }
    Ok(if to_skip == 0 { 0 } else { offset.min(size) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        (file, content.len() as u64)
    }

    #[test]
    fn last_lines_counts_from_the_end_across_blocks() {
        let mut content = Vec::new();
        for index in 0..10_000 {
            writeln!(content, "line {index}").unwrap();
        }
        let (file, size) = file_with(&content);
        // A small buffer forces many blocks.
        let mut buf = vec![0; 4096];
        let offset = last_lines(file.as_file(), size, 3, &mut buf).unwrap();
        assert_eq!(
            &content[usize::try_from(offset).unwrap()..],
            b"line 9997\nline 9998\nline 9999\n"
        );
        assert_eq!(last_lines(file.as_file(), size, 20_000, &mut buf).unwrap(), 0);
    }

    #[test]
    fn last_lines_counts_an_unterminated_last_line() {
        let (file, size) = file_with(b"a\nb\nc");
        let mut buf = vec![0; 4096];
        assert_eq!(last_lines(file.as_file(), size, 1, &mut buf).unwrap(), 4);
        assert_eq!(last_lines(file.as_file(), size, 2, &mut buf).unwrap(), 2);
        let (empty, size) = file_with(b"");
        assert_eq!(last_lines(empty.as_file(), size, 5, &mut buf).unwrap(), 0);
    }

    #[test]
    fn from_line_skips_lines_across_blocks() {
        let mut content = Vec::new();
        for index in 1..=5000 {
            writeln!(content, "line {index}").unwrap();
        }
        let (file, size) = file_with(&content);
        let mut buf = vec![0; 4096];
        let offset = from_line(file.as_file(), size, 4999, &mut buf).unwrap();
        assert_eq!(
            &content[usize::try_from(offset).unwrap()..],
            b"line 4999\nline 5000\n"
        );
        assert_eq!(from_line(file.as_file(), size, 1, &mut buf).unwrap(), 0);
        assert_eq!(from_line(file.as_file(), size, 9999, &mut buf).unwrap(), size);
    }

    #[test]
    fn watch_dir_is_the_deepest_literal_directory() {
        assert_eq!(
            Pattern::new(Path::new("/var/log/app/*.log")).unwrap().watch_dir,
            Path::new("/var/log/app")
        );
        assert_eq!(
            Pattern::new(Path::new("/var/log/*/a.log")).unwrap().watch_dir,
            Path::new("/var/log")
        );
        assert_eq!(
            Pattern::new(Path::new("a.log")).unwrap().watch_dir,
            Path::new(".")
        );
        assert!(matches!(
            Pattern::new(Path::new("/var/log/[a.log")),
            Err(FollowError::Pattern { .. })
        ));
    }
}
