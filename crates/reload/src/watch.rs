//! The event watcher: inotify (through notify) on every watched path *and its parent*, so the
//! loop hears about every way a config changes, and knows when it can no longer hear.
//!
//! What is watched, for each `--watch PATH`:
//!
//! - PATH itself (a directory: its entries; recursively with `--recursive`; a file: writes in
//!   place, through the visible symlink of a ConfigMap key to the payload file it points at).
//!   The kubelet's update is a burst in the volume directory: `..data_tmp` created and renamed
//!   over `..data`, key symlinks added or removed, the old payload directory deleted.
//! - PATH's parent, for what happens *to* PATH: deleted, renamed away, created (a path that did
//!   not exist yet, a directory deleted and recreated), and for a watched ConfigMap key the
//!   `..data` swap beside it.
//!
//! inotify watches inodes, not names: once PATH is deleted and recreated, or a key symlink
//! points into a new payload directory, the old watch sees nothing more. So after every burst
//! [`Watcher::arm`] watches every path again (for a path watched already, on the same inode,
//! inotify only updates the watch). Comparing inode numbers to skip that is not enough: a
//! directory deleted and made again at once often gets the very inode number back, while its
//! watch is gone (tried: the recreated directory went unwatched). Paths that do not exist (and
//! whose parent does not either) are polled by the loop.
//!
//! Events are only a doorbell: the handler (on notify's thread) filters out what does not
//! concern the watched paths (reads, siblings in the parent directory, the sidecar's own
//! outputs) and rings [`Watcher::doorbell`]; what changed is decided by hashing.
//!
//! The watcher is dead ([`Health::Dead`]) when notify's thread has ended, when notify reports
//! an error (the watch limit reached while following a new subdirectory, a failed read of the
//! inotify queue), or when a path that exists cannot be watched (permission denied, the inotify
//! limits). The loop then re-creates it from scratch every poll interval, and `/healthz` fails
//! while it stays dead: a liveness probe restarting the sidecar beats a sidecar that silently
//! stopped noticing changes (kiwigrid/k8s-sidecar #85).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// Whether the watcher can be trusted to report changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every existing path is watched.
    Live,
    /// It cannot report changes, and why.
    Dead(String),
}

/// What the handler on notify's thread shares with the loop.
#[derive(Default)]
struct Shared {
    /// Rung for every relevant event, for errors, and when notify's thread ends.
    doorbell: Notify,
    /// Relevant events since the loop last took the count.
    events: AtomicU64,
    /// The last error notify reported, until the loop takes it.
    error: Mutex<Option<String>>,
}

/// One notify watcher instance (one inotify file descriptor and its thread).
struct Instance {
    watcher: notify::RecommendedWatcher,
    /// Cleared when notify's thread drops the handler, i.e. the thread ended.
    alive: Arc<AtomicBool>,
}

/// Dropped with the handler: notify's thread has ended.
struct AliveGuard {
    alive: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        self.shared.doorbell.notify_one();
    }
}

/// Watches the `--watch` paths; see the module docs.
pub struct Watcher {
    paths: Arc<[PathBuf]>,
    recursive: bool,
    exclude: Arc<[PathBuf]>,
    shared: Arc<Shared>,
    instance: Option<Instance>,
    /// Watched paths that do not exist now (the loop polls them).
    missing: Vec<PathBuf>,
    health: Health,
}

impl Watcher {
    /// Starts watching `paths`. Fails only when no watcher can be created at all (the inotify
    /// instance limit or the open-files limit reached): a path that cannot be watched makes it
    /// [`Health::Dead`] instead, so the sidecar still runs, resyncs, and says so in /healthz.
    pub fn start(paths: &[PathBuf], recursive: bool, exclude: &[PathBuf]) -> Result<Watcher, String> {
        let mut watcher = Watcher {
            paths: paths.into(),
            recursive,
            exclude: exclude.into(),
            shared: Arc::new(Shared::default()),
            instance: None,
            missing: Vec::new(),
            health: Health::Live,
        };
        watcher.instance = Some(watcher.new_instance()?);
        watcher.arm();
        Ok(watcher)
    }

    /// Rung when something may have changed or the watcher may have died; call
    /// [`take_events`](Self::take_events) and [`check`](Self::check) after.
    pub fn doorbell(&self) -> &Notify {
        &self.shared.doorbell
    }

    /// Relevant events since the last call.
    pub fn take_events(&self) -> u64 {
        self.shared.events.swap(0, Ordering::AcqRel)
    }

