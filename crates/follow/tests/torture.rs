//! The rotation torture test against the engine, with an in-process consumer that checkpoints
//! what it delivered (the generator and checker live in pitcrew-testkit's `rotation` module, so
//! pitcrew-tail's tests reuse them against the real binary).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew_follow::{Checkpoint, CheckpointEntry, Event, FollowConfig, FollowControl, Follower};
use pitcrew_testkit::rotation::{Consumer, Options, Stop, Torture};

/// Follows the pattern, "delivers" lines into a shared list, and saves a checkpoint of the
/// delivered offsets every `SAVE_EVERY` (so a kill loses what came after the last save).
struct EngineConsumer {
    pattern: PathBuf,
    checkpoint: PathBuf,
    delivered: Arc<Mutex<Vec<Vec<u8>>>>,
    running: Option<Running>,
}

struct Running {
    control: FollowControl,
    killed: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

const SAVE_EVERY: Duration = Duration::from_millis(150);

impl Consumer for EngineConsumer {
    fn start(&mut self) {
        let mut config = FollowConfig::new(vec![self.pattern.clone()]);
        config.poll_interval = Duration::from_millis(50);
        config.rescan_interval = Duration::from_millis(250);
        config.rotate_wait = Duration::from_secs(2);
        // Lines are written whole or split between two back-to-back writes: never time out.
        config.partial_line_timeout = Duration::from_secs(3600);
        config.read_buffer_bytes = 16 * 1024;
        config.channel_capacity = 4;
        config.resume = Checkpoint::load(&self.checkpoint).expect("the checkpoint loads");
        let (follower, control) = Follower::start(config).expect("the follower starts");
        let killed = Arc::new(AtomicBool::new(false));
        let (delivered, checkpoint, kill) = (
            Arc::clone(&self.delivered),
            self.checkpoint.clone(),
            Arc::clone(&killed),
        );
        let thread = std::thread::spawn(move || consume(follower, &delivered, &checkpoint, &kill));
        self.running = Some(Running {
            control,
            killed,
            thread,
        });
    }

    fn stop(&mut self, how: Stop) {
        let running = self.running.take().expect("running");
        if how == Stop::Kill {
            running.killed.store(true, Ordering::SeqCst);
        }
        running.control.stop();
        running.thread.join().expect("the consumer thread");
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.delivered.lock().unwrap())
    }
}

/// The consumer thread: delivers lines, tracks delivered offsets per file, saves them on a
/// timer; a kill returns at once without saving.
fn consume(mut follower: Follower, delivered: &Mutex<Vec<Vec<u8>>>, checkpoint: &Path, kill: &AtomicBool) {
    let mut entries: HashMap<u64, CheckpointEntry> = HashMap::new();
    let mut saved = Instant::now();
    let save = |entries: &HashMap<u64, CheckpointEntry>| {
        let mut list: Vec<_> = entries.values().cloned().collect();
        list.sort_by_key(|entry| (entry.key.dev, entry.key.ino));
        Checkpoint { entries: list }
            .save(checkpoint)
            .expect("the checkpoint saves");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    loop {
        // A timeout, so a quiet follower still gets its checkpoint saved.
        let next = runtime.block_on(async { tokio::time::timeout(SAVE_EVERY, follower.next()).await });
        if kill.load(Ordering::SeqCst) {
            // kill -9: nothing more is delivered or saved.
            return;
        }
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(_) => {
                save(&entries);
                saved = Instant::now();
                continue;
            }
        };
        match event {
            Event::Opened { file, offset, .. } => {
                entries.insert(
                    file.id,
                    CheckpointEntry {
                        key: file.key,
                        path: file.path.clone(),
                        offset,
                    },
                );
            }
            Event::Lines(chunk) => {
                let mut lines = delivered.lock().unwrap();
                lines.extend(
                    chunk
                        .data
                        .split(|byte| *byte == b'\n')
                        .filter(|line| !line.is_empty())
                        .map(<[u8]>::to_vec),
                );
                drop(lines);
                entries.insert(
                    chunk.file.id,
                    CheckpointEntry {
                        key: chunk.file.key,
                        path: chunk.file.path.clone(),
                        offset: chunk.end,
                    },
                );
            }
            Event::Truncated { file, .. } => {
                entries.insert(
                    file.id,
                    CheckpointEntry {
                        key: file.key,
                        path: file.path.clone(),
                        offset: 0,
                    },
                );
            }
            Event::Released { file, .. } => {
                entries.remove(&file.id);
            }
        }
        if saved.elapsed() >= SAVE_EVERY {
            save(&entries);
            saved = Instant::now();
        }
    }
    if !kill.load(Ordering::SeqCst) {
        save(&entries);
    }
}

fn torture(default_seconds: u64) {
    if std::env::var_os("PITCREW_TORTURE_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let options = Options::from_env(default_seconds);
    let mut torture = Torture::new(&logs, options);
    let mut consumer = EngineConsumer {
        pattern: torture.pattern(),
        checkpoint: dir.path().join("checkpoint"),
        delivered: Arc::default(),
        running: None,
    };
    torture.run(&mut consumer);
    assert!(
        torture.lines_written() > 100,
        "the run wrote too little to mean anything"
    );
}

/// The CI mode: a few seconds of random rotations and restarts (`PITCREW_TORTURE_SEED` replays
/// a failure's seed).
#[test]
fn rotation_torture_short() {
    torture(8);
}

/// The long mode, not part of CI:
/// `PITCREW_TORTURE_SECONDS=600 cargo test -p pitcrew-follow --test torture -- --ignored`
#[test]
#[ignore = "long: run by hand with PITCREW_TORTURE_SECONDS"]
fn rotation_torture_long() {
    torture(600);
}
