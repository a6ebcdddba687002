//! pitcrew-follow: the file follower behind `pitcrew-tail` (and, later, `pitcrew-metrics`).
//!
//! It follows paths and globs (`/var/log/app/*.log`), picks up files that appear later, survives
//! every rotation style, tells files apart by device + inode AND a fingerprint of their first
//! bytes, and hands out [`Chunk`]s of complete lines with the file offsets they cover, so a
//! consumer can checkpoint exactly what it has delivered ([`checkpoint`]).
//!
//! # Design
//!
//! One thread ([`Follower::start`]) expands the patterns, opens files, and reads them with one
//! large buffer (`read_buffer_bytes`, 256 KiB): per read it finds the last newline (memrchr),
//! hands out everything before it as one [`Chunk`] (one copy into [`Bytes`], no per-line
//! allocation or work), and holds the unterminated rest. Lines longer than `max_line_bytes` are
//! cut (only looked for when a chunk is longer than a line may be). Chunks go through a bounded
//! channel: when the consumer is slow, reading pauses (backpressure) instead of buffering.
//!
//! **notify** (inotify on Linux) watches the directories of the patterns, non-recursively: a
//! new, renamed or deleted entry triggers a rescan at once, and a write triggers a read. It is
//! only a doorbell: a periodic rescan (`rescan_interval`) and a poll of open files
//! (`poll_interval`) catch whatever it misses (overflowed queues, network file systems, a
//! directory created after start-up), and are all there is when notify cannot start (inotify
//! limits): a warning says so.
//!
//! **linemux** (the design card's other crate) is not used: it yields a `String` per line (an
//! allocation per line, and invalid UTF-8 is an error), knows paths but not file identity or
//! byte offsets (so no checkpoint can say where to resume, and an inode reused after rotation
//! cannot be told from the old file), and handles neither copytruncate nor globs that match new
//! files.
//!
//! # Rotation styles handled (with `follow_names`, `tail -F`)
//!
//! - **rename and create** (logrotate's default): the open descriptor is kept and read to its
//!   end; it is kept `rotate_wait` after its last growth in case the writer still appends, then
//!   [`Event::Released`]. The new file at the path is read from 0. A renamed file that still
//!   matches a pattern (`app.log*`, `app.log` → `app.log.1`) is the same file and is followed on
//!   without re-reading (tracking is by identity, not by name).
//! - **copytruncate**: a file smaller than the offset read, or whose first bytes changed, was
//!   truncated: [`Event::Truncated`], reading restarts at 0. Checked whenever the file changed
//!   size and at every rescan.
//! - **copytruncate with the copy followed** (the copy matches a pattern): the copy is a new file
//!   whose first bytes are the truncated file's. A new file is taken for the copy, and read from
//!   the offset handed out before the truncation instead of from 0, when (1) a followed file was
//!   truncated within the last `rotate_wait + rescan_interval`, (2) the new file starts with the
//!   bytes that file started with, (3) it is at least as long as that offset, and (4) its 64 bytes
//!   before that offset are the ones last handed out. So the lines written between our last read
//!   and the truncation are read from the copy, and nothing is read twice. A new file whose first
//!   bytes equal a followed file's is held back (up to the same window) in case it is a copy
//!   whose source is about to be truncated, and a new empty file is judged when its first bytes
//!   arrive. This is a heuristic: two unrelated files that share their first bytes and the 64
//!   bytes before the offset, one truncated just as the other appears, would be confused.
//! - **delete and recreate**: like rename, the open descriptor is read to its end.
//! - **a symlink whose target changes** (a Kubernetes `..data` swap): the link is stat'ed through;
//!   a different identity behind the name is a rotation. Files are reported under the link's path.
//!
//! With `follow_names` off (`tail -f`), the descriptors opened at start-up are followed, whatever
//! happens to the names (truncation is still noticed). With `once`, every file is read to its
//! current end, unterminated last lines are emitted, and the stream ends.
//!
//! # Identity
//!
//! [`FileKey`] is device + inode + [`Fingerprint`] (FNV-1a 64, stable across builds) of the first
//! up to [`identity::FINGERPRINT_BYTES`] (1024) bytes. Keys match a file as prefixes: a key over
//! `L` bytes matches a file with that device and inode whose first `L` bytes hash to it (see
//! [`identity`]). An inode reused by a new file (different first bytes) and two files with
//! identical first lines (different inodes) are both different files. [`FileInfo::key`] is
//! refreshed as a short file grows (and after a truncation): [`FileInfo::id`] stays the same and
//! later chunks carry the new `FileInfo`; a consumer keys its state by `id` and stores the latest
//! `key` it saw in its checkpoint.
//!
//! # What is guaranteed, and what is not
//!
//! - Chunks of one file come in file order; [`Chunk::end`] is a safe resume point once the
//!   chunk's lines are delivered. Resuming from a checkpoint ([`FollowConfig::resume`]) of
//!   delivered offsets loses nothing and repeats nothing, across rename, delete and copytruncate
//!   (the copy followed) rotations while running, and renames while stopped when the new names
//!   still match.
//! - Invalid UTF-8 is passed through untouched; a line over `max_line_bytes` is cut to that many
//!   bytes plus [`TRUNCATION_MARKER`] (memory stays bounded whatever the line's length).
//! - Not guaranteed: lines written between the last read and a copytruncate are lost unless the
//!   copy is followed (no follower can read what was truncated away); a copy made while nothing
//!   follows (or before the first scan) is read from its start (duplicates, never loss); a file
//!   deleted or renamed out of the patterns while nobody follows it is gone; a rotated file
//!   still written to after `rotate_wait` is let go; order between different files is not
//!   defined.

