//! Shutdown on SIGTERM or SIGINT, safe for PID 1.
//!
//! A process that is PID 1 in a container gets no default signal dispositions: unless it
//! installs handlers, SIGTERM is ignored and the kubelet SIGKILLs it after the grace period.
//! [`listen`] installs handlers for both signals (through signal-hook) and hands out
//! [`Shutdown`] values, cheap to clone, whose [`Shutdown::recv`] completes once either signal
//! arrives. A *second* signal ends the process at once with 128 + its number: the first one
//! asked the tool to stop cleanly, and whoever sends another (a person pressing Ctrl-C twice,
//! a kubelet near the end of the grace period) wants it gone now rather than after whatever the
//! tool is still waiting for. Outputs are written atomically (temp file, then rename), so
//! stopping half-way leaves at worst a stray temp file, never a half-written one. Tests use
//! [`Shutdown::manual`] instead of real signals.

use std::io;

use futures_util::StreamExt as _;
use signal_hook::consts::{SIGINT, SIGTERM};
use tokio::sync::watch;

/// Completes when the process is asked to stop. Clone it for every task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    signal: watch::Receiver<Option<i32>>,
}

/// Triggers a [`Shutdown`] by hand (tests, or a tool that decides to stop by itself).
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<Option<i32>>,
}

impl ShutdownTrigger {
    /// Asks every clone of the matching [`Shutdown`] to stop, as if `signal` had arrived.
    pub fn trigger(&self, signal: i32) {
        self.sender.send_replace(Some(signal));
    }
}

impl Shutdown {
    /// A shutdown that only [`ShutdownTrigger::trigger`] completes.
    pub fn manual() -> (ShutdownTrigger, Shutdown) {
        let (sender, signal) = watch::channel(None);
        (ShutdownTrigger { sender }, Shutdown { signal })
    }

    /// Waits for the stop request and returns the signal number (15 for SIGTERM, 2 for
    /// SIGINT). Returns at once if the request already came.
    pub async fn recv(&mut self) -> i32 {
        let signal = self
            .signal
            .wait_for(Option::is_some)
            .await
            .ok()
            .map(|signal| signal.unwrap_or(SIGTERM));
        match signal {
            Some(signal) => signal,
            // The sender is gone: nothing can ask us to stop any more, so never complete.
            None => std::future::pending().await,
        }
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<i32> {
        *self.signal.borrow()
    }
}

/// Installs SIGTERM and SIGINT handlers and returns the [`Shutdown`] they complete.
///
/// Must be called from inside a tokio runtime. Call it first thing, before any work, so a
/// signal that arrives early is not lost.
pub fn listen() -> io::Result<Shutdown> {
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])?;
    let (trigger, shutdown) = Shutdown::manual();
    tokio::spawn(async move {
        if let Some(signal) = signals.next().await {
            trigger.trigger(signal);
        }
        if let Some(signal) = signals.next().await {
            tracing::warn!("{} again while stopping: exiting at once", signal_name(signal));
            std::process::exit(128 + signal);
        }
    });
    Ok(shutdown)
}

/// `SIGTERM` or `SIGINT`, for log lines.
pub fn signal_name(signal: i32) -> &'static str {
    if signal == SIGINT { "SIGINT" } else { "SIGTERM" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_trigger_completes_every_clone_with_the_signal() {
        let (trigger, shutdown) = Shutdown::manual();
        let mut first = shutdown.clone();
        let mut second = shutdown;
        assert_eq!(first.received(), None);
        trigger.trigger(SIGINT);
        assert_eq!(first.recv().await, SIGINT);
        assert_eq!(second.recv().await, SIGINT);
    }

    /// Regression: a second signal did nothing, so a tool stuck in its clean-up ate the whole
    /// grace period. The child is this test binary run again (see `signal_child`), which
    /// ignores the first SIGTERM; the second must end it with 143 at once.
    #[test]
    fn a_second_signal_exits_at_once() {
        use std::io::{BufRead as _, BufReader};
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};

        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "shutdown::tests::signal_child",
                "--nocapture",
                "--ignored",
            ])
            .env("PITCREW_CORE_SIGNAL_CHILD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill = |pid: u32| {
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .unwrap()
                    .success()
            );
        };
        let mut expect = |wanted: &str| loop {
            let line = lines.next().expect("the child ended early").unwrap();
            if line.contains(wanted) {
                break;
            }
        };
        expect("child: listening");
        kill(child.id());
        expect("child: first signal seen, ignoring it");
        let sent = Instant::now();
        kill(child.id());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(143), "{status}");
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "the second SIGTERM did not end the process"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run only as `a_second_signal_exits_at_once`'s child: handles the first SIGTERM by
    /// carrying on (as a tool busy stopping would) and waits for the second.
    #[tokio::test]
    #[ignore = "a helper process for a_second_signal_exits_at_once, not a test of its own"]
    async fn signal_child() {
        if std::env::var_os("PITCREW_CORE_SIGNAL_CHILD").is_none() {
            return;
        }
        let mut shutdown = listen().unwrap();
        println!("child: listening");
        shutdown.recv().await;
        println!("child: first signal seen, ignoring it");
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        println!("child: still alive after 120s");
    }

    #[tokio::test]
    async fn a_real_sigterm_completes_the_shutdown() {
        let mut shutdown = listen().unwrap();
        signal_hook::low_level::raise(SIGTERM).unwrap();
        let signal = tokio::time::timeout(std::time::Duration::from_secs(30), shutdown.recv())
            .await
            .expect("SIGTERM was not delivered within 30s");
        assert_eq!(signal, SIGTERM);
    }
}
