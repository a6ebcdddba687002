//! Shared test helpers: run a follower on a thread that collects its events, wait for
//! conditions with generous deadlines, capture the engine's log lines.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pitcrew_follow::{Cut, Event, FollowConfig, FollowControl, Follower};

/// Long enough for a busy 2-core CI machine; conditions are polled, never slept on.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A config tuned for tests: fast polls and rescans, short rotate wait.
pub fn config(patterns: &[&Path]) -> FollowConfig {
    let mut config = FollowConfig::new(patterns.iter().map(|path| path.to_path_buf()).collect());
    config.poll_interval = Duration::from_millis(50);
    config.rescan_interval = Duration::from_millis(200);
    config.rotate_wait = Duration::from_millis(500);
    config.partial_line_timeout = Duration::from_secs(60);
    config
}

/// A follower whose events are collected by a thread of their own.
pub struct Run {
    pub control: FollowControl,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub ended: Arc<Mutex<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Run {
    pub fn start(config: FollowConfig) -> Run {
        let (mut follower, control) = Follower::start(config).expect("follower starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(false));
        let (sink, done) = (Arc::clone(&events), Arc::clone(&ended));
        let thread = std::thread::spawn(move || {
            while let Some(event) = follower.blocking_next() {
                sink.lock().unwrap().push(event);
            }
            *done.lock().unwrap() = true;
        });
        Run {
            control,
            events,
            ended,
            thread: Some(thread),
        }
    }

    /// Waits until `check` holds for the events so far; panics with them after DEADLINE.
    pub fn wait_for(&self, what: &str, check: impl Fn(&[Event]) -> bool) {
        let start = Instant::now();
        loop {
            if check(&self.events.lock().unwrap()) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; events: {:#?}",
                summary(&self.events.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the text of all lines (from any file) equals `expected`.
    pub fn wait_for_text(&self, expected: &str) {
        self.wait_for(&format!("text {expected:?}"), |events| text(events) == expected);
    }

    /// Waits for the event stream to end.
    pub fn wait_ended(&mut self) {
        let start = Instant::now();
        while !*self.ended.lock().unwrap() {
            assert!(start.elapsed() < DEADLINE, "the event stream did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// All lines' bytes, in order, as text.
pub fn text(events: &[Event]) -> String {
    let mut out = Vec::new();
    for event in events {
        if let Event::Lines(chunk) = event {
            out.extend_from_slice(&chunk.data);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A readable list of the events, for failure messages.
pub fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Lines(chunk) => format!(
                "lines {} {}..{} {:?} {:?}",
                chunk.file.path.display(),
                chunk.start,
                chunk.end,
                chunk.cut,
                String::from_utf8_lossy(&chunk.data[..chunk.data.len().min(200)])
            ),
            Event::Opened { file, offset, reason } => {
                format!(
                    "opened {} #{} at {offset} ({reason})",
                    file.path.display(),
                    file.id
                )
            }
            Event::Truncated { file, at } => format!("truncated {} at {at}", file.path.display()),
            Event::Released { file, offset } => format!("released {} at {offset}", file.path.display()),
        })
        .collect()
}

pub fn opened(events: &[Event]) -> Vec<(PathBuf, u64, &'static str)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Opened { file, offset, reason } => Some((file.path.clone(), *offset, *reason)),
            _ => None,
        })
        .collect()
}

pub fn cuts(events: &[Event]) -> Vec<Cut> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Lines(chunk) => chunk.cut,
            _ => None,
        })
        .collect()
}

pub fn append(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

/// Log lines written by the engine (a global subscriber: the engine logs from its own thread).
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

pub fn wait_for_log(what: &str) {
    let start = Instant::now();
    while !logs().contains(what) {
        assert!(
            start.elapsed() < DEADLINE,
            "no log line containing {what:?}; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
