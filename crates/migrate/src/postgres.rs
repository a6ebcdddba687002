//! The PostgreSQL driver. CONTRACT STUB: the bodies are written on branch `migrate-postgres`; the
//! signatures are what [`crate::db::Database`] calls.

// The stub awaits nothing; remove this with the real bodies.
#![allow(clippy::unused_async)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::db::{ConnectOptions, DatabaseUrl, DbError, State, Step};

/// A connection to PostgreSQL.
pub struct Postgres {
    _private: (),
}

/// Cancels the running statement from another task.
#[derive(Clone)]
pub struct Canceller {
    _private: (),
}

impl Canceller {
    /// Asks the server to cancel the running statement (best effort; failures are logged).
    pub async fn cancel(&self) {}
}

fn not_built() -> DbError {
    DbError::Other("the PostgreSQL driver is not built yet".into())
}

impl Postgres {
    /// Connects once.
    pub async fn connect(_url: &DatabaseUrl, _options: &ConnectOptions) -> Result<Postgres, DbError> {
        Err(not_built())
    }

    /// Takes the advisory lock, waiting at most `timeout`.
    pub async fn lock(&mut self, _timeout: Duration) -> Result<(), DbError> {
        Err(not_built())
    }

    /// Releases the advisory lock.
    pub async fn unlock(&mut self) -> Result<(), DbError> {
        Err(not_built())
    }

    /// Creates the state table and the checksum side table when missing.
    pub async fn ensure_tables(&mut self) -> Result<(), DbError> {
        Err(not_built())
    }

    /// The state table's row.
    pub async fn state(&mut self) -> Result<Option<State>, DbError> {
        Err(not_built())
    }

    /// The recorded checksums.
    pub async fn checksums(&mut self) -> Result<BTreeMap<u64, String>, DbError> {
        Err(not_built())
    }

    /// Applies one script with its state update.
    pub async fn apply(&mut self, _step: &Step<'_>) -> Result<(), DbError> {
        Err(not_built())
    }

    /// Sets the state to `version`, clean.
    pub async fn force(&mut self, _version: Option<u64>) -> Result<(), DbError> {
        Err(not_built())
    }

    /// A handle that cancels the running statement.
    pub fn canceller(&self) -> Canceller {
        Canceller { _private: () }
    }
}
