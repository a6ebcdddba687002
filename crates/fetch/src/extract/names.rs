//! Judging the names an archive gives its entries and its symlinks' targets, lexically, before
//! anything is written: what may be created inside the destination and what is refused.
//!
//! Every check works on bytes, not on `Path`: `Path` silently drops `.` and trailing slashes
//! and on some platforms reads `\` as a separator, and what is judged must be exactly what the
//! archive says.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// The name prefix of the staging directory inside the destination. An archive may not
/// create a top-level entry of that name: the next run would take it for a leftover.
pub(crate) const STAGING_PREFIX: &str = ".pitcrew-extract-";

/// The entry name as users read it in an error: lossy UTF-8 (an archive's names are bytes).
pub(crate) fn printable(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Where an entry named `raw` goes, relative to the destination: `Ok(None)` for the
/// destination itself (`./`, which tar writes first when made with `-C dir .`), an error
/// saying why for a name that is refused. `zip` adds the checks for names written on Windows.
pub(crate) fn entry_path(raw: &[u8], zip: bool) -> Result<Option<PathBuf>, String> {
    if raw.is_empty() {
        return Err("the entry has an empty name".into());
    }
    if raw.contains(&0) {
        return Err("the name holds a NUL byte".into());
    }
    if zip && raw.contains(&b'\\') {
        return Err(
            "backslash in a zip entry name: Windows tools read it as a directory separator \
             (so `..\\evil` climbs out there), so such names are refused"
                .into(),
        );
    }
    if zip && raw.len() >= 2 && raw[0].is_ascii_alphabetic() && raw[1] == b':' {
        return Err("the name starts with a Windows drive letter".into());
    }
    if raw[0] == b'/' {
        return Err(
            "absolute path: it would be written outside the destination (refused, not made \
             relative, so that nothing lands where the archive did not say)"
                .into(),
        );
    }
    let mut path = PathBuf::new();
    for component in raw.split(|&byte| byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                return Err("`..` component: it would climb out of the destination".into());
            }
            name => path.push(OsStr::from_bytes(name)),
        }
    }
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    if path.components().next().is_some_and(|first| {
        first
            .as_os_str()
            .as_bytes()
            .starts_with(STAGING_PREFIX.as_bytes())
    }) {
        return Err(format!(
            "a top-level name starting with {STAGING_PREFIX:?} is reserved for pitcrew's staging directory"
        ));
    }
    Ok(Some(path))
}

/// Whether a symlink at `link` (relative to the destination) pointing to `target` stays
/// inside the destination, judged lexically from the link's own directory: absolute targets
/// and `..` climbing above the destination are refused. Chains through other symlinks of the
/// archive are judged once everything is written (see `staging`).
pub(crate) fn symlink_target(link: &Path, target: &[u8]) -> Result<(), String> {
    let shown = printable(target);
    if target.is_empty() {
        return Err("the symlink has an empty target".into());
    }
    if target.contains(&0) {
        return Err("the symlink target holds a NUL byte".into());
    }
    if target[0] == b'/' {
        return Err(format!(
            "symlink to the absolute path {shown:?}: it points outside the destination"
        ));
    }
    // Components of the link's directory below the destination.
    let mut depth = link.components().count().saturating_sub(1);
    for component in target.split(|&byte| byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if depth == 0 {
                    return Err(format!(
                        "symlink to {shown:?}: its `..` climbs out of the destination"
                    ));
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Result<Option<String>, String> {
        entry_path(raw.as_bytes(), false).map(|path| path.map(|path| path.to_string_lossy().into_owned()))
    }

    #[test]
    fn plain_names_are_normalised() {
        assert_eq!(path("a/b/c.txt"), Ok(Some("a/b/c.txt".into())));
        assert_eq!(path("./a//b/./c/"), Ok(Some("a/b/c".into())));
        assert_eq!(path("./"), Ok(None));
        assert_eq!(path("."), Ok(None));
        assert_eq!(
            path("with space/ünïcödé ✓"),
            Ok(Some("with space/ünïcödé ✓".into()))
        );
        // A name that merely contains dots is a name.
        assert_eq!(path("..a/b.."), Ok(Some("..a/b..".into())));
        // Backslashes are ordinary bytes in a tar name.
        assert_eq!(path(r"a\b"), Ok(Some(r"a\b".into())));
    }

    #[test]
    fn escaping_names_are_refused_with_a_reason() {
        assert!(path("../evil").unwrap_err().contains("`..`"));
        assert!(path("a/../../evil").unwrap_err().contains("`..`"));
        // Even `a/..`, which stays inside: no tool agrees on what it means after a symlink.
        assert!(path("a/../b").is_err());
        assert!(path("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(path("").unwrap_err().contains("empty"));
        assert!(entry_path(b"a\0b", false).unwrap_err().contains("NUL"));
        assert!(path(".pitcrew-extract-1/x").unwrap_err().contains("reserved"));
        assert_eq!(
            path("a/.pitcrew-extract-1"),
            Ok(Some("a/.pitcrew-extract-1".into()))
        );
    }

    #[test]
    fn zip_names_from_windows_are_suspicious() {
        assert!(entry_path(br"..\evil", true).unwrap_err().contains("backslash"));
        assert!(entry_path(br"dir\file", true).is_err());
        assert!(entry_path(b"C:/Windows/x", true).unwrap_err().contains("drive"));
        assert!(entry_path(b"C:x", true).is_err());
        assert!(entry_path(b"C:x", false).is_ok());
        assert!(entry_path(b"ok/name.txt", true).unwrap().is_some());
    }

    #[test]
    fn symlink_targets_are_judged_from_the_link_directory() {
        let link = Path::new("a/b/link");
        assert!(symlink_target(link, b"../../top").is_ok());
        assert!(symlink_target(link, b"./x/../../y").is_ok());
        assert!(
            symlink_target(link, b"../../../out")
                .unwrap_err()
                .contains("climbs out")
        );
        assert!(symlink_target(Path::new("link"), b"..").is_err());
        assert!(symlink_target(Path::new("link"), b"a/../..").is_err());
        assert!(
            symlink_target(Path::new("link"), b"/etc")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(symlink_target(Path::new("link"), b"").is_err());
        assert!(symlink_target(Path::new("link"), b"sibling").is_ok());
        assert!(symlink_target(Path::new("link"), b".").is_ok());
    }
}
