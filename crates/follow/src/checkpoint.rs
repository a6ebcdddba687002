//! The checkpoint file: per file identity, the offset up to which lines were delivered.
//!
//! The format is text, versioned and meant to be read (and, in an emergency, edited) by people:
//!
//! ```text
//! # pitcrew-follow checkpoint v1
//! # dev ino fingerprint-length fingerprint-hash offset path
//! 2049 1835012 1024 8594c171f73967e8 52311 /var/log/app/app.log
//! ```
//!
//! One line per file: device, inode, how many leading bytes the fingerprint covers, the
//! fingerprint's FNV-1a hash in 16 hex digits, the offset every line before which was delivered,
//! and the path last (so it may hold spaces). In the path a backslash is written `\\`, a newline
//! `\n`, a carriage return `\r`, and a byte that is not UTF-8 `\xHH`. Lines starting with `#`
//! after the first are comments. The path is for people: identity is device + inode +
//! fingerprint (see [`crate::identity`]).
//!
//! It is written atomically (pitcrew-core's [`AtomicFile`]: temporary file, flush, rename), so
//! a crash leaves the previous checkpoint or the new one, never half of one. A file that is there
//! but malformed is refused with the line and what is wrong, and the recovery: delete it to
//! start over (files are then read from the start per `-n`, which may duplicate lines).

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use pitcrew_core::files::{AtomicFile, WriteOptions};

use crate::{FileKey, Fingerprint, identity::FINGERPRINT_BYTES};

/// The first line of every checkpoint this version writes and reads.
pub const HEADER: &str = "# pitcrew-follow checkpoint v1";

/// Said after every "corrupt" reason: how to get going again, and what it costs.
const RECOVERY: &str = "delete it to start over: files are then read from the start per -n, \
                        which may duplicate lines";

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
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(CheckpointError::Unreadable {
                    path: path.to_owned(),
                    reason: err.to_string(),
                });
            }
        };
        Checkpoint::parse(&bytes)
            .map(Some)
            .map_err(|reason| CheckpointError::Corrupt {
                path: path.to_owned(),
                reason: format!("not a valid checkpoint: {reason}; {RECOVERY}"),
            })
    }

    /// Writes atomically (temp file + rename), so a crash leaves the old or the new one.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let unwritable = |reason: String| CheckpointError::Unwritable {
            path: path.to_owned(),
            reason,
        };
        let mut file = AtomicFile::create(path, WriteOptions::default())
            .map_err(|err| unwritable(err.source.to_string()))?;
        file.write_all(&self.render())
            .map_err(|err| unwritable(err.to_string()))?;
        file.commit().map_err(|err| unwritable(err.source.to_string()))?;
        Ok(())
    }

    /// The file's bytes (see the module docs for the format).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 96);
        out.extend_from_slice(HEADER.as_bytes());
        out.extend_from_slice(b"\n# dev ino fingerprint-length fingerprint-hash offset path\n");
        for entry in &self.entries {
            let key = &entry.key;
            // Writing to a Vec cannot fail.
            let _ = write!(
                out,
                "{} {} {} {:016x} {} ",
                key.dev, key.ino, key.fingerprint.len, key.fingerprint.hash, entry.offset
            );
            escape_path(entry.path.as_os_str().as_bytes(), &mut out);
            out.push(b'\n');
        }
        out
    }

    /// Parses a checkpoint's bytes; the error names the line and what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<Checkpoint, String> {
        if bytes.is_empty() {
            return Err(
                "the file is empty (expected the first line \"# pitcrew-follow checkpoint v1\")".into(),
            );
        }
        let text = std::str::from_utf8(bytes).map_err(|err| {
            let line = 1 + memchr::memchr_iter(b'\n', &bytes[..err.valid_up_to()]).count();
            format!(
                "line {line}: not text (invalid UTF-8; paths are escaped, so a checkpoint is always text)"
            )
        })?;
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or_default();
        if first != HEADER {
            return Err(if first.starts_with("# pitcrew-follow checkpoint v") {
                format!("line 1: {first:?} is a version this build does not read (expected {HEADER:?})")
            } else {
                format!("line 1: expected {HEADER:?}, found {:?}", shorten(first))
            });
        }
        if !text.ends_with('\n') {
            let last = text.lines().count();
            return Err(format!(
                "line {last}: the file ends in the middle of a line (cut short by a full disk or a copy?)"
            ));
        }
        let mut entries = Vec::new();
        for (index, line) in lines.enumerate() {
            let number = index + 2;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            entries.push(parse_entry(line).map_err(|what| format!("line {number}: {what}"))?);
        }
        Ok(Checkpoint { entries })
    }
}