    /// Whether it can be trusted to report changes.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Watched paths that do not exist now.
    pub fn missing(&self) -> &[PathBuf] {
        &self.missing
    }

    /// Whether the loop should poll: paths are missing, or the watcher is dead.
    pub fn needs_polling(&self) -> bool {
        !self.missing.is_empty() || self.health != Health::Live
    }

    /// Whether notify reported an error or its thread ended since the last look: then the
    /// loop should [`check`](Self::check) at once.
    pub fn troubled(&self) -> bool {
        let error = self
            .shared
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        error
            || self
                .instance
                .as_ref()
                .is_some_and(|instance| !instance.alive.load(Ordering::Acquire))
    }

    /// Re-creates the watcher if its thread ended or notify reported an error, otherwise
    /// watches what changed inode or appeared ([`arm`](Self::arm)). Returns the paths that
    /// appeared since the last look.
    pub fn check(&mut self) -> Vec<PathBuf> {
        let error = self
            .shared
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread_ended = self
            .instance
            .as_ref()
            .is_none_or(|instance| !instance.alive.load(Ordering::Acquire));
        if let Some(error) = &error {
            tracing::warn!("file watcher: {error}; re-creating it");
        } else if thread_ended && self.instance.is_some() {
            tracing::warn!("file watcher: its thread ended; re-creating it");
        }
        if error.is_some() || thread_ended || self.health != Health::Live {
            self.rearm()
        } else {
            self.arm()
        }
    }

    /// Drops the watcher and watches everything again with a new one: after a resync found a
    /// change no event announced, or when it is dead. Returns the paths that appeared.
    pub fn rearm(&mut self) -> Vec<PathBuf> {
        self.instance = None;
        match self.new_instance() {
            Ok(instance) => {
                self.instance = Some(instance);
                self.arm()
            }
            Err(why) => {
                self.set_health(Health::Dead(why));
                Vec::new()
            }
        }
    }

    /// Watches every path (and parent) that exists, again (see the module docs); notes the
    /// paths that do not exist. Returns the paths that appeared.
    pub fn arm(&mut self) -> Vec<PathBuf> {
        let Some(mut instance) = self.instance.take() else {
            return self.rearm();
        };
        let mut failure = None;
        let mut appeared = Vec::new();
        let mut parents_done: Vec<&Path> = Vec::new();
        let paths = Arc::clone(&self.paths);
        for path in paths.iter() {
            let parent = parent(path);
            if !parents_done.contains(&parent) {
                parents_done.push(parent);
                if parent.is_dir()
                    && let Err(why) = watch(&mut instance.watcher, parent, false)
                {
                    failure.get_or_insert(why);
                }
            }
            match std::fs::metadata(path) {
                Ok(metadata) => {
                    if let Some(index) = self.missing.iter().position(|missing| missing == path) {
                        self.missing.swap_remove(index);
                        appeared.push(path.clone());
                    }
                    let recursive = self.recursive && metadata.is_dir();
                    if let Err(why) = watch(&mut instance.watcher, path, recursive) {
                        failure.get_or_insert(why);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    if !self.missing.contains(path) {
                        tracing::info!(
                            path = %path.display(),
                            "waiting for {} to appear (watching {}, and polling)",
                            path.display(),
                            if parent.is_dir() {
                                parent.display().to_string()
                            } else {
                                "nothing: its directory does not exist either".to_owned()
                            }
                        );
                        self.missing.push(path.clone());
                    }
                }
                Err(err) => {
                    failure.get_or_insert(format!(
                        "cannot watch {}: {}",
                        path.display(),
                        pitcrew_core::io_error::describe(&err)
                    ));
                }
            }
        }
        self.instance = Some(instance);
        self.set_health(failure.map_or(Health::Live, Health::Dead));
        appeared
    }

    fn set_health(&mut self, health: Health) {
        if health == self.health {
            return;
        }
        match &health {
            Health::Dead(why) => tracing::error!(
                "file watcher is dead: {why}; /healthz fails until it can watch again (retrying every second)"
            ),
            Health::Live => tracing::info!("file watcher: watching every path again"),
        }
        self.health = health;
    }

    fn new_instance(&self) -> Result<Instance, String> {
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard {
            alive: Arc::clone(&alive),
            shared: Arc::clone(&self.shared),
        };
        let shared = Arc::clone(&self.shared);
        let paths = Arc::clone(&self.paths);
        let exclude = Arc::clone(&self.exclude);
        let handler = move |result: notify::Result<notify::Event>| {
            let _alive = &guard;
            match result {
                Ok(event) => {
                    if is_relevant(&event, &paths, &exclude) {
                        shared.events.fetch_add(1, Ordering::AcqRel);
                        shared.doorbell.notify_one();
                    }
                }
                Err(err) => {
                    *shared.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(describe(&err));
                    shared.doorbell.notify_one();
                }
            }
        };
        let watcher = notify::recommended_watcher(handler)
            .map_err(|err| format!("cannot start the file watcher: {}", describe(&err)))?;
        Ok(Instance { watcher, alive })
    }
}

/// Watches `path` (again).
fn watch(watcher: &mut notify::RecommendedWatcher, path: &Path, recursive: bool) -> Result<(), String> {
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    match watcher.watch(path, mode) {
        // Gone since the look: the event that removed it brings the next look.
        Ok(())
        | Err(notify::Error {
            kind: notify::ErrorKind::PathNotFound,
            ..
        }) => Ok(()),
        Err(err) => Err(format!("cannot watch {}: {}", path.display(), describe(&err))),
    }
}

/// The directory `path` is in (`.` for a bare name, `/` for `/`).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        Some(_) => Path::new("."),
        None => path,
    }
}

