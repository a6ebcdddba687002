//! The migration directory, laid out as golang-migrate's: `{version}_{title}.up.{ext}` and
//! `.down.{ext}`, versions as unsigned integers (timestamps work), a version with no down file
//! allowed. Each script is read whole at load time, with its SHA-256 and whether it opts out
//! of the transaction (`-- pitcrew:no-transaction` on its first line).
//! CONTRACT STUB: the bodies are written on branch `migrate-cli`.

use std::path::{Path, PathBuf};

/// One SQL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Where it was read from (for messages: "file:line").
    pub path: PathBuf,
    /// Its whole text.
    pub sql: String,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    /// False when its first line is `-- pitcrew:no-transaction`.
    pub transactional: bool,
}

/// One version: its up script and, when there is one, its down script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The version (the number before the first `_`).
    pub version: u64,
    /// The title (between `_` and `.up`/`.down`).
    pub title: String,
    /// The `.up.` script (golang-migrate allows a version with only a down script; so do we).
    pub up: Option<Script>,
    /// The `.down.` script.
    pub down: Option<Script>,
}

/// Every migration of a directory, in version order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The directory.
    pub dir: PathBuf,
    /// Sorted by version, no duplicates.
    pub migrations: Vec<Migration>,
}

/// Why a directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The directory or a file cannot be read (exit 66).
    #[error("{0}")]
    Unreadable(String),
    /// A file name does not parse, two files share a version and direction, … (exit 78).
    #[error("{0}")]
    Invalid(String),
}

impl Source {
    /// Reads every migration in `dir`.
    pub fn load(dir: &Path) -> Result<Source, SourceError> {
        Err(SourceError::Unreadable(format!(
            "{}: the source is not built yet",
            dir.display()
        )))
    }

    /// The migration with `version`.
    pub fn get(&self, version: u64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }
}
