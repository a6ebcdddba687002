//! SIGTERM and SIGINT during a long render: as PID 1 in a container, pitcrew-render must end
//! promptly with 143 (130) when the pod is deleted, leaving no temporary file and no output.
//!
//! The template is fed to stdin without end, so the render is still running whenever the
//! signal arrives; the test waits until output is visibly being produced before signalling,
//! and gives the exit a generous deadline instead of timing anything tightly.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, leftovers, s};

/// Far longer than a prompt exit needs, short enough to fail a hung process.
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

fn start(args: &[&str], termination: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("V", "value")
        .env("PITCREW_TERMINATION_LOG", termination)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes template text to the child's stdin until the pipe closes (the child exited).
fn feed(child: &mut Child) -> std::thread::JoinHandle<()> {
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let chunk = "line with $V and ${V:-default} and text\n".repeat(1024);
        while stdin.write_all(chunk.as_bytes()).is_ok() {}
    })
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < EXIT_DEADLINE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > EXIT_DEADLINE {
            let _ = child.kill();
            panic!("pitcrew-render did not exit within {EXIT_DEADLINE:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

#[test]
fn sigterm_during_a_large_stdin_render_to_a_file_exits_143_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let termination = dir.path().join("termination-log");
    let mut child = start(&["--out", s(&out.join("app.conf"))], &termination);
    let feeder = feed(&mut child);
    // The render is under way once its temporary file is growing.
    wait_until("the temporary output file grows", || {
        std::fs::read_dir(&out).unwrap().any(|entry| {
            let entry = entry.unwrap();
            entry.file_name().to_string_lossy().contains("pitcrew-tmp")
                && entry.metadata().is_ok_and(|metadata| metadata.len() > 0)
        })
    });
    signal(&child, "TERM");
    let code = wait_exit(&mut child);
    feeder.join().unwrap();
    let stderr = stderr_of(&mut child);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        leftovers(&out).is_empty(),
        "temporary file left: {:?}",
        leftovers(&out)
    );
    assert!(!out.join("app.conf").exists());
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("stopped by SIGTERM"), "{message}");
}

#[test]
fn sigint_during_a_stdout_render_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(&[], &dir.path().join("termination-log"));
    let feeder = feed(&mut child);
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (seen, done) = (Arc::clone(&seen), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                seen.fetch_add(read as u64, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    wait_until("output reaches stdout", || seen.load(Ordering::SeqCst) > 0);
    signal(&child, "INT");
    let code = wait_exit(&mut child);
    feeder.join().unwrap();
    reader.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let stderr = stderr_of(&mut child);
    assert_eq!(code, Some(130), "{stderr}");
}

/// A staged secret and a directory created by the run are removed again: the output tree is
/// exactly as it was before.
#[test]
fn sigterm_before_the_commit_removes_staged_secrets_and_created_directories() {
    let dir = tempfile::tempdir().unwrap();
    // stdin to a file inside an output tree that already has content: that content stays.
    let out = dir.path().join("out");
    common::write(&out.join("existing.conf"), "kept\n");
    let before = common::snapshot(&out);
    let termination = dir.path().join("termination-log");
    let mut child = start(
        &["--out", s(&out.join("new/app.conf")), "--secret", "jwt=hex:16"],
        &termination,
    );
    let feeder = feed(&mut child);
    wait_until("the temporary output file grows", || {
        std::fs::read_dir(out.join("new")).is_ok_and(|mut entries| {
            entries.any(|entry| {
                let entry = entry.unwrap();
                entry.file_name().to_string_lossy().starts_with(".app.conf")
                    && entry.metadata().is_ok_and(|metadata| metadata.len() > 0)
            })
        })
    });
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), Some(143));
    feeder.join().unwrap();
    assert_eq!(
        common::snapshot(&out),
        before,
        "no secret, no directory, no temporary file"
    );
}