pub mod checkpoint;
mod engine;
pub mod identity;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use checkpoint::{Checkpoint, CheckpointEntry, CheckpointError};
pub use identity::{FileKey, Fingerprint};

/// Where reading starts in the files found at start-up when there is no checkpoint.
///
/// Files that appear later, and files not in a loaded checkpoint, are always read from their
/// beginning: they are new, and skipping their start would lose lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// From the first byte (`tail -n +1`), the default.
    Beginning,
    /// From the current end (`tail -n 0`).
    End,
    /// The last N lines (`tail -n N`).
    LastLines(u64),
    /// From line N, counting from 1 (`tail -n +N`); `FromLine(1)` is `Beginning`.
    FromLine(u64),
}

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Paths and glob patterns (`*`, `?`, `[…]`); a plain path may not exist yet.
    pub patterns: Vec<PathBuf>,
    /// Where to start in files present at start-up (ignored for files a checkpoint knows).
    pub start: StartAt,
    /// `tail -F` (true): follow names — reopen when a path is replaced, retry missing paths,
    /// pick up new files matching a glob. `tail -f` (false): follow the files opened at
    /// start-up by descriptor only.
    pub follow_names: bool,
    /// Stop after reading every file to its current end once (`tail` without `-f`/`-F`).
    pub once: bool,
    /// How often globs are re-expanded and identities re-checked, as a backstop for missed
    /// notify events (default 1s).
    pub rescan_interval: Duration,
    /// How often open files are checked for growth without a notify event (default 250ms;
    /// the only mechanism when notify cannot be used).
    pub poll_interval: Duration,
    /// How long a rotated-away or deleted file is kept open after its end was read, in case
    /// the writer still appends to it (default 5s).
    pub rotate_wait: Duration,
    /// Longest line kept; longer lines are cut to this many bytes plus [`TRUNCATION_MARKER`]
    /// and the rest up to the newline is skipped (default 1 MiB).
    pub max_line_bytes: usize,
    /// How long an unterminated last line is held waiting for its newline before it is
    /// emitted on its own (default 5s).
    pub partial_line_timeout: Duration,
    /// Read buffer size per read call (default 256 KiB).
    pub read_buffer_bytes: usize,
    /// How many chunks may wait in the channel to the consumer; when it is full, reading
    /// pauses (backpressure). Default 16.
    pub channel_capacity: usize,
    /// Offsets to resume from (a loaded checkpoint). `Some` also means "this is not the first
    /// run": files it does not know start at their beginning whatever `start` says.
    pub resume: Option<Checkpoint>,
}

impl FollowConfig {
    /// Defaults for everything but the patterns.
    pub fn new(patterns: Vec<PathBuf>) -> Self {
        FollowConfig {
            patterns,
            start: StartAt::Beginning,
            follow_names: true,
            once: false,
            rescan_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(250),
            rotate_wait: Duration::from_secs(5),
            max_line_bytes: 1024 * 1024,
            partial_line_timeout: Duration::from_secs(5),
            read_buffer_bytes: 256 * 1024,
            channel_capacity: 16,
            resume: None,
        }
    }
}

/// Whether the follower would follow `path` for `pattern` (a plain path or a glob, matched
/// by the engine's own rules: `*` does not match a leading dot). For keeping a tool's own
/// files — its checkpoint — out of what it follows.
pub fn pattern_matches(pattern: &std::path::Path, path: &std::path::Path) -> bool {
    if pattern == path {
        return true;
    }
    let (Some(pattern), Some(path)) = (pattern.to_str(), path.to_str()) else {
        return false;
    };
    glob::Pattern::new(pattern).is_ok_and(|pattern| pattern.matches_with(path, engine::MATCH_OPTIONS))
}

/// Appended to a line cut at `max_line_bytes` (before its newline).
pub const TRUNCATION_MARKER: &[u8] = b" [pitcrew: line truncated]";

/// One followed file, shared by every chunk read from it.
#[derive(Debug)]
pub struct FileInfo {
    /// A number unique within this run (never reused), cheap to use as a map key.
    pub id: u64,
    /// Identity: device, inode and first-bytes fingerprint.
    pub key: FileKey,
    /// The path it was found under (for symlinks, the link's path as matched).
    pub path: PathBuf,
}