/// Whether an event concerns the watched content (see the module docs).
fn is_relevant(event: &notify::Event, paths: &[PathBuf], exclude: &[PathBuf]) -> bool {
    if event.need_rescan() {
        // The kernel's queue overflowed: events were lost, so anything may have changed.
        return true;
    }
    match event.kind {
        // A file written and closed is a change; opening and reading (our own hashing among
        // them) is not.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    event.paths.iter().any(|path| concerns(path, paths, exclude))
}

fn concerns(path: &Path, paths: &[PathBuf], exclude: &[PathBuf]) -> bool {
    if exclude.iter().any(|excluded| excluded == path) {
        return false;
    }
    let name = path.file_name().map(std::ffi::OsStr::as_encoded_bytes);
    if name.is_some_and(|name| name.ends_with(b".pitcrew-tmp")) {
        return false;
    }
    let kubelet_internal = name.is_some_and(|name| name.starts_with(b".."));
    paths.iter().any(|watched| {
        path.starts_with(watched)
            // The `..data` swap beside a watched ConfigMap key.
            || (kubelet_internal && path.parent() == watched.parent())
    })
}

/// notify's errors as short phrases with a hint where one helps.
fn describe(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::Io(io) => {
            let text = pitcrew_core::io_error::describe(io);
            match io.raw_os_error() {
                // EMFILE from inotify_init: the per-user instance limit, or the open-files one.
                Some(24) => format!(
                    "{text} (the inotify instance limit fs.inotify.max_user_instances, or the open-files limit)"
                ),
                _ => text,
            }
        }
        notify::ErrorKind::MaxFilesWatch => {
            "the inotify watch limit is reached (fs.inotify.max_user_watches)".to_owned()
        }
        notify::ErrorKind::PathNotFound => "not found".to_owned(),
        notify::ErrorKind::WatchNotFound => "no such watch".to_owned(),
        notify::ErrorKind::Generic(text) => text.clone(),
        notify::ErrorKind::InvalidConfig(config) => format!("invalid configuration {config:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_testkit::configmap::ConfigMapVolume;
    use std::time::Duration;

    /// Waits (generously) until the watcher has rung for at least one relevant event.
    async fn rung(watcher: &Watcher, what: &str) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = watcher.take_events();
            if events > 0 {
                return events;
            }
            assert!(tokio::time::Instant::now() < deadline, "no event for {what}");
            let _ = tokio::time::timeout(Duration::from_millis(200), watcher.doorbell().notified()).await;
        }
    }

    /// Gives stray events time to arrive, then says how many came.
    async fn quiet(watcher: &Watcher) -> u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        watcher.take_events()
    }

    #[tokio::test]
    async fn the_kubelet_swap_rings_for_a_directory_and_for_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one"), ("b.conf", "two")]);
        let mut watcher = Watcher::start(&[root.clone(), root.join("a.conf")], false, &[]).unwrap();
        assert_eq!(watcher.health(), &Health::Live);
        assert_eq!(quiet(&watcher).await, 0);
        volume.update_texts(&[("a.conf", "1"), ("b.conf", "2")]);
        rung(&watcher, "the ..data swap").await;
        // The key's symlink now leads to a new payload file: watched after the burst.
        assert!(watcher.arm().is_empty());
        quiet(&watcher).await;
        std::fs::write(volume.payload_dir().join("a.conf"), "written in place").unwrap();
        rung(&watcher, "a write in place to the key's current payload file").await;
    }

    #[tokio::test]
    async fn reading_and_the_parents_other_entries_do_not_ring() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.conf"), "x").unwrap();
        let exclude = [root.join("out.conf")];
        let watcher = Watcher::start(std::slice::from_ref(&root), false, &exclude).unwrap();
        for _ in 0..3 {
            std::fs::read(root.join("a.conf")).unwrap();
            std::fs::read_dir(&root).unwrap().for_each(drop);
        }
        std::fs::write(dir.path().join("sibling"), "not watched").unwrap();
        std::fs::write(root.join("out.conf"), "our own output").unwrap();
        std::fs::write(root.join(".x.1-2.pitcrew-tmp"), "a temporary file").unwrap();
        assert_eq!(quiet(&watcher).await, 0);
        std::fs::write(root.join("a.conf"), "y").unwrap();
        rung(&watcher, "a write").await;
    }

    #[tokio::test]
    async fn a_deleted_and_recreated_directory_is_watched_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        std::fs::create_dir(&root).unwrap();
        let mut watcher = Watcher::start(std::slice::from_ref(&root), false, &[]).unwrap();
        std::fs::remove_dir(&root).unwrap();
        rung(&watcher, "the deletion").await;
        assert!(watcher.arm().is_empty());
        assert_eq!(watcher.missing(), std::slice::from_ref(&root));
        assert!(watcher.needs_polling());
        std::fs::create_dir(&root).unwrap();
        rung(&watcher, "the re-creation").await;
        assert_eq!(watcher.arm(), std::slice::from_ref(&root));
        assert!(!watcher.needs_polling());
        quiet(&watcher).await;
        std::fs::write(root.join("new.conf"), "x").unwrap();
        rung(&watcher, "a file in the new directory").await;
    }

    #[tokio::test]
    async fn a_path_whose_directory_does_not_exist_is_polled() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b/config");
        let mut watcher = Watcher::start(std::slice::from_ref(&root), false, &[]).unwrap();
        assert_eq!(watcher.health(), &Health::Live, "missing is not dead");
        assert_eq!(watcher.missing(), std::slice::from_ref(&root));
        std::fs::create_dir_all(&root).unwrap();
        // Nothing watched its parent: only a look finds it.
        assert_eq!(watcher.check(), std::slice::from_ref(&root));
        std::fs::write(root.join("x"), "x").unwrap();
        rung(&watcher, "a file in the directory that appeared").await;
    }

    #[tokio::test]
    async fn recursive_watches_follow_new_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        let watcher = Watcher::start(std::slice::from_ref(&root), true, &[]).unwrap();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        rung(&watcher, "a new subdirectory").await;
        quiet(&watcher).await;
        std::fs::write(root.join("sub/deeper/x"), "x").unwrap();
        rung(&watcher, "a file two levels down").await;
    }

    #[test]
    fn relevance() {
        let watched = [PathBuf::from("/etc/config"), PathBuf::from("/etc/keys/a.conf")];
        let exclude = [PathBuf::from("/etc/config/out.conf")];
        let yes = |path: &str| concerns(Path::new(path), &watched, &exclude);
        assert!(yes("/etc/config"));
        assert!(yes("/etc/config/..data"));
        assert!(yes("/etc/config/x/y"));
        assert!(yes("/etc/keys/a.conf"));
        assert!(yes("/etc/keys/..data"), "the swap beside a watched key");
        assert!(yes("/etc/keys/..2026_01_01_00_00_00.1"));
        assert!(!yes("/etc/keys/b.conf"), "another key of the same volume");
        assert!(!yes("/etc/hostname"));
        assert!(!yes("/etc/configuration"), "a prefix of the name is not the path");
        assert!(!yes("/etc/config/out.conf"));
        assert!(!yes("/etc/config/.out.conf.7-1.pitcrew-tmp"));
        let open = notify::Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any)))
            .add_path(PathBuf::from("/etc/config/x"));
        assert!(!is_relevant(&open, &watched, &exclude));
        let closed = notify::Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
            .add_path(PathBuf::from("/etc/config/x"));
        assert!(is_relevant(&closed, &watched, &exclude));
        let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(is_relevant(&overflow, &watched, &exclude));
    }
}
