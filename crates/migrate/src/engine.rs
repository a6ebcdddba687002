//! The commands over a [`Database`]: connect (retrying what waiting can fix, within
//! `--wait-timeout`), take the advisory lock (within `--lock-timeout`), make sure the tables
//! exist, read the state *after* the lock (a pod that waited for another applies nothing that
//! one applied), deal with a dirty state, compare the applied files' checksums, then plan and
//! apply. Every path out of the locked part unlocks.
//!
//! The decisions are pure functions, tested without a database: [`plan`] (source + state +
//! command → steps, or why not), [`audit`] (changed files, files below the current version that
//! were never applied), [`resolve_dirty`] (the `--on-dirty` policy) and [`status_report`].
//!
//! SIGTERM during a migration: the running `apply` is raced against the shutdown future; on a
//! signal the statement is cancelled through the [`crate::db::Canceller`] (a PostgreSQL cancel
//! request, MySQL's `KILL QUERY`), `apply` is awaited until it returns (rolled back on
//! PostgreSQL), the lock is released and the run ends with 143 (130 for SIGINT).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use pitcrew_core::backoff::Backoff;
use pitcrew_core::duration::display as human;
use pitcrew_core::shutdown::{Shutdown, signal_name};
use tokio::time::Instant;

use crate::MigrateError;
use crate::db::{ConnectOptions, Database, DatabaseUrl, DbError, Direction, State, Step};
use crate::source::{Migration, Script, Source};

/// What to do with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `up [N]`: every pending migration, or the next N.
    Up(Option<u64>),
    /// `down N` / `down -all`.
    Down(DownLimit),
    /// `goto V`.
    Goto(u64),
    /// `version`: print the state.
    Version,
    /// `force V` (`None`: -1, the nil version).
    Force(Option<u64>),
    /// `status`: applied, pending, dirty, changed, never applied.
    Status,
}

impl Action {
    /// Whether the command needs the migration files.
    pub fn needs_source(self) -> bool {
        matches!(
            self,
            Action::Up(_) | Action::Down(_) | Action::Goto(_) | Action::Status
        )
    }
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownLimit {
    /// The last N.
    Steps(u64),
    /// Everything (`down -all`), back to the nil version.
    All,
}

/// `--on-dirty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnDirty {
    /// Stop with an error naming the version, the file and the `force` command (default).
    Fail,
    /// Force the version before the dirty one and carry on, so `up` retries the failed file.
    ForcePrevious,
}

/// The engine's settings (from the flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--lock-timeout`.
    pub lock_timeout: Duration,
    /// `--wait-timeout` (zero: one attempt).
    pub wait_timeout: Duration,
    /// `--on-dirty`.
    pub on_dirty: OnDirty,
    /// `--allow-changed`.
    pub allow_changed: bool,
    /// `--allow-gaps`.
    pub allow_gaps: bool,
    /// The URL as logs show it (password hidden).
    pub url_shown: String,
    /// The command line to print before `force V` in messages:
    /// `pitcrew-migrate -path=/migrations -database='postgres://app:***@db/app'`.
    pub force_hint: String,
}

/// The plan for `up`, `down` or `goto`.
#[derive(Debug)]
pub struct Planned<'a> {
    /// The scripts to apply, in order.
    pub steps: Vec<Step<'a>>,
    /// Something to say although nothing is wrong (the database is ahead of the files).
    pub note: Option<String>,
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Where the current version sits in the source.
enum Position {
    /// The nil version: before the first file.
    Start,
    /// At `migrations[i]`.
    At(usize),
    /// Above the newest file (an older image after a newer one migrated).
    Ahead(u64),
}

fn position(source: &Source, current: Option<u64>) -> Result<Position, MigrateError> {
    let Some(version) = current else {
        return Ok(Position::Start);
    };
    if let Some(index) = source.index_of(version) {
        return Ok(Position::At(index));
    }
    match source.migrations.last() {
        Some(last) if last.version > version => Err(MigrateError::Invalid(format!(
            "the database is at version {version}, which has no file in {}: was it renamed or removed? Restore it, or run `force` with a version that has one",
            source.dir.display()
        ))),
        _ => Ok(Position::Ahead(version)),
    }
}

fn up_step(migration: &Migration) -> Result<Step<'_>, MigrateError> {
    let script = migration.up.as_ref().ok_or_else(|| {
        let down = migration
            .down
            .as_ref()
            .map_or_else(String::new, |s| format!(" ({} only)", file_name(&s.path)));
        MigrateError::Invalid(format!(
            "version {} has no up file{down}; expected {}_{}.up.sql",
            migration.version, migration.version, migration.title
        ))
    })?;
    Ok(Step {
        version: migration.version,
        direction: Direction::Up,
        script,
        version_after: Some(migration.version),
    })
}

