//! The async runtime every tool's `main` runs in, and the way it ends.
//!
//! Why this is shared code: ending a tokio runtime by dropping it waits, without limit, for
//! every blocking task still running — and a DNS lookup is one (`getaddrinfo` runs on tokio's
//! blocking pool and cannot be cancelled). With a resolver that never answers, pitcrew-wait
//! exited 124 ten seconds after its 2 s timeout, started the `-- COMMAND` ten seconds late and
//! answered SIGTERM after 8.5 s. [`block_on`] ends the runtime with `shutdown_background`
//! instead: the process exits (or execs) as soon as the tool's work is done, and a lookup
//! still hanging dies with the process.

use std::fmt;
use std::future::Future;

use crate::shutdown::{self, Shutdown};

/// Why the runtime could not start (out of file descriptors or threads, as a rule).
#[derive(Debug)]
pub struct StartError(String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Runs `main` on a single-threaded runtime (a handful of probes or one sidecar loop needs no
/// more, and it keeps memory small) with SIGTERM/SIGINT handlers installed first, then ends
/// the runtime without waiting for blocking tasks (see the module docs).
pub fn block_on<T, F>(main: impl FnOnce(Shutdown) -> F) -> Result<T, StartError>
where
    F: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| StartError(format!("cannot start the async runtime: {err}")))?;
    run_to_end(runtime, main)
}

/// [`block_on`] on `workers` threads (one: the same single-threaded runtime), for a tool whose
/// load may need more than one core (pitcrew-proxy's `--workers`).
#[cfg(feature = "multi-thread")]
pub fn block_on_with_workers<T, F>(workers: usize, main: impl FnOnce(Shutdown) -> F) -> Result<T, StartError>
where
    F: Future<Output = T>,
{
    if workers <= 1 {
        return block_on(main);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|err| {
            StartError(format!(
                "cannot start the async runtime ({workers} workers): {err}"
            ))
        })?;
    run_to_end(runtime, main)
}

fn run_to_end<T, F>(
    runtime: tokio::runtime::Runtime,
    main: impl FnOnce(Shutdown) -> F,
) -> Result<T, StartError>
where
    F: Future<Output = T>,
{
    let result = runtime.block_on(async {
        let shutdown =
            shutdown::listen().map_err(|err| StartError(format!("cannot install signal handlers: {err}")))?;
        Ok(main(shutdown).await)
    });
    runtime.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Regression: the runtime was dropped, which waited for a blocking task (a hung DNS
    /// lookup) to finish before the process could exit or exec.
    #[test]
    fn a_blocking_task_still_running_does_not_hold_up_the_end() {
        let (_keep_open, hang) = std::sync::mpsc::channel::<()>();
        let start = Instant::now();
        let value = block_on(|_shutdown| async move {
            // Stands in for getaddrinfo waiting on a resolver that never answers.
            drop(tokio::task::spawn_blocking(move || {
                let _ = hang.recv_timeout(Duration::from_secs(120));
            }));
            tokio::task::yield_now().await;
            42
        })
        .unwrap();
        assert_eq!(value, 42);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "block_on waited {:?} for a blocking task",
            start.elapsed()
        );
    }
}