/// Why a [`Chunk`] does not map byte for byte onto the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A line longer than `max_line_bytes`: cut, marker appended, `dropped` bytes skipped.
    Truncated {
        /// Bytes of the line that were skipped.
        dropped: u64,
    },
    /// An unterminated last line emitted after `partial_line_timeout` (or at finish); a
    /// newline was added that is not in the file.
    Unterminated,
}

/// Complete lines read from one file, each ending with `\n`.
///
/// When `cut` is `None`, `data` is exactly the file's bytes `start..end`, so the line ending
/// at `data[i]` ends at file offset `start + i + 1`. When `cut` is `Some`, the chunk holds
/// exactly one line and only `end` is meaningful as an offset.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The file the lines come from.
    pub file: Arc<FileInfo>,
    /// The lines, each ending with `\n`; invalid UTF-8 is passed through untouched.
    pub data: Bytes,
    /// File offset of `data[0]`.
    pub start: u64,
    /// File offset just after the last byte consumed (what a checkpoint may record once
    /// these lines are delivered).
    pub end: u64,
    /// See [`Cut`].
    pub cut: Option<Cut>,
}

/// What the follower reports, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// Complete lines.
    Lines(Chunk),
    /// A file is now followed, starting at `offset`.
    Opened {
        /// The file.
        file: Arc<FileInfo>,
        /// Where reading starts.
        offset: u64,
        /// Why it starts there: "start of file", "end of file", "last 10 lines",
        /// "checkpoint", "new file".
        reason: &'static str,
    },
    /// The file shrank below what was read (copytruncate) or its first bytes changed:
    /// reading restarts at 0. Lines between the last read and the truncation were lost by
    /// whoever truncated, unless the copy is followed too.
    Truncated {
        /// The file.
        file: Arc<FileInfo>,
        /// Offset read so far when it was noticed.
        at: u64,
    },
    /// A file was let go: rotated away, deleted or replaced, and read to its end.
    Released {
        /// The file.
        file: Arc<FileInfo>,
        /// The offset read to.
        offset: u64,
    },
}

/// A snapshot of one followed file, for lag metrics and readiness.
#[derive(Debug, Clone)]
pub struct FileStatus {
    /// The file.
    pub file: Arc<FileInfo>,
    /// Bytes read so far (offset of the next read).
    pub read_offset: u64,
    /// The file's size at the last check.
    pub size: u64,
    /// When `read_offset` last moved (or the file was opened).
    pub last_progress: std::time::Instant,
}

/// Why following could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// A pattern is not a valid glob.
    #[error("{pattern}: not a valid glob pattern: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The follower thread could not be started.
    #[error("cannot start the file follower: {0}")]
    Start(String),
}

/// The receiving end: events in order. Ends (`None`) after [`FollowControl::stop`], after
/// [`FollowControl::finish`] once everything is read, or in `once` mode at the end.
pub struct Follower {
    events: tokio::sync::mpsc::Receiver<Event>,
    /// To wake the engine when it waits for room in the channel.
    shared: Arc<engine::Shared>,
}

/// Controls a running follower; cheap to clone.
#[derive(Clone)]
pub struct FollowControl {
    inner: Arc<engine::Shared>,
}

impl Follower {
    /// Starts following on a thread of its own.
    pub fn start(config: FollowConfig) -> Result<(Follower, FollowControl), FollowError> {
        let (events, inner) = engine::spawn(config)?;
        let follower = Follower {
            events,
            shared: Arc::clone(&inner),
        };
        Ok((follower, FollowControl { inner }))
    }

    /// The next event; `None` when the follower has ended.
    pub async fn next(&mut self) -> Option<Event> {
        let event = self.events.recv().await;
        self.shared.consumed();
        event
    }

    /// The next event if one is waiting, without blocking (for consumers that batch).
    pub fn try_next(&mut self) -> Option<Event> {
        let event = self.events.try_recv().ok();
        if event.is_some() {
            self.shared.consumed();
        }
        event
    }

    /// The next event, blocking the calling thread (for consumers outside an async runtime;
    /// never call it from inside one).
    pub fn blocking_next(&mut self) -> Option<Event> {
        let event = self.events.blocking_recv();
        self.shared.consumed();
        event
    }
}

impl FollowControl {
    /// Stops reading promptly. Unterminated last lines are not emitted (a checkpoint then
    /// resumes before them). The event stream ends after what is already queued.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Rescans, reads every followed file to its current end, emits unterminated last lines,
    /// then ends the event stream (`--exit-on`).
    pub fn finish(&self) {
        self.inner.finish();
    }

    /// The files followed now.
    pub fn status(&self) -> Vec<FileStatus> {
        self.inner.status()
    }
}
