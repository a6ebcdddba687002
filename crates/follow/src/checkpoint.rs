//! The checkpoint file: per file identity, the offset up to which lines were delivered.
//! (Skeleton: being written.)

use std::path::{Path, PathBuf};

use crate::FileKey;

/// One file's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// Who the file is.
    pub key: FileKey,
    /// Its path when last seen (for people reading the file; identity is `key`).
    pub path: PathBuf,
    /// Every line before this offset was delivered.
    pub offset: u64,
}

/// All entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Entries, one per file identity.
    pub entries: Vec<CheckpointEntry>,
}

/// A checkpoint that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Exists but cannot be read (exit 66).
    #[error("{path}: cannot read the checkpoint: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Not a checkpoint this version understands (exit 78); the message says how to recover.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// Cannot be written (exit 74).
    #[error("{path}: cannot write the checkpoint: {reason}")]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Checkpoint {
    /// Loads `path`; `Ok(None)` when it does not exist (first run).
    pub fn load(_path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        todo!()
    }

    /// Writes atomically (temp file + rename), so a crash leaves the old or the new one.
    pub fn save(&self, _path: &Path) -> Result<(), CheckpointError> {
        todo!()
    }
}
