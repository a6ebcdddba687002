//! The migration directory, laid out as golang-migrate's: `{version}_{title}.up.{ext}` and
//! `.down.{ext}`, versions as unsigned integers (timestamps work), a version with no down file
//! allowed. Each script is read whole at load time, with its SHA-256 and whether it opts out
//! of the transaction (`-- pitcrew:no-transaction` on its first line).
//!
//! Loading is strict where golang-migrate is lenient, because a file it silently skips is a
//! migration that silently never runs: a `.sql` file (or one with `.up.`/`.down.` in its name)
//! whose name does not parse, two files for one version and direction, a script that is not
//! UTF-8, or a version too big for the state table's `bigint` is an error naming the file and
//! the expected form. Hidden entries (a ConfigMap volume's `..data` and `..2024_…` entries)
//! and directories are skipped, and other files (a README) are skipped with a log line.
//! Symbolic links are followed: a ConfigMap mounts every key as one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pitcrew_core::exit::ExitCode;
use sha2::{Digest as _, Sha256};

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

impl SourceError {
    /// The exit code this calls for: 66 unreadable, 78 invalid.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SourceError::Unreadable(_) => ExitCode::NoInput,
            SourceError::Invalid(_) => ExitCode::Config,
        }
    }
}

/// The first line that opts a script out of its transaction.
pub const NO_TRANSACTION_MARK: &str = "-- pitcrew:no-transaction";

/// What a migration file's name must look like, for error messages.
const EXPECTED_NAME: &str = "expected {version}_{title}.up.sql or {version}_{title}.down.sql, the version a whole number (e.g. 000001_create_users.up.sql or 20240131120000_add_index.down.sql)";

/// The largest version the state table's `bigint` column holds.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// Which way a file moves, as parsed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Up,
    Down,
}

/// A file name split as golang-migrate's `^([0-9]+)_(.*)\.(down|up)\.(.*)$` does.
#[derive(Debug, PartialEq, Eq)]
struct Name<'a> {
    version: &'a str,
    title: &'a str,
    way: Way,
}

/// Splits a file name; `None` when it does not match golang-migrate's pattern. The title is
/// the longest prefix before a `.up.`/`.down.` (the regex's greedy `(.*)`), the extension the
/// rest (any extension is accepted, as golang-migrate does).
fn split_name(name: &str) -> Option<Name<'_>> {
    let underscore = name.find('_')?;
    let version = &name[..underscore];
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = &name[underscore + 1..];
    // The greedy title: the LAST `.up.` or `.down.` splits title from extension.
    let up = rest.rfind(".up.").map(|i| (i, Way::Up, 4));
    let down = rest.rfind(".down.").map(|i| (i, Way::Down, 6));
    let (index, way, _) = match (up, down) {
        (Some(u), Some(d)) => {
            if u.0 > d.0 {
                u
            } else {
                d
            }
        }
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return None,
    };
    Some(Name {
        version,
        title: &rest[..index],
        way,
    })
}

/// Whether a name that does not parse is still meant as a migration (and so an error rather
/// than a file to skip): an SQL file, or one that names a direction.
fn looks_like_migration(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    Path::new(&lower).extension().is_some_and(|ext| ext == "sql")
        || lower.contains(".up.")
        || lower.contains(".down.")
}

/// Parses a version: digits only, at most [`MAX_VERSION`].
fn parse_version(digits: &str) -> Option<u64> {
    digits.parse::<u64>().ok().filter(|v| *v <= MAX_VERSION)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    pitcrew_core::text::hex(&Sha256::digest(bytes))
}

/// Whether the script's first line is the no-transaction mark (surrounding blanks and a UTF-8
/// byte-order mark allowed, the mark's case as written).
fn opts_out_of_transaction(sql: &str) -> bool {
    let first = sql.trim_start_matches('\u{feff}').lines().next().unwrap_or("");
    first.trim() == NO_TRANSACTION_MARK
}

fn describe_io(err: &std::io::Error) -> String {
    pitcrew_core::io_error::describe(err)
}

