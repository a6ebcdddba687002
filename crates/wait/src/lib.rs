//! `pitcrew-wait`: wait until dependencies are ready, then exit 0 or exec a command.
//!
//! The replacement for `until nc -z mysql 3306; do sleep 5; done` in init containers: it
//! checks that services *answer* (PostgreSQL startup, MySQL handshake, Redis PING, HTTP
//! status), times out with a summary, logs why each attempt failed and stops at once on
//! SIGTERM.
//!
//! Modules: [`cli`] (flags → [`Config`]; [`cli::main_with_args`] is the whole program),
//! [`target`] (URL-form targets), [`probe`] (one attempt per target kind), [`runner`]
//! (parallel waiting, backoff, timeout), [`exec`] (handing over to the app's command) and
//! [`error`] (exit codes).

pub mod cli;
pub mod error;
pub mod exec;
pub mod probe;
pub mod runner;
pub mod target;
pub mod tls;

pub use error::WaitError;
pub use runner::{Config, Mode, Readiness, Verbosity, run};
