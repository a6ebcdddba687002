//! Unpacking a verified archive (tar, tar.gz, tar.zst, zip) into a directory, refusing any entry
//! that would land outside it. CONTRACT STUB: the bodies are written on branch `fetch-extract`.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::{FileError, Mode, Owner};

/// An archive format `--extract` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Uncompressed tar.
    Tar,
    /// gzip-compressed tar (`.tar.gz`, `.tgz`).
    TarGz,
    /// zstd-compressed tar (`.tar.zst`).
    TarZst,
    /// zip.
    Zip,
}

impl Format {
    /// The format the first bytes of a file show (magic numbers), if any.
    pub fn sniff(_head: &[u8]) -> Option<Format> {
        None
    }

    /// The name `--extract` takes for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Err(format!("invalid archive format {value:?}"))
    }
}

/// What is applied to what extraction writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Mode for files (`--mode`); directories get it plus search bits where read is set.
    pub mode: Option<Mode>,
    /// Owner for everything written (`--owner`, needs root or CAP_CHOWN).
    pub owner: Option<Owner>,
}

/// What was extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symbolic and hard links made.
    pub links: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Why an archive was not extracted. Nothing of it is left in the destination.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry would escape the destination or is of a refused kind.
    #[error("refused archive entry {entry:?}: {why}")]
    Unsafe {
        /// The entry's name as stored in the archive (printable).
        entry: String,
        /// Why it was refused.
        why: String,
    },
    /// The archive is not a valid archive of its format.
    #[error("corrupt {format} archive: {why}")]
    Corrupt {
        /// The format it was read as.
        format: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Writing to the destination failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// Stopped by a signal before it finished.
    #[error("stopped before extraction finished")]
    Stopped,
}

impl ExtractError {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ExtractError::Unsafe { .. } | ExtractError::Corrupt { .. } | ExtractError::Stopped => {
                ExitCode::Failure
            }
            ExtractError::File(err) => err.exit_code(),
        }
    }
}

/// Extracts `archive` (already downloaded and verified) read as `format` into `destination`,
/// checking `stop` between entries.
pub fn extract(
    _archive: &Path,
    format: Format,
    _destination: &Path,
    _options: &ExtractOptions,
    _stop: &AtomicBool,
) -> Result<Extracted, ExtractError> {
    Err(ExtractError::Corrupt {
        format: format.as_str(),
        why: "extraction is not built yet".into(),
    })
}