fn down_step(source: &Source, index: usize) -> Result<Step<'_>, MigrateError> {
    let migration = &source.migrations[index];
    let script: &Script = migration.down.as_ref().ok_or_else(|| {
        MigrateError::Invalid(format!(
            "version {} ({}) has no down file, so it cannot be rolled back (golang-migrate would move the version without undoing anything); expected {}_{}.down.sql",
            migration.version,
            migration.up.as_ref().map_or_else(String::new, |s| file_name(&s.path)),
            migration.version,
            migration.title
        ))
    })?;
    Ok(Step {
        version: migration.version,
        direction: Direction::Down,
        script,
        version_after: index.checked_sub(1).map(|i| source.migrations[i].version),
    })
}

/// Versions at or above this are timestamps (`20240131120000`, Unix seconds), where gaps are
/// the rule; below it, sequence numbers (`create -seq`: 000001, 000002…), where a gap usually
/// means a file that did not make it into the image or the ConfigMap.
const SEQUENCE_LIMIT: u64 = 10_000_000;

/// The missing numbers of a directory numbered in steps of one (mostly), as a message, or
/// `None` when the versions follow each other, step by more on purpose (10, 20, 30) or are
/// timestamps. Starting above 1 is no gap: old files may have been squashed away.
pub fn sequence_gaps(source: &Source) -> Option<String> {
    let versions: Vec<u64> = source.migrations.iter().map(|m| m.version).collect();
    if versions.last().is_none_or(|&last| last >= SEQUENCE_LIMIT) {
        return None;
    }
    // Numbered in steps of one, mostly: a directory numbered 10, 20, 30 means its gaps.
    let (ones, jumps) = versions.windows(2).fold((0, 0), |(ones, jumps), pair| {
        if pair[1] - pair[0] == 1 {
            (ones + 1, jumps)
        } else {
            (ones, jumps + 1)
        }
    });
    if ones < jumps {
        return None;
    }
    let mut missing = Vec::new();
    for pair in versions.windows(2) {
        let (low, high) = (pair[0], pair[1]);
        if high - low == 2 {
            missing.push((low + 1).to_string());
        } else if high - low > 2 {
            missing.push(format!("{} to {}", low + 1, high - 1));
        }
    }
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "the migrations in {} are numbered in sequence but skip {}: a file missing from the image or the ConfigMap? \
         Nothing was applied (--allow-gaps goes on when the gap is meant)",
        source.dir.display(),
        missing.join(", ")
    ))
}

/// The steps `action` (up, down or goto) takes from `current`. Checks everything before the
/// first step, so a plan that cannot finish does not start: every script it needs exists,
/// `down N` has N versions to roll back, `goto V` names a file.
pub fn plan(source: &Source, current: Option<u64>, action: Action) -> Result<Planned<'_>, MigrateError> {
    let position = position(source, current)?;
    let mut steps = Vec::new();
    let mut note = None;
    match (action, position) {
        (Action::Up(_), Position::Ahead(version)) => {
            note = Some(format!(
                "the database is at version {version}, newer than the newest file in {} ({}): nothing to apply (an older image after a newer one migrated?)",
                source.dir.display(),
                source
                    .migrations
                    .last()
                    .map_or_else(|| "none".to_owned(), |m| m.version.to_string())
            ));
        }
        (Action::Up(limit), position) => {
            let start = match position {
                Position::At(index) => index + 1,
                _ => 0,
            };
            let pending = &source.migrations[start..];
            let count = limit.map_or(pending.len(), |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(pending.len())
            });
            if let Some(n) = limit
                && (pending.len() as u64) < n
            {
                note = Some(format!("up {n}: only {} pending", pending.len()));
            }
            for migration in &pending[..count] {
                steps.push(up_step(migration)?);
            }
        }
        (Action::Down(_) | Action::Goto(_), Position::Ahead(version)) => {
            return Err(MigrateError::Invalid(format!(
                "the database is at version {version}, newer than every file in {}: cannot move from a version this directory does not have",
                source.dir.display()
            )));
        }
        (Action::Down(limit), position) => {
            let applied = match position {
                Position::At(index) => index + 1,
                _ => 0,
            };
            let count = match limit {
                DownLimit::All => applied,
                DownLimit::Steps(n) => {
                    if (applied as u64) < n {
                        return Err(MigrateError::Usage(format!(
                            "down {n}: only {applied} migration{} applied (the database is at version {}); nothing was rolled back",
                            if applied == 1 { " is" } else { "s are" },
                            current.map_or_else(|| "none".to_owned(), |v| v.to_string())
                        )));
                    }
                    usize::try_from(n).unwrap_or(usize::MAX)
                }
            };
            for index in (applied - count..applied).rev() {
                steps.push(down_step(source, index)?);
            }
        }
        (Action::Goto(target), position) => {
            let Some(target_index) = source.index_of(target) else {
                return Err(MigrateError::Usage(format!(
                    "goto {target}: no migration file has version {target} in {}",
                    source.dir.display()
                )));
            };
            match position {
                Position::At(index) if index > target_index => {
                    for index in (target_index + 1..=index).rev() {
                        steps.push(down_step(source, index)?);
                    }
                }
                Position::At(index) if index == target_index => {}
                other => {
                    let start = match other {
                        Position::At(index) => index + 1,
                        _ => 0,
                    };
                    for migration in &source.migrations[start..=target_index] {
                        steps.push(up_step(migration)?);
                    }
                }
            }
        }
        (Action::Version | Action::Force(_) | Action::Status, _) => {}
    }
    Ok(Planned { steps, note })
}

