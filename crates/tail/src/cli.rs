//! Command-line flags (busybox/GNU `tail` compatible, plus pitcrew's) → [`crate::Config`].
//! (Skeleton: being written.)

use crate::{Config, TailError};

/// The command line.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Logging flags.
    #[command(flatten)]
    pub log: pitcrew_core::logging::LogArgs,

    /// Where the one-line failure reason goes (Kubernetes reads it).
    #[arg(
        long,
        env = "PITCREW_TAIL_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: std::path::PathBuf,
}

impl Args {
    /// Checks the flags and builds the configuration.
    pub fn config(&self) -> Result<Config, TailError> {
        todo!()
    }
}