/// Parses `dev ino fplen fphash offset path`.
fn parse_entry(line: &str) -> Result<CheckpointEntry, String> {
    let mut fields = line.splitn(6, ' ');
    let mut next = |name: &str| {
        fields.next().filter(|field| !field.is_empty()).ok_or_else(|| {
            format!(
                "missing the {name} (expected \"dev ino fingerprint-length fingerprint-hash offset path\")"
            )
        })
    };
    let number = |name: &str, field: &str| {
        field
            .parse::<u64>()
            .map_err(|_| format!("the {name} {:?} is not a whole number below 2^64", shorten(field)))
    };
    let dev = number("device", next("device")?)?;
    let ino = number("inode", next("inode")?)?;
    let len = number("fingerprint length", next("fingerprint length")?)?;
    if len > FINGERPRINT_BYTES as u64 {
        return Err(format!(
            "the fingerprint length {len} is over the maximum {FINGERPRINT_BYTES}"
        ));
    }
    let hash_field = next("fingerprint hash")?;
    if hash_field.len() != 16 {
        return Err(format!(
            "the fingerprint hash {:?} is not 16 hex digits",
            shorten(hash_field)
        ));
    }
    let hash = u64::from_str_radix(hash_field, 16).map_err(|_| {
        format!(
            "the fingerprint hash {:?} is not 16 hex digits",
            shorten(hash_field)
        )
    })?;
    let offset = number("offset", next("offset")?)?;
    let path = unescape_path(next("path")?)?;
    Ok(CheckpointEntry {
        key: FileKey {
            dev,
            ino,
            // Checked above: at most 1024.
            fingerprint: Fingerprint {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                hash,
            },
        },
        path,
        offset,
    })
}

/// Keeps error messages one readable line when the input is a megabyte of garbage.
fn shorten(field: &str) -> String {
    if field.chars().count() > 40 {
        format!("{}…", field.chars().take(40).collect::<String>())
    } else {
        field.to_owned()
    }
}

