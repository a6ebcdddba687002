//! pitcrew-migrate: applies SQL schema migrations exactly once, even when every replica of a
//! Deployment runs it at the same moment. Compatible with golang-migrate (`migrate/migrate`):
//! its command line, its `{version}_{title}.up.sql`/`.down.sql` layout and its
//! `schema_migrations (version, dirty)` table, so a database can move between the two.
//!
//! Module map: [`source`] (the migration directory: parsing, checksums, `create`), [`db`] (what
//! the engine asks of a database, and the URL forms), [`postgres`] and [`mysql`] (the two
//! drivers), `engine` (up, down, goto, force, version, status over a [`db::Database`]), `cli`
//! (golang-migrate's single-dash flags and pitcrew's own).

pub mod db;
pub mod mysql;
pub mod postgres;
pub mod source;