/// Reads one script.
fn read_script(path: &Path) -> Result<Script, SourceError> {
    let bytes = std::fs::read(path).map_err(|err| {
        SourceError::Unreadable(format!("{}: cannot read: {}", path.display(), describe_io(&err)))
    })?;
    let sha256 = sha256_hex(&bytes);
    let sql = String::from_utf8(bytes).map_err(|err| {
        let at = err.utf8_error().valid_up_to();
        let line = err.as_bytes()[..at].split(|b| *b == b'\n').count();
        SourceError::Invalid(format!(
            "{}: not UTF-8 text (invalid byte at offset {at}, line {line}); expected an SQL script saved as UTF-8",
            path.display()
        ))
    })?;
    Ok(Script {
        path: path.to_owned(),
        transactional: !opts_out_of_transaction(&sql),
        sql,
        sha256,
    })
}

/// Lists the files of `dir` that are migrations, as (version, title, way, path), erroring on
/// names that look meant but do not parse. Shared by [`Source::load`] and [`create`].
fn scan(dir: &Path) -> Result<Vec<(u64, String, Way, PathBuf)>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|err| {
        let why = if err.kind() == std::io::ErrorKind::NotFound {
            "no such directory".to_owned()
        } else if err.raw_os_error() == Some(20) {
            "not a directory".to_owned()
        } else {
            describe_io(&err)
        };
        SourceError::Unreadable(format!(
            "{}: cannot read the migrations directory: {why}; expected the directory given with -path or -source=file://",
            dir.display()
        ))
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| {
            SourceError::Unreadable(format!("{}: cannot list: {}", dir.display(), describe_io(&err)))
        })?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(SourceError::Invalid(format!(
                "{}: the file name is not UTF-8; {EXPECTED_NAME}",
                path.display()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        // Follows symbolic links (ConfigMap keys are links into `..data`).
        let metadata = std::fs::metadata(&path).map_err(|err| {
            SourceError::Unreadable(format!("{}: cannot read: {}", path.display(), describe_io(&err)))
        })?;
        if metadata.is_dir() {
            tracing::debug!("{}: a directory, skipped", path.display());
            continue;
        }
        let Some(parsed) = split_name(&name) else {
            if looks_like_migration(&name) {
                return Err(SourceError::Invalid(format!(
                    "{}: the file name does not parse; {EXPECTED_NAME}",
                    path.display()
                )));
            }
            tracing::info!(
                "{}: not a migration file (no .up. or .down. in its name), skipped",
                path.display()
            );
            continue;
        };
        let Some(version) = parse_version(parsed.version) else {
            return Err(SourceError::Invalid(format!(
                "{}: the version {} is larger than {MAX_VERSION}, the largest the state table's bigint holds; {EXPECTED_NAME}",
                path.display(),
                parsed.version
            )));
        };
        found.push((version, parsed.title.to_owned(), parsed.way, path));
    }
    Ok(found)
}

impl Source {
    /// Reads every migration in `dir` (see the module docs for what is refused).
    pub fn load(dir: &Path) -> Result<Source, SourceError> {
        let mut files = scan(dir)?;
        // Sorted by path too, so the duplicate message is the same on every run.
        files.sort_by(|a, b| (a.0, &a.3).cmp(&(b.0, &b.3)));
        let mut migrations: BTreeMap<u64, Migration> = BTreeMap::new();
        for (version, title, way, path) in files {
            let migration = migrations.entry(version).or_insert_with(|| Migration {
                version,
                title: title.clone(),
                up: None,
                down: None,
            });
            let slot = match way {
                Way::Up => &mut migration.up,
                Way::Down => &mut migration.down,
            };
            if let Some(existing) = slot {
                let way = if way == Way::Up { "up" } else { "down" };
                return Err(SourceError::Invalid(format!(
                    "{} and {}: two {way} files for version {version}; expected one {version}_{{title}}.{way}.sql (rename one to a new version)",
                    existing.path.display(),
                    path.display()
                )));
            }
            if way == Way::Up {
                migration.title = title;
            }
            *slot = Some(read_script(&path)?);
        }
        Ok(Source {
            dir: dir.to_owned(),
            migrations: migrations.into_values().collect(),
        })
    }

    /// The migration with `version`.
    pub fn get(&self, version: u64) -> Option<&Migration> {
        self.index_of(version).map(|i| &self.migrations[i])
    }

    /// The position of `version` in [`Source::migrations`].
    pub fn index_of(&self, version: u64) -> Option<usize> {
        self.migrations.binary_search_by_key(&version, |m| m.version).ok()
    }

    /// The version just below `version` in the directory (`None`: it is the first, so the
    /// state before it is nil). `version` must be in the directory.
    pub fn previous(&self, version: u64) -> Option<u64> {
        let index = self.migrations.partition_point(|m| m.version < version);
        index.checked_sub(1).map(|i| self.migrations[i].version)
    }
}

/// How [`create`] numbers the next pair of files (golang-migrate's `create` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// `-seq -digits N`: the highest version plus one, zero-padded to `digits`.
    Sequential {
        /// At least this many digits (golang-migrate's default is 6).
        digits: usize,
    },
    /// The current UTC time as `YYYYMMDDhhmmss` (golang-migrate's default `-format`).
    Timestamp,
    /// `-format unix`: seconds since 1970.
    Unix,
    /// `-format unixNano`: nanoseconds since 1970.
    UnixNano,
}