fn escape_path(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                _ => {
                    let mut buffer = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}

fn unescape_path(text: &str) -> Result<PathBuf, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        match bytes.get(index + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let hex = text
                    .get(index + 2..index + 4)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or("the path has a \\x escape without two hex digits")?;
                out.push(hex);
                index += 2;
            }
            _ => return Err("the path has an unknown escape (expected \\\\, \\n, \\r or \\xHH)".into()),
        }
        index += 2;
    }
    if out.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[u8], offset: u64) -> CheckpointEntry {
        CheckpointEntry {
            key: FileKey {
                dev: 2049,
                ino: u64::MAX,
                fingerprint: Fingerprint::of(b"head\n"),
            },
            path: PathBuf::from(OsString::from_vec(path.to_vec())),
            offset,
        }
    }

    #[test]
    fn round_trips_odd_paths() {
        let checkpoint = Checkpoint {
            entries: vec![
                entry(b"/var/log/app/app.log", 0),
                entry(b"/logs/with space/and\nnewline\r\\back", 77),
                entry(b"/logs/caf\xc3\xa9/\xff\xfe.log", u64::MAX),
            ],
        };
        let rendered = checkpoint.render();
        let text = String::from_utf8(rendered.clone()).unwrap();
        assert!(text.starts_with("# pitcrew-follow checkpoint v1\n"), "{text}");
        assert!(text.contains("with space/and\\nnewline\\r\\\\back\n"), "{text}");
        assert!(text.contains("café/\\xff\\xfe.log\n"), "{text}");
        assert_eq!(Checkpoint::parse(&rendered).unwrap(), checkpoint);
    }

    #[test]
    fn save_and_load_through_a_path_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("check point");
        assert!(
            Checkpoint::load(&path).unwrap().is_none(),
            "missing means first run"
        );
        let checkpoint = Checkpoint {
            entries: vec![entry(b"/a b", 5)],
        };
        checkpoint.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(checkpoint.clone()));
        // Saving again replaces it atomically; no temporary files are left behind.
        let second = Checkpoint {
            entries: vec![entry(b"/a b", 9)],
        };
        second.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(second));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn corrupt(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        std::fs::write(&path, bytes).unwrap();
        match Checkpoint::load(&path) {
            Err(CheckpointError::Corrupt { path: named, reason }) => {
                assert_eq!(named, path);
                assert!(reason.contains("delete it to start over"), "{reason}");
                assert!(reason.contains("may duplicate lines"), "{reason}");
                reason
            }
            other => panic!("expected Corrupt for {bytes:?}, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_inputs_name_the_line_and_the_recovery() {
        let header = "# pitcrew-follow checkpoint v1\n";
        assert!(corrupt(b"").contains("empty"));
        assert!(corrupt(b"# pitcrew-follow checkpoint v2\n").contains("version this build does not read"));
        assert!(corrupt(b"hello\n").contains("line 1: expected"));
        let garbage = corrupt(b"\x00\xff\xfe\x80binary garbage\n");
        assert!(
            garbage.contains("line 1") && garbage.contains("not text"),
            "{garbage}"
        );
        let cut = corrupt(format!("{header}1 2 5 00000000000000aa 9 /a\n1 2 5 0000").as_bytes());
        assert!(
            cut.contains("line 3") && cut.contains("middle of a line"),
            "{cut}"
        );
        let short = corrupt(format!("{header}1 2 5\n").as_bytes());
        assert!(short.contains("line 2: missing the fingerprint hash"), "{short}");
        let huge = corrupt(format!("{header}1 2 5 00000000000000aa 99999999999999999999999 /a\n").as_bytes());
        assert!(
            huge.contains("line 2: the offset") && huge.contains("below 2^64"),
            "{huge}"
        );
        let negative = corrupt(format!("{header}-1 2 5 00000000000000aa 9 /a\n").as_bytes());
        assert!(negative.contains("the device \"-1\""), "{negative}");
        let long_fp = corrupt(format!("{header}1 2 1025 00000000000000aa 9 /a\n").as_bytes());
        assert!(long_fp.contains("over the maximum 1024"), "{long_fp}");
        let hash = corrupt(format!("{header}1 2 5 xyz 9 /a\n").as_bytes());
        assert!(hash.contains("not 16 hex digits"), "{hash}");
        let escape = corrupt(format!("{header}1 2 5 00000000000000aa 9 /a\\q\n").as_bytes());
        assert!(escape.contains("unknown escape"), "{escape}");
        let no_path = corrupt(format!("{header}1 2 5 00000000000000aa 9\n").as_bytes());
        assert!(no_path.contains("missing the path"), "{no_path}");
        let long = corrupt(format!("{header}{} 2 5 00000000000000aa 9 /a\n", "9".repeat(10_000)).as_bytes());
        assert!(
            long.len() < 400,
            "a long field is shortened in the message: {long}"
        );
    }

    #[test]
    fn comments_and_blank_lines_are_allowed() {
        let parsed = Checkpoint::parse(b"# pitcrew-follow checkpoint v1\n\n# note\n").unwrap();
        assert!(parsed.entries.is_empty());
    }

    #[test]
    fn an_unreadable_checkpoint_is_not_called_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading fails with an I/O error.
        match Checkpoint::load(dir.path()) {
            Err(CheckpointError::Unreadable { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }
}
