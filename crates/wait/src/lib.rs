//! `pitcrew-wait`: wait until dependencies are ready, then exit 0 or exec a command.
//!
//! Modules: [`target`] parses the URL-form targets, [`probe`] makes one attempt per target kind.

pub mod probe;
pub mod target;