/// What the checksums say about the applied files.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Applied files whose SHA-256 differs from the one recorded: `(version, file, recorded, now)`.
    pub changed: Vec<(u64, String, String, String)>,
    /// Files below the current version never applied: no checksum recorded although a lower
    /// version has one (so pitcrew-migrate was recording when this one's turn came).
    pub never_applied: Vec<(u64, String)>,
    /// Applied versions with no checksum, and none recorded below them: applied before
    /// pitcrew-migrate recorded checksums (golang-migrate, or an older run); not verifiable.
    pub unverified: Vec<u64>,
    /// Recorded versions that have no file in the directory.
    pub missing: Vec<u64>,
}

impl Audit {
    /// Whether `up` should stop (without `--allow-changed`).
    pub fn blocks(&self) -> bool {
        !self.changed.is_empty() || !self.never_applied.is_empty()
    }

    /// One message naming every changed and never-applied file.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (version, file, recorded, now) in &self.changed {
            parts.push(format!(
                "{file} (version {version}) changed since it was applied: sha256 recorded {}…, now {}…",
                &recorded[..recorded.len().min(12)],
                &now[..now.len().min(12)]
            ));
        }
        for (version, file) in &self.never_applied {
            parts.push(format!(
                "{file} (version {version}) is below the database's version but was never applied; give it a version above the current one"
            ));
        }
        parts.join("; ")
    }
}

/// Compares the files with the recorded checksums, for the state at `current`.
///
/// A file below the current version that was never applied can only be told apart from one
/// applied before checksums were recorded when a lower version has a checksum: golang-migrate
/// keeps none, so for a database it migrated alone every such file is "unverified".
pub fn audit(source: &Source, current: Option<u64>, checksums: &BTreeMap<u64, String>) -> Audit {
    let mut result = Audit::default();
    let Some(current) = current else {
        return result;
    };
    for migration in source.migrations.iter().take_while(|m| m.version <= current) {
        let Some(up) = &migration.up else { continue };
        match checksums.get(&migration.version) {
            Some(recorded) if !recorded.eq_ignore_ascii_case(&up.sha256) => result.changed.push((
                migration.version,
                file_name(&up.path),
                recorded.clone(),
                up.sha256.clone(),
            )),
            Some(_) => {}
            None => {
                let recorded_below = checksums.range(..migration.version).next().is_some();
                if recorded_below && migration.version < current {
                    result
                        .never_applied
                        .push((migration.version, file_name(&up.path)));
                } else {
                    result.unverified.push(migration.version);
                }
            }
        }
    }
    result.missing = checksums
        .keys()
        .copied()
        .filter(|version| *version <= current && source.get(*version).is_none())
        .collect();
    result
}

/// The dirty-state policy for `up` and `goto`: the version to force before going on, or the
/// error that names the version, the file and the exact `force` command.
pub fn resolve_dirty(
    source: Option<&Source>,
    state: State,
    policy: OnDirty,
    force_hint: &str,
) -> Result<Option<u64>, MigrateError> {
    let version = state.version;
    let migration = source.and_then(|s| s.get(version));
    let previous = source.and_then(|s| s.get(version).map(|_| s.previous(version)));
    let file = migration
        .and_then(|m| m.up.as_ref())
        .map_or_else(|| format!("version {version}'s up file"), |s| file_name(&s.path));
    let previous_arg = |previous: Option<u64>| previous.map_or_else(|| "-1".to_owned(), |v| v.to_string());
    match (policy, previous) {
        (OnDirty::ForcePrevious, Some(previous)) => Ok(previous),
        (OnDirty::ForcePrevious, None) => Err(MigrateError::Dirty(format!(
            "the database is dirty at version {version}, which has no file in the directory, so the previous version is unknown; repair by hand, then run `{force_hint} force V`"
        ))),
        (OnDirty::Fail, previous) => {
            let force_previous =
                previous.map_or_else(|| "force V".to_owned(), |p| format!("force {}", previous_arg(p)));
            Err(MigrateError::Dirty(format!(
                "the database is dirty at version {version}: {file} failed or was interrupted part-way (or a down migration to {version} did). Check what it changed and repair by hand, then run `{force_hint} {force_previous}` so the next up retries it (or `force {version}` if you completed it by hand); --on-dirty force-previous does the former automatically"
            )))
        }
    }
}

