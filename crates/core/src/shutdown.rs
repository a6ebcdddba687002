//! Shutdown on SIGTERM or SIGINT, safe for PID 1.
//!
//! A process that is PID 1 in a container gets no default signal dispositions: unless it
//! installs handlers, SIGTERM is ignored and the kubelet SIGKILLs it after the grace period.
//! [`listen`] installs handlers for both signals (through signal-hook) and hands out
//! [`Shutdown`] values, cheap to clone, whose [`Shutdown::recv`] completes once either signal
//! arrives. Tests use [`Shutdown::manual`] instead of real signals.

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
        // A second signal while shutting down is deliberately absorbed: the tool is already
        // stopping, and exiting half-way could leave a half-written file.
        while signals.next().await.is_some() {}
    });
    Ok(shutdown)
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
