//! `*.prom` files passed through. IN PROGRESS (issue 13): interface only.

use std::path::PathBuf;

use pitcrew_core::admin::AdminState;

/// The textfile directory, read at each scrape.
#[derive(Debug)]
pub struct TextfileSource {
    _dir: PathBuf,
}

impl TextfileSource {
    /// A source for `dir` (which may not exist yet).
    pub fn new(dir: PathBuf) -> Self {
        TextfileSource { _dir: dir }
    }

    /// Adds the directory's families to what `/metrics` shows.
    pub fn attach(self, _state: &AdminState) {}
}