/// The `status` report: one line per file and per recorded version without one.
pub fn status_report(
    source: &Source,
    state: Option<State>,
    checksums: &BTreeMap<u64, String>,
    header: &str,
) -> String {
    let current = state.map(|s| s.version);
    let audit = audit(source, current, checksums);
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    match state {
        Some(State { version, dirty: true }) => {
            let _ = writeln!(
                out,
                "version: {version} (DIRTY: a migration failed or was interrupted part-way)"
            );
        }
        Some(State {
            version,
            dirty: false,
        }) => {
            let _ = writeln!(out, "version: {version}");
        }
        None => {
            let _ = writeln!(out, "version: none (nothing applied)");
        }
    }
    let width = source
        .migrations
        .iter()
        .map(|m| m.version.to_string().len())
        .chain(audit.missing.iter().map(|v| v.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(7);
    let _ = writeln!(out, "{:>width$}  {:<14}  FILE", "VERSION", "STATE");
    let mut pending = 0;
    let mut rows: Vec<(u64, String, String)> = Vec::new();
    for migration in &source.migrations {
        let file = migration
            .up
            .as_ref()
            .or(migration.down.as_ref())
            .map_or_else(String::new, |s| file_name(&s.path));
        let applied = current.is_some_and(|c| migration.version <= c);
        let mut state_word = if !applied {
            pending += 1;
            "pending".to_owned()
        } else if audit.never_applied.iter().any(|(v, _)| *v == migration.version) {
            "NEVER APPLIED".to_owned()
        } else if current == Some(migration.version) && state.is_some_and(|s| s.dirty) {
            "DIRTY".to_owned()
        } else {
            "applied".to_owned()
        };
        let mut detail = String::new();
        if let Some((_, _, recorded, now)) = audit.changed.iter().find(|(v, ..)| *v == migration.version) {
            "CHANGED".clone_into(&mut state_word);
            let _ = write!(
                detail,
                "  (sha256 recorded {}…, file now {}…)",
                &recorded[..recorded.len().min(12)],
                &now[..now.len().min(12)]
            );
        } else if audit.unverified.contains(&migration.version) {
            detail.push_str("  (no checksum recorded: applied before pitcrew-migrate kept them)");
        }
        if state_word == "NEVER APPLIED" {
            detail.push_str("  (below the current version: up skips it; give it a higher version)");
        }
        rows.push((migration.version, state_word, format!("{file}{detail}")));
    }
    for version in &audit.missing {
        rows.push((
            *version,
            "applied".to_owned(),
            "(no file: applied from a file no longer in the directory)".to_owned(),
        ));
    }
    rows.sort_by_key(|row| row.0);
    for (version, state_word, file) in rows {
        let _ = writeln!(out, "{version:>width$}  {state_word:<14}  {file}");
    }
    let _ = writeln!(
        out,
        "{pending} pending, {} changed, {} never applied",
        audit.changed.len(),
        audit.never_applied.len()
    );
    out
}

/// Runs `fut` unless a signal comes first.
async fn interruptible<T>(
    fut: impl Future<Output = Result<T, DbError>>,
    shutdown: &mut Shutdown,
    doing: &str,
) -> Result<T, MigrateError> {
    tokio::select! {
        result = fut => result.map_err(MigrateError::Db),
        signal = shutdown.recv() => Err(MigrateError::Stopped {
            signal,
            summary: format!("{} while {doing}: stopped", signal_name(signal)),
        }),
    }
}

/// Connects, retrying [`DbError::is_retryable`] failures with backoff within `--wait-timeout`,
/// logging each attempt's reason.
pub async fn connect(
    url: &DatabaseUrl,
    options: &ConnectOptions,
    settings: &Settings,
    shutdown: &mut Shutdown,
) -> Result<Database, MigrateError> {
    let start = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempt = 0_u32;
    loop {
        attempt += 1;
        let remaining = settings.wait_timeout.saturating_sub(start.elapsed());
        // One attempt never outlives the wait (but gets a second at least).
        let limit = options.connect_timeout.min(remaining.max(Duration::from_secs(1)));
        let try_once = async {
            match tokio::time::timeout(limit, Database::connect(url, options)).await {
                Ok(result) => result,
                Err(_) => Err(DbError::Unavailable(format!("no answer within {}", human(limit)))),
            }
        };
        let error = match interruptible(try_once, shutdown, "connecting").await {
            Ok(db) => {
                if attempt > 1 {
                    tracing::info!(
                        "{}: connected at attempt {attempt}, after {}",
                        settings.url_shown,
                        human(start.elapsed())
                    );
                }
                return Ok(db);
            }
            Err(MigrateError::Db(err)) => err,
            Err(other) => return Err(other),
        };
        if !error.is_retryable() {
            return Err(MigrateError::Db(error));
        }
        if settings.wait_timeout.is_zero() {
            return Err(MigrateError::Db(DbError::Unavailable(format!(
                "{}: {error} (not retried: --wait-timeout is 0)",
                settings.url_shown
            ))));
        }
        let elapsed = start.elapsed();
        let delay = backoff.next_delay(elapsed);
        if elapsed + delay >= settings.wait_timeout {
            return Err(MigrateError::WaitTimeout(format!(
                "{}: still unavailable after {} (--wait-timeout), {attempt} attempts; last: {error}",
                settings.url_shown,
                human(elapsed)
            )));
        }
        tracing::warn!(
            "attempt {attempt}: {}: {error}; retrying in {}",
            settings.url_shown,
            human(delay)
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            signal = shutdown.recv() => return Err(MigrateError::Stopped {
                signal,
                summary: format!("{} while waiting for the database: stopped", signal_name(signal)),
            }),
        }
    }
}

/// Connects, locks, runs `action` and unlocks. Returns what to print on stdout.
pub async fn execute(
    source: Option<&Source>,
    url: &DatabaseUrl,
    options: &ConnectOptions,
    action: Action,
    settings: &Settings,
    mut shutdown: Shutdown,
) -> Result<Option<String>, MigrateError> {
    let mut db = connect(url, options, settings, &mut shutdown).await?;
    let waited = Instant::now();
    interruptible(
        db.lock(settings.lock_timeout),
        &mut shutdown,
        "waiting for the migration lock",
    )
    .await
    .map_err(|err| match err {
        MigrateError::Db(DbError::LockTimeout(message)) => MigrateError::Db(DbError::LockTimeout(format!(
            "{message} (--lock-timeout {})",
            human(settings.lock_timeout)
        ))),
        other => other,
    })?;
    tracing::debug!("migration lock taken after {}", human(waited.elapsed()));
    let result = locked(&mut db, source, options, action, settings, &mut shutdown).await;
    // Always unlock, bounded: a session lock also ends with the connection, so a stuck unlock
    // must not hold the pod.
    match tokio::time::timeout(Duration::from_secs(10), db.unlock()).await {
        Ok(Ok(())) => tracing::debug!("migration lock released"),
        Ok(Err(err)) => {
            tracing::warn!("releasing the migration lock failed ({err}); it ends with the connection");
        }
        Err(_) => tracing::warn!("releasing the migration lock took over 10s; it ends with the connection"),
    }
    result
}

/// What must hold of the files before anything runs: no applied file changed and none below
/// the current version skipped (unless `--allow-changed`; `down` only warns), and no number
/// missing from a sequence (`up` and `goto`, unless `--allow-gaps`).
fn check_files(
    source: &Source,
    current: Option<u64>,
    checksums: &std::collections::BTreeMap<u64, String>,
    action: Action,
    settings: &Settings,
) -> Result<(), MigrateError> {
    let audit = audit(source, current, checksums);
    if audit.blocks() {
        if settings.allow_changed || matches!(action, Action::Down(_)) {
            tracing::warn!("{}", audit.describe());
        } else {
            return Err(MigrateError::Changed(format!(
                "{}; nothing was applied (--allow-changed goes on anyway)",
                audit.describe()
            )));
        }
    }
    if matches!(action, Action::Up(_) | Action::Goto(_))
        && let Some(gaps) = sequence_gaps(source)
    {
        if settings.allow_gaps {
            tracing::warn!("{gaps}");
        } else {
            return Err(MigrateError::Invalid(gaps));
        }
    }
    Ok(())
}

/// The part of a run that holds the lock.
async fn locked(
    db: &mut Database,
    source: Option<&Source>,
    options: &ConnectOptions,
    action: Action,
    settings: &Settings,
    shutdown: &mut Shutdown,
) -> Result<Option<String>, MigrateError> {
    interruptible(db.ensure_tables(), shutdown, "creating the state table").await?;
    let mut state = interruptible(db.state(), shutdown, "reading the state").await?;
    let header = format!("database: {}, table {}", settings.url_shown, options.table);
    match action {
        Action::Version => {
            return Ok(Some(match state {
                Some(State { version, dirty: true }) => format!("{version} (dirty)"),
                Some(State {
                    version,
                    dirty: false,
                }) => version.to_string(),
                None => "none".to_owned(),
            }));
        }
        Action::Force(version) => {
            interruptible(db.force(version), shutdown, "forcing the version").await?;
            tracing::warn!(
                "forced the version to {} (was {}); no migration was run",
                version.map_or_else(|| "none (-1)".to_owned(), |v| v.to_string()),
                describe_state(state)
            );
            return Ok(None);
        }
        Action::Status => {
            let checksums = interruptible(db.checksums(), shutdown, "reading the checksums").await?;
            let source =
                source.ok_or_else(|| MigrateError::Usage("status needs -path or -source".to_owned()))?;
            return Ok(Some(status_report(source, state, &checksums, &header)));
        }
        Action::Up(_) | Action::Down(_) | Action::Goto(_) => {}
    }
    let source =
        source.ok_or_else(|| MigrateError::Usage("this command needs -path or -source".to_owned()))?;
    if let Some(current) = state
        && current.dirty
    {
        let policy = if matches!(action, Action::Down(_)) {
            OnDirty::Fail
        } else {
            settings.on_dirty
        };
        let forced = resolve_dirty(Some(source), current, policy, &settings.force_hint)?;
        tracing::warn!(
            "THE DATABASE IS DIRTY at version {}: --on-dirty force-previous: forcing version {} so that version {} is applied again; whatever it did before failing is still there",
            current.version,
            forced.map_or_else(|| "none (-1)".to_owned(), |v| v.to_string()),
            current.version
        );
        interruptible(db.force(forced), shutdown, "forcing the previous version").await?;
        state = forced.map(|version| State {
            version,
            dirty: false,
        });
    }
    let current = state.map(|s| s.version);
    let checksums = interruptible(db.checksums(), shutdown, "reading the checksums").await?;
    check_files(source, current, &checksums, action, settings)?;
    let planned = plan(source, current, action)?;
    if let Some(note) = &planned.note {
        tracing::warn!("{note}");
    }
    if planned.steps.is_empty() {
        tracing::info!("no change: the database is at version {}", describe_state(state));
        return Ok(None);
    }
    let total = planned.steps.len();
    let started = Instant::now();
    for (number, step) in planned.steps.iter().enumerate() {
        apply(db, step, number + 1, total, shutdown).await?;
    }
    tracing::info!(
        "{total} migration{} applied in {}; the database is at version {}",
        if total == 1 { "" } else { "s" },
        human(started.elapsed()),
        planned
            .steps
            .last()
            .and_then(|s| s.version_after)
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    Ok(None)
}

fn describe_state(state: Option<State>) -> String {
    match state {
        Some(State { version, dirty: true }) => format!("{version} (dirty)"),
        Some(State {
            version,
            dirty: false,
        }) => version.to_string(),
        None => "none".to_owned(),
    }
}

/// Applies one step, raced against the shutdown: on a signal the statement is cancelled and
/// `apply` awaited until it returns.
async fn apply(
    db: &mut Database,
    step: &Step<'_>,
    number: usize,
    total: usize,
    shutdown: &mut Shutdown,
) -> Result<(), MigrateError> {
    let file = file_name(&step.script.path);
    let way = match step.direction {
        Direction::Up => "applying",
        Direction::Down => "rolling back with",
    };
    tracing::info!(
        "[{number}/{total}] {way} {file}{}",
        if step.script.transactional {
            ""
        } else {
            " (no transaction)"
        }
    );
    let started = Instant::now();
    let canceller = db.canceller();
    let running = db.apply(step);
    tokio::pin!(running);
    let result = tokio::select! {
        result = &mut running => result,
        signal = shutdown.recv() => {
            tracing::warn!("{} during {file}: cancelling the running statement", signal_name(signal));
            canceller.cancel().await;
            let outcome = running.await;
            let what = match &outcome {
                Ok(()) => format!("{file} had finished before the cancel took effect; it is applied"),
                Err(err) => format!("{file} was cancelled: {err}"),
            };
            return Err(MigrateError::Stopped {
                signal,
                summary: format!("{} during a migration: {what}", signal_name(signal)),
            });
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(
                "[{number}/{total}] {file} done in {}; version now {}",
                human(started.elapsed()),
                step.version_after
                    .map_or_else(|| "none".to_owned(), |v| v.to_string())
            );
            Ok(())
        }
        Err(err) => {
            let message = err.to_string();
            let message = if message.contains(&file) {
                message
            } else {
                format!("{file}: {message}")
            };
            Err(MigrateError::Db(match err {
                DbError::Sql(_) => DbError::Sql(message),
                DbError::Cancelled(_) => DbError::Cancelled(message),
                DbError::Unavailable(_) | DbError::Other(_) => DbError::Other(message),
                DbError::Refused(_) => DbError::Refused(message),
                DbError::LockTimeout(_) => DbError::LockTimeout(message),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn script(name: &str, sql: &str) -> Script {
        Script {
            path: PathBuf::from(format!("/m/{name}")),
            sql: sql.to_owned(),
            sha256: crate::source::sha256_hex(sql.as_bytes()),
            transactional: true,
        }
    }

    /// Versions with (up, down) presence.
    fn source(versions: &[(u64, bool, bool)]) -> Source {
        Source {
            dir: PathBuf::from("/m"),
            migrations: versions
                .iter()
                .map(|&(version, up, down)| Migration {
                    version,
                    title: format!("t{version}"),
                    up: up.then(|| script(&format!("{version}_t{version}.up.sql"), &format!("up {version}"))),
                    down: down.then(|| {
                        script(
                            &format!("{version}_t{version}.down.sql"),
                            &format!("down {version}"),
                        )
                    }),
                })
                .collect(),
        }
    }

    fn steps(planned: &Planned<'_>) -> Vec<(u64, Direction, Option<u64>)> {
        planned
            .steps
            .iter()
            .map(|s| (s.version, s.direction, s.version_after))
            .collect()
    }

    use Direction::{Down, Up};

    #[test]
    fn gaps_in_sequence_numbers_are_found_and_timestamps_may_skip() {
        let numbered = |versions: &[u64]| -> Source {
            let list: Vec<(u64, bool, bool)> = versions.iter().map(|&v| (v, true, true)).collect();
            source(&list)
        };
        assert_eq!(sequence_gaps(&numbered(&[1, 2, 3])), None);
        let gaps = sequence_gaps(&numbered(&[1, 2, 3, 5, 6, 10])).unwrap();
        assert!(gaps.contains("skip 4, 7 to 9"), "{gaps}");
        assert!(gaps.contains("--allow-gaps"), "{gaps}");
        // Starting above 1 is no gap; numbering in tens means its gaps; timestamps skip.
        assert_eq!(sequence_gaps(&numbered(&[40, 41])), None);
        assert_eq!(sequence_gaps(&numbered(&[10, 20, 25, 30])), None);
        assert_eq!(
            sequence_gaps(&numbered(&[20_240_101_000_000, 20_240_301_000_000])),
            None
        );
    }

    #[test]
    fn up_applies_what_is_pending_from_nil_or_the_current_version() {
        let src = source(&[(1, true, true), (2, true, true), (5, true, false)]);
        let p = plan(&src, None, Action::Up(None)).unwrap();
        assert_eq!(steps(&p), [(1, Up, Some(1)), (2, Up, Some(2)), (5, Up, Some(5))]);
        assert_eq!(p.steps[0].script.path, PathBuf::from("/m/1_t1.up.sql"));
        let p = plan(&src, Some(2), Action::Up(None)).unwrap();
        assert_eq!(steps(&p), [(5, Up, Some(5))]);
        assert!(plan(&src, Some(5), Action::Up(None)).unwrap().steps.is_empty());
        let p = plan(&src, None, Action::Up(Some(2))).unwrap();
        assert_eq!(steps(&p), [(1, Up, Some(1)), (2, Up, Some(2))]);
        let p = plan(&src, Some(2), Action::Up(Some(3))).unwrap();
        assert_eq!(steps(&p), [(5, Up, Some(5))]);
        assert!(p.note.unwrap().contains("only 1 pending"));
    }

    #[test]
    fn up_when_the_database_is_ahead_of_the_files_applies_nothing_and_says_so() {
        let src = source(&[(1, true, true), (2, true, true)]);
        let p = plan(&src, Some(7), Action::Up(None)).unwrap();
        assert!(p.steps.is_empty());
        assert!(p.note.unwrap().contains("version 7"));
        assert!(matches!(
            plan(&src, Some(7), Action::Down(DownLimit::Steps(1))),
            Err(MigrateError::Invalid(_))
        ));
    }

    #[test]
    fn a_current_version_with_no_file_inside_the_range_is_an_error() {
        let src = source(&[(1, true, true), (3, true, true)]);
        let err = plan(&src, Some(2), Action::Up(None)).unwrap_err();
        assert!(matches!(err, MigrateError::Invalid(_)));
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn down_rolls_back_n_and_all_and_refuses_more_than_applied_before_starting() {
        let src = source(&[(1, true, true), (2, true, true), (3, true, true)]);
        let p = plan(&src, Some(3), Action::Down(DownLimit::Steps(2))).unwrap();
        assert_eq!(steps(&p), [(3, Down, Some(2)), (2, Down, Some(1))]);
        let p = plan(&src, Some(2), Action::Down(DownLimit::All)).unwrap();
        assert_eq!(steps(&p), [(2, Down, Some(1)), (1, Down, None)]);
        assert!(
            plan(&src, None, Action::Down(DownLimit::All))
                .unwrap()
                .steps
                .is_empty()
        );
        let err = plan(&src, Some(2), Action::Down(DownLimit::Steps(3))).unwrap_err();
        assert!(matches!(err, MigrateError::Usage(_)));
        assert!(err.to_string().contains("only 2 migrations are applied"), "{err}");
        let err = plan(&src, None, Action::Down(DownLimit::Steps(1))).unwrap_err();
        assert!(err.to_string().contains("only 0"), "{err}");
    }

    #[test]
    fn down_through_a_version_without_a_down_file_is_refused_before_anything_runs() {
        let src = source(&[(1, true, true), (2, true, false), (3, true, true)]);
        let err = plan(&src, Some(3), Action::Down(DownLimit::Steps(2))).unwrap_err();
        assert!(matches!(err, MigrateError::Invalid(_)));
        assert!(
            err.to_string().contains("version 2") && err.to_string().contains("2_t2.down.sql"),
            "{err}"
        );
        assert_eq!(
            steps(&plan(&src, Some(3), Action::Down(DownLimit::Steps(1))).unwrap()),
            [(3, Down, Some(2))]
        );
    }

    #[test]
    fn up_through_a_version_with_only_a_down_file_is_refused() {
        let src = source(&[(1, true, true), (2, false, true)]);
        let err = plan(&src, None, Action::Up(None)).unwrap_err();
        assert!(
            err.to_string().contains("no up file") && err.to_string().contains("2_t2.down.sql only"),
            "{err}"
        );
    }

    #[test]
    fn goto_moves_up_or_down_to_an_existing_version() {
        let src = source(&[(1, true, true), (2, true, true), (3, true, true), (4, true, true)]);
        assert_eq!(
            steps(&plan(&src, None, Action::Goto(2)).unwrap()),
            [(1, Up, Some(1)), (2, Up, Some(2))]
        );
        assert_eq!(
            steps(&plan(&src, Some(1), Action::Goto(3)).unwrap()),
            [(2, Up, Some(2)), (3, Up, Some(3))]
        );
        assert_eq!(
            steps(&plan(&src, Some(4), Action::Goto(2)).unwrap()),
            [(4, Down, Some(3)), (3, Down, Some(2))]
        );
        assert!(plan(&src, Some(3), Action::Goto(3)).unwrap().steps.is_empty());
        let err = plan(&src, Some(3), Action::Goto(9)).unwrap_err();
        assert!(
            matches!(err, MigrateError::Usage(_)) && err.to_string().contains("goto 9"),
            "{err}"
        );
    }

    fn sums(pairs: &[(u64, &str)]) -> BTreeMap<u64, String> {
        pairs
            .iter()
            .map(|(v, text)| (*v, crate::source::sha256_hex(text.as_bytes())))
            .collect()
    }

    #[test]
    fn audit_finds_changed_and_never_applied_files() {
        let src = source(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, true, true),
            (5, true, true),
        ]);
        // 1 applied by golang-migrate (no checksum), 2 and 4 by pitcrew, 3 added later below
        // the current version, 4 edited since.
        let checksums = sums(&[(2, "up 2"), (4, "up 4 (before the edit)"), (9, "gone")]);
        let audit = audit(&src, Some(4), &checksums);
        assert_eq!(audit.changed.len(), 1);
        assert_eq!(audit.changed[0].0, 4);
        assert_eq!(audit.never_applied, [(3, "3_t3.up.sql".to_owned())]);
        assert_eq!(audit.unverified, [1]);
        assert!(audit.missing.is_empty(), "9 is above the current version");
        assert!(audit.blocks());
        let text = audit.describe();
        assert!(
            text.contains("4_t4.up.sql (version 4) changed")
                && text.contains("3_t3.up.sql (version 3) is below"),
            "{text}"
        );
        // A database golang-migrate migrated alone: nothing to compare, nothing blocks.
        let audit = super::audit(&src, Some(5), &BTreeMap::new());
        assert!(!audit.blocks());
        assert_eq!(audit.unverified, [1, 2, 3, 4, 5]);
        // Pending files are never "never applied".
        assert!(!super::audit(&src, Some(2), &sums(&[(1, "up 1"), (2, "up 2")])).blocks());
    }

    #[test]
    fn dirty_fails_with_the_force_command_or_forces_the_previous_version() {
        let src = source(&[(1, true, true), (2, true, true), (3, true, true)]);
        let hint = "pitcrew-migrate -path=/m -database='postgres://app:***@db/app'";
        let err = resolve_dirty(
            Some(&src),
            State {
                version: 3,
                dirty: true,
            },
            OnDirty::Fail,
            hint,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, MigrateError::Dirty(_)));
        assert!(
            text.contains("dirty at version 3") && text.contains("3_t3.up.sql"),
            "{text}"
        );
        assert!(text.contains(&format!("`{hint} force 2`")), "{text}");
        let err = resolve_dirty(
            Some(&src),
            State {
                version: 1,
                dirty: true,
            },
            OnDirty::Fail,
            hint,
        )
        .unwrap_err();
        assert!(err.to_string().contains("force -1"), "{err}");
        assert_eq!(
            resolve_dirty(
                Some(&src),
                State {
                    version: 3,
                    dirty: true
                },
                OnDirty::ForcePrevious,
                hint
            )
            .unwrap(),
            Some(2)
        );
        assert_eq!(
            resolve_dirty(
                Some(&src),
                State {
                    version: 1,
                    dirty: true
                },
                OnDirty::ForcePrevious,
                hint
            )
            .unwrap(),
            None
        );
        assert!(
            resolve_dirty(
                Some(&src),
                State {
                    version: 7,
                    dirty: true
                },
                OnDirty::ForcePrevious,
                hint
            )
            .is_err()
        );
    }

    #[test]
    fn status_lists_applied_pending_dirty_changed_and_never_applied() {
        let src = source(&[
            (1, true, true),
            (2, true, true),
            (3, true, true),
            (4, true, true),
            (5, true, false),
        ]);
        let checksums = sums(&[(1, "up 1"), (2, "edited"), (4, "up 4")]);
        let report = status_report(
            &src,
            Some(State {
                version: 4,
                dirty: true,
            }),
            &checksums,
            "database: x",
        );
        let line = |v: &str| {
            report
                .lines()
                .find(|l| l.trim_start().starts_with(v))
                .unwrap_or_else(|| panic!("{report}"))
                .to_owned()
        };
        assert!(report.contains("version: 4 (DIRTY"), "{report}");
        assert!(line("1 ").contains("applied"), "{report}");
        assert!(line("2 ").contains("CHANGED"), "{report}");
        assert!(line("3 ").contains("NEVER APPLIED"), "{report}");
        assert!(line("4 ").contains("DIRTY"), "{report}");
        assert!(line("5 ").contains("pending"), "{report}");
        assert!(
            report.contains("1 pending, 1 changed, 1 never applied"),
            "{report}"
        );
        let report = status_report(&src, None, &BTreeMap::new(), "h");
        assert!(
            report.contains("version: none") && report.contains("5 pending"),
            "{report}"
        );
    }
}
