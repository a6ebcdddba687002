//! `file:///path`: ready when the file exists (and, with `--file-non-empty`, has content).
//!
//! Used for hand-offs between containers through a shared volume: another init container or
//! a sidecar writes the file when its work is done.

use std::io::ErrorKind;
use std::path::Path;

use super::{NotReady, describe_io};

/// Ready when `path` exists; with `non_empty`, when it is a file of at least one byte or a
/// directory with at least one entry.
pub async fn check(path: &Path, non_empty: bool) -> Result<(), NotReady> {
    let metadata = match tokio::fs::metadata(path).await {
        Ok(metadata) => metadata,
        // Gone, as far as `--invert` is concerned.
        Err(err) if err.kind() == ErrorKind::NotFound => return Err(NotReady::unreachable("does not exist")),
        Err(err) => return Err(NotReady::unknown(format!("cannot stat: {}", describe_io(&err)))),
    };
    if !non_empty {
        return Ok(());
    }
    if metadata.is_dir() {
        let mut entries = tokio::fs::read_dir(path)
            .await
            .map_err(|err| NotReady::unknown(format!("cannot list directory: {}", describe_io(&err))))?;
        return match entries.next_entry().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(NotReady::present("directory is empty")),
            Err(err) => Err(NotReady::unknown(format!(
                "cannot list directory: {}",
                describe_io(&err)
            ))),
        };
    }
    if metadata.len() == 0 {
        return Err(NotReady::present("exists but is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_empty_and_full_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        assert_eq!(check(&path, false).await.unwrap_err().reason, "does not exist");
        std::fs::write(&path, "").unwrap();
        check(&path, false).await.unwrap();
        assert_eq!(
            check(&path, true).await.unwrap_err().reason,
            "exists but is empty"
        );
        std::fs::write(&path, "done\n").unwrap();
        check(&path, true).await.unwrap();
    }

    #[tokio::test]
    async fn directories_are_non_empty_when_they_hold_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            check(dir.path(), true).await.unwrap_err().reason,
            "directory is empty"
        );
        check(dir.path(), false).await.unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        check(dir.path(), true).await.unwrap();
    }
}
