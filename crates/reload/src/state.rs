//! The state file (`--state-file`): the content hash last applied, kept across restarts so a
//! restarted sidecar does not reload the app again for nothing.
//!
//! The format is versioned text, one line that says what it is, so that a person reading the
//! emptyDir understands it and a future format can be told apart:
//!
//! ```text
//! pitcrew-reload state v1 sha256:1a2b…(64 hex digits)
//! ```
//!
//! It is written atomically (`pitcrew_core::files::AtomicFile`): a crash leaves the old state
//! or the new one. Reading never fails the sidecar: a missing file is the first start; anything
//! else that is not exactly a state line (empty, truncated, garbage, another version, a huge
//! file) is warned about and ignored, which at worst costs one unneeded reload.

use std::io::{Read as _, Write as _};
use std::path::Path;

use pitcrew_core::files::{AtomicFile, FileError, WriteOptions};

/// The start of a state line in this format version.
const PREFIX: &str = "pitcrew-reload state v1 sha256:";
/// A state file is one short line; more than this is not one (only this much is read).
const MAX_BYTES: u64 = 4096;

/// Reads the hash (hex) last applied, if the file holds a valid one; warns about anything else.
pub fn read(path: &Path) -> Option<String> {
    match read_checked(path) {
        Ok(hash) => hash,
        Err(why) => {
            tracing::warn!(
                path = %path.display(),
                "state file {}: {why}; ignored (the next change, or --initial, reloads and rewrites it)",
                path.display()
            );
            None
        }
    }
}

/// The hash in the file, `None` when there is no file yet, or why the file is unusable.
fn read_checked(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(format!(
                "cannot read it: {}",
                pitcrew_core::io_error::describe(&err)
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read it: {}", pitcrew_core::io_error::describe(&err)))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "larger than {MAX_BYTES} bytes, so not a pitcrew-reload state file"
        ));
    }
    parse(&bytes).map(Some)
}

/// The hash in a state file's bytes.
fn parse(bytes: &[u8]) -> Result<String, String> {
    let expected = format!("expected one line `{PREFIX}<64 hex digits>`");
    let text = std::str::from_utf8(bytes).map_err(|_| format!("not text; {expected}"))?;
    let line = text.trim();
    if line.is_empty() {
        return Err(format!("empty; {expected}"));
    }
    let shown: String = line.chars().take(60).collect();
    let Some(hex) = line.strip_prefix(PREFIX) else {
        return Err(format!("unknown content {shown:?}; {expected}"));
    };
    let valid = hex.len() == 64 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if !valid {
        return Err(format!("corrupt hash in {shown:?}; {expected}"));
    }
    Ok(hex.to_owned())
}

/// Writes `hash` (hex) atomically.
pub fn write(path: &Path, hash: &str) -> Result<(), FileError> {
    let mut file = AtomicFile::create(path, WriteOptions::default())?;
    writeln!(file, "{PREFIX}{hash}").map_err(|err| FileError::output(path, "write", err))?;
    file.commit()?;
    Ok(())
}

/// Checks at start that the state file can be written (its directory exists and is writable,
/// it is not a directory), by creating the temporary file a write would use and removing it.
pub fn check_writable(path: &Path) -> Result<(), FileError> {
    AtomicFile::create(path, WriteOptions::default()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn written_state_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert_eq!(read(&path), None, "no file yet");
        check_writable(&path).unwrap();
        assert!(!path.exists(), "the check leaves nothing behind");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write(&path, HASH).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("pitcrew-reload state v1 sha256:{HASH}\n")
        );
        assert_eq!(read(&path).as_deref(), Some(HASH));
        // Rewritten in place, still one line.
        let other = HASH.replace('0', "f");
        write(&path, &other).unwrap();
        assert_eq!(read(&path), Some(other));
    }

    #[test]
    fn corrupt_files_are_ignored_with_a_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "empty"),
            (b"\n  \n".to_vec(), "empty"),
            (b"pitcrew-reload state v1 sha256:".to_vec(), "corrupt hash"),
            (
                format!("pitcrew-reload state v1 sha256:{}", &HASH[..63]).into_bytes(),
                "corrupt hash",
            ),
            (
                format!("pitcrew-reload state v1 sha256:{}", HASH.to_uppercase()).into_bytes(),
                "corrupt hash",
            ),
            (
                format!("pitcrew-reload state v1 sha256:{HASH}0").into_bytes(),
                "corrupt hash",
            ),
            (
                format!("pitcrew-reload state v2 sha256:{HASH}").into_bytes(),
                "unknown content",
            ),
            (HASH.as_bytes().to_vec(), "unknown content"),
            (vec![0xff, 0xfe, 0, 1], "not text"),
            (b"\0\0\0\0".to_vec(), "unknown content"),
            (vec![b'x'; 4097], "larger than 4096 bytes"),
            (
                format!("pitcrew-reload state v1 sha256:{HASH}\nmore").into_bytes(),
                "corrupt hash",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        for (bytes, wanted) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let err = read_checked(&path).unwrap_err();
            assert!(err.contains(wanted), "{bytes:?}: {err}");
            assert_eq!(read(&path), None);
        }
    }

    #[test]
    fn a_huge_state_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // Sparse: 1 TiB would not fit in memory if it were read.
        std::fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let err = read_checked(&path).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn a_directory_in_place_of_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_checked(dir.path()).unwrap_err();
        assert!(err.contains("cannot read it"), "{err}");
        let err = check_writable(dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::Io, "{err}");
        let missing = dir.path().join("no-such-dir/state");
        let err = check_writable(&missing).unwrap_err();
        assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::Io, "{err}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }
}