/// Writes the next pair of empty files, `{version}_{name}.up.{ext}` and `.down.{ext}`, into
/// `dir` (created when missing) and returns their paths. Refuses a name that would not parse
/// back, a version that would not sort after every existing one (a file below the current
/// version is never applied), and files that already exist (never overwrites).
pub fn create(
    dir: &Path,
    name: &str,
    ext: &str,
    numbering: Numbering,
    now: SystemTime,
) -> Result<(PathBuf, PathBuf), SourceError> {
    let ext = ext.trim_start_matches('.');
    if name.is_empty()
        || name.contains(['/', '\\', '\0'])
        || name.starts_with('.')
        || name.contains(".up.")
        || name.contains(".down.")
    {
        return Err(SourceError::Invalid(format!(
            "create: invalid name {name:?}; expected a title such as create_users (no slashes, not starting with a dot, no .up. or .down.)"
        )));
    }
    if ext.is_empty() || ext.contains(['/', '\\', '\0']) {
        return Err(SourceError::Invalid(format!(
            "create: invalid extension {ext:?}; expected e.g. sql"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|err| {
        SourceError::Unreadable(format!(
            "{}: cannot create the directory: {}",
            dir.display(),
            describe_io(&err)
        ))
    })?;
    let highest = scan(dir)?.into_iter().map(|(v, ..)| v).max();
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let version = match numbering {
        Numbering::Sequential { digits } => {
            let next = highest.map_or(1, |v| v.saturating_add(1));
            let text = format!("{next:0digits$}");
            if text.len() > digits {
                return Err(SourceError::Invalid(format!(
                    "create: the next version {next} has more than {digits} digits; use a larger -digits"
                )));
            }
            text
        }
        Numbering::Timestamp => utc_timestamp(since_epoch.as_secs()),
        Numbering::Unix => since_epoch.as_secs().to_string(),
        Numbering::UnixNano => since_epoch.as_nanos().to_string(),
    };
    let number = parse_version(&version).ok_or_else(|| {
        SourceError::Invalid(format!(
            "create: the version {version} is larger than {MAX_VERSION}"
        ))
    })?;
    if let Some(highest) = highest
        && number <= highest
    {
        return Err(SourceError::Invalid(format!(
            "create: the new version {version} does not sort after the highest existing one, {highest}; a file below the database's version would never be applied (is the clock right, or the numbering mixed?)"
        )));
    }
    let up = dir.join(format!("{version}_{name}.up.{ext}"));
    let down = dir.join(format!("{version}_{name}.down.{ext}"));
    for path in [&up, &down] {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path);
        let mut file = file.map_err(|err| {
            SourceError::Unreadable(format!(
                "{}: cannot create: {}",
                path.display(),
                describe_io(&err)
            ))
        })?;
        file.flush().map_err(|err| {
            SourceError::Unreadable(format!("{}: cannot write: {}", path.display(), describe_io(&err)))
        })?;
    }
    Ok((up, down))
}

/// `YYYYMMDDhhmmss` in UTC for seconds since 1970 (a date crate for one format string would
/// be more code than core's `civil_from_days`).
fn utc_timestamp(secs: u64) -> String {
    let rest = secs % 86_400;
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let (year, month, day) = pitcrew_core::calendar::civil_from_days(secs / 86_400);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn invalid(result: Result<Source, SourceError>) -> String {
        match result {
            Err(SourceError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_split_as_golang_migrate_does() {
        let n = split_name("0001_create_users.up.sql").unwrap();
        assert_eq!((n.version, n.title, n.way), ("0001", "create_users", Way::Up));
        let n = split_name("20240131120000_a.up.b.down.sql").unwrap();
        assert_eq!((n.title, n.way), ("a.up.b", Way::Down));
        let n = split_name("7_.up.psql").unwrap();
        assert_eq!(n.title, "");
        for bad in [
            "create.up.sql",
            "1-create.up.sql",
            "x1_a.up.sql",
            "1_a.sql",
            "_a.up.sql",
            "1_a.up",
        ] {
            assert!(split_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_directory_loads_in_version_order_with_checksums_and_the_opt_out() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "10_second.up.sql",
            "-- pitcrew:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
        );
        write(dir.path(), "2_first.up.sql", "CREATE TABLE t (a int);\n");
        write(dir.path(), "2_first.down.sql", "DROP TABLE t;\n");
        write(dir.path(), "README.md", "notes");
        write(dir.path(), ".hidden.up.sql", "ignored");
        std::fs::create_dir(dir.path().join("..2024_01_01")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let source = Source::load(dir.path()).unwrap();
        let versions: Vec<u64> = source.migrations.iter().map(|m| m.version).collect();
        assert_eq!(versions, [2, 10]);
        let first = source.get(2).unwrap();
        assert_eq!(first.title, "first");
        let up = first.up.as_ref().unwrap();
        assert!(up.transactional);
        assert_eq!(up.sha256, sha256_hex(b"CREATE TABLE t (a int);\n"));
        assert_eq!(up.sha256.len(), 64);
        assert!(first.down.is_some());
        let second = source.get(10).unwrap();
        assert!(!second.up.as_ref().unwrap().transactional);
        assert!(second.down.is_none());
        assert_eq!(source.previous(10), Some(2));
        assert_eq!(source.previous(2), None);
    }

    #[test]
    fn the_sha256_is_the_known_digest() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_opt_out_must_be_the_first_line() {
        assert!(opts_out_of_transaction("-- pitcrew:no-transaction\nx"));
        assert!(opts_out_of_transaction(
            "\u{feff}  -- pitcrew:no-transaction  \r\nx"
        ));
        assert!(!opts_out_of_transaction("SELECT 1;\n-- pitcrew:no-transaction\n"));
        assert!(!opts_out_of_transaction("-- pitcrew:no-transactions\n"));
        assert!(!opts_out_of_transaction(""));
    }

    #[test]
    fn a_name_that_does_not_parse_is_an_error_naming_the_file_and_the_form() {
        for name in ["1-create.up.sql", "create_users.sql", "V1__init.sql"] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "1_ok.up.sql", "SELECT 1;");
            write(dir.path(), name, "SELECT 1;");
            let message = invalid(Source::load(dir.path()));
            if split_name(name).is_none() {
                assert!(message.contains(name), "{message}");
                assert!(message.contains("{version}_{title}.up.sql"), "{message}");
            }
        }
    }

    #[test]
    fn two_files_with_one_version_and_direction_are_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1_a.up.sql", "SELECT 1;");
        write(dir.path(), "001_b.up.sql", "SELECT 2;");
        let message = invalid(Source::load(dir.path()));
        assert!(
            message.contains("1_a.up.sql") && message.contains("001_b.up.sql"),
            "{message}"
        );
        assert!(message.contains("version 1"), "{message}");
        // Up and down of one version are a pair, not a duplicate; so are two extensions of
        // different directions.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1_a.up.sql", "SELECT 1;");
        write(dir.path(), "1_a.down.psql", "SELECT 2;");
        assert!(Source::load(dir.path()).is_ok());
    }

    #[test]
    fn a_version_beyond_bigint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "9223372036854775808_big.up.sql", "SELECT 1;");
        let message = invalid(Source::load(dir.path()));
        assert!(message.contains("bigint"), "{message}");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "99999999999999999999999_big.up.sql", "SELECT 1;");
        invalid(Source::load(dir.path()));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "9223372036854775807_max.up.sql", "SELECT 1;");
        assert!(Source::load(dir.path()).is_ok());
    }

    #[test]
    fn non_utf8_sql_is_an_error_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("1_latin1.up.sql"),
            b"SELECT 1;\nSELECT 'caf\xe9';\n",
        )
        .unwrap();
        let message = invalid(Source::load(dir.path()));
        assert!(
            message.contains("1_latin1.up.sql") && message.contains("line 2") && message.contains("UTF-8"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_directory_or_a_file_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        match Source::load(&missing) {
            Err(err @ SourceError::Unreadable(_)) => {
                assert_eq!(err.exit_code(), ExitCode::NoInput);
                let message = err.to_string();
                assert!(
                    message.contains("nope") && message.contains("no such directory"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        write(dir.path(), "file", "x");
        match Source::load(&dir.path().join("file")) {
            Err(SourceError::Unreadable(message)) => {
                assert!(message.contains("not a directory"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn symlinks_are_followed_as_in_a_configmap_volume() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2024_01_01_00_00_00.1");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("1_init.up.sql"), "SELECT 1;").unwrap();
        std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/1_init.up.sql", dir.path().join("1_init.up.sql")).unwrap();
        let source = Source::load(dir.path()).unwrap();
        assert_eq!(source.migrations.len(), 1);
        assert_eq!(source.migrations[0].up.as_ref().unwrap().sql, "SELECT 1;");
    }

    #[test]
    fn an_empty_directory_loads_as_no_migrations() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Source::load(dir.path()).unwrap().migrations.is_empty());
    }

    #[test]
    fn create_writes_the_next_sequential_pair() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (up, down) = create(
            dir.path(),
            "create_users",
            "sql",
            Numbering::Sequential { digits: 6 },
            now,
        )
        .unwrap();
        assert_eq!(up.file_name().unwrap(), "000001_create_users.up.sql");
        assert_eq!(down.file_name().unwrap(), "000001_create_users.down.sql");
        assert_eq!(std::fs::read(&up).unwrap(), b"");
        let (up, _) = create(
            dir.path(),
            "add_index",
            ".sql",
            Numbering::Sequential { digits: 6 },
            now,
        )
        .unwrap();
        assert_eq!(up.file_name().unwrap(), "000002_add_index.up.sql");
        let source = Source::load(dir.path()).unwrap();
        assert_eq!(source.migrations.len(), 2);
        let dir2 = tempfile::tempdir().unwrap();
        write(dir2.path(), "99_x.up.sql", "");
        let err = create(dir2.path(), "y", "sql", Numbering::Sequential { digits: 2 }, now).unwrap_err();
        assert!(err.to_string().contains("more than 2 digits"), "{err}");
        let (up, _) = create(dir2.path(), "y", "sql", Numbering::Sequential { digits: 3 }, now).unwrap();
        assert_eq!(up.file_name().unwrap(), "100_y.up.sql");
    }

    #[test]
    fn create_timestamps_are_utc_and_must_sort_last() {
        let dir = tempfile::tempdir().unwrap();
        // 2024-02-29T23:59:58Z
        let now = UNIX_EPOCH + Duration::from_secs(1_709_251_198);
        let (up, _) = create(dir.path(), "leap", "sql", Numbering::Timestamp, now).unwrap();
        assert_eq!(up.file_name().unwrap(), "20240229235958_leap.up.sql");
        // Same second again: the files exist, and the version does not sort after itself.
        let err = create(dir.path(), "leap", "sql", Numbering::Timestamp, now).unwrap_err();
        assert!(err.to_string().contains("does not sort after"), "{err}");
        // A Unix time sorts below the timestamp already there: refused, nothing written.
        assert!(create(dir.path(), "u", "sql", Numbering::Unix, now).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        let dir = tempfile::tempdir().unwrap();
        let (up, _) = create(dir.path(), "u", "sql", Numbering::Unix, now).unwrap();
        assert_eq!(up.file_name().unwrap(), "1709251198_u.up.sql");
        let (up, _) = create(dir.path(), "n", "sql", Numbering::UnixNano, now).unwrap();
        assert_eq!(up.file_name().unwrap(), "1709251198000000000_n.up.sql");
        assert_eq!(utc_timestamp(0), "19700101000000");
        assert_eq!(utc_timestamp(951_782_400), "20000229000000");
    }

    #[test]
    fn create_refuses_names_that_would_not_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "a/b", ".hidden", "x.up.y"] {
            assert!(
                create(dir.path(), name, "sql", Numbering::Unix, SystemTime::now()).is_err(),
                "{name:?}"
            );
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
