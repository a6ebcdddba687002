//! The rotation torture test against the real `pitcrew-tail` binary: the generator of
//! pitcrew-testkit's `rotation` module writes, renames, copytruncates, deletes and recreates
//! log files while the binary follows them with a checkpoint, and stops it now and then with
//! SIGTERM or SIGKILL. Every line written must come out on stdout, in order per file, and
//! twice only after a SIGKILL.
//!
//! The long mode is not part of CI:
//! `PITCREW_TORTURE_SECONDS=600 cargo test -p pitcrew-tail --test torture -- --ignored`
//! (`PITCREW_TORTURE_SEED=N` replays a run).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::rotation::{Consumer, Options, Stop, Torture};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-tail");

/// The binary, restarted by the generator, its stdout collected run by run.
struct BinaryConsumer {
    pattern: PathBuf,
    checkpoint: PathBuf,
    dir: PathBuf,
    runs: u32,
    child: Option<Child>,
    /// The current run's stdout file and how far it was read.
    stdout: Option<(PathBuf, u64)>,
    /// Bytes after the last newline read so far.
    partial: Vec<u8>,
}

impl BinaryConsumer {
    fn read_new(&mut self) -> Vec<Vec<u8>> {
        let Some((path, offset)) = &mut self.stdout else {
            return Vec::new();
        };
        let mut file = std::fs::File::open(&*path).unwrap();
        file.seek(SeekFrom::Start(*offset)).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        *offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=last).collect();
        complete[..complete.len() - 1]
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }
}

impl Consumer for BinaryConsumer {
    fn start(&mut self) {
        self.runs += 1;
        let stdout = self.dir.join(format!("stdout-{}", self.runs));
        let stderr = self.dir.join(format!("stderr-{}", self.runs));
        let child = Command::new(BIN)
            .arg("-q")
            .arg("-F")
            .arg(&self.pattern)
            .arg("--checkpoint")
            .arg(&self.checkpoint)
            .args([
                "--rescan-interval=250ms",
                "--sleep-interval=50ms",
                "--rotate-wait=2s",
                // Lines are written whole or split between two back-to-back writes.
                "--partial-line-timeout=1h",
                "--termination-log=/dev/null",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.stdout = Some((stdout, 0));
        self.partial.clear();
    }

    fn stop(&mut self, how: Stop) {
        let mut child = self.child.take().expect("running");
        let signal = match how {
            Stop::Clean => "TERM",
            Stop::Kill => "KILL",
        };
        let _ = Command::new("kill")
            .args(["-s", signal, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "pitcrew-tail did not stop within 60 s of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if how == Stop::Clean {
            let stderr =
                std::fs::read_to_string(self.dir.join(format!("stderr-{}", self.runs))).unwrap_or_default();
            assert_eq!(status.code(), Some(0), "exit after SIGTERM; stderr:\n{stderr}");
        }
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        self.read_new()
    }
}

impl Drop for BinaryConsumer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn torture(default_seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut options = Options::from_env(default_seconds);
    // A process restart and its first scan take longer than the engine's in-process restart.
    options.settle = Duration::from_secs(1);
    let mut torture = Torture::new(&logs, options);
    let mut consumer = BinaryConsumer {
        pattern: torture.pattern(),
        checkpoint: dir.path().join("checkpoint"),
        dir: dir.path().to_owned(),
        runs: 0,
        child: None,
        stdout: None,
        partial: Vec::new(),
    };
    torture.run(&mut consumer);
    assert!(consumer.runs >= 2, "the binary was never restarted");
    eprintln!(
        "{} lines written, {} runs of pitcrew-tail",
        torture.lines_written(),
        consumer.runs
    );
}

#[test]
fn rotation_torture_with_the_binary_short() {
    torture(10);
}

/// The long mode, not part of CI:
/// `PITCREW_TORTURE_SECONDS=600 cargo test -p pitcrew-tail --test torture -- --ignored`
#[test]
#[ignore = "long: run by hand with PITCREW_TORTURE_SECONDS"]
fn rotation_torture_with_the_binary_long() {
    torture(600);
}
