//! The one error type of `pitcrew-render`, and the exit code each variant maps to.
//!
//! Messages name flags, paths, variables and positions, never a value: they go to the log
//! and to the termination log, which `kubectl describe pod` shows to anyone who can read pods.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::FileError;
use pitcrew_core::stop::Stopped;
use pitcrew_template::Problems;

/// Everything that makes `pitcrew-render` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Bad command line: flags that do not fit together, a bad `--set` or `--include` (64).
    #[error("{0}")]
    Usage(String),
    /// Something read cannot be used: a bad dotenv line, an empty secret file (78).
    #[error("{0}")]
    Config(String),
    /// A file operation failed: an input missing or unreadable (66), an output that cannot be
    /// written (74), an input unusable as given, such as a symlink out of the tree (78).
    #[error(transparent)]
    File(#[from] FileError),
    /// Templates have problems: every one of every file (78).
    #[error("{}", summary(.0))]
    Template(Vec<Problems>),
    /// stdout could not be written (74).
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    /// The work could not be done for another reason: no random bytes from the OS, a secret
    /// written by someone else meanwhile (1).
    #[error("{0}")]
    Failure(String),
    /// SIGTERM or SIGINT arrived before the outputs were committed (143 or 130).
    #[error("{0}; nothing was written")]
    Stopped(#[from] Stopped),
}

impl RenderError {
    /// The process exit code for this error, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RenderError::Usage(_) => ExitCode::Usage,
            RenderError::Config(_) | RenderError::Template(_) => ExitCode::Config,
            RenderError::File(err) => err.exit_code(),
            RenderError::Stdout(_) => ExitCode::Io,
            RenderError::Failure(_) => ExitCode::Failure,
            RenderError::Stopped(stopped) => stopped.exit_code(),
        }
    }
}

/// One line for the termination log: how many problems, then each, separated by `; `.
fn summary(files: &[Problems]) -> String {
    let count: usize = files.iter().map(Problems::len).sum();
    let problems: Vec<String> = files
        .iter()
        .flat_map(|problems| problems.iter().map(ToString::to_string))
        .collect();
    format!(
        "{count} template problem{}{}: {}",
        if count == 1 { "" } else { "s" },
        if files.len() > 1 {
            format!(" in {} files", files.len())
        } else {
            String::new()
        },
        problems.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_documented_code() {
        let text = String::new;
        for (error, code) in [
            (RenderError::Usage(text()), 64),
            (RenderError::Config(text()), 78),
            (RenderError::Template(Vec::new()), 78),
            (RenderError::Stdout(std::io::Error::other("x")), 74),
            (RenderError::Failure(text()), 1),
            (RenderError::Stopped(Stopped { signal: 15 }), 143),
            (RenderError::Stopped(Stopped { signal: 2 }), 130),
            (
                RenderError::File(FileError::output("/x", "write", std::io::Error::other("x"))),
                74,
            ),
            (
                RenderError::File(FileError::input("/x", "read", std::io::Error::other("x"))),
                66,
            ),
        ] {
            assert_eq!(error.exit_code().code(), code, "{error:?}");
        }
    }
}
