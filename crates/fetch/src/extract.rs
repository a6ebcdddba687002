//! Unpacking a verified archive (tar, tar.gz, tar.zst, zip) into a directory, refusing any entry
//! that would land outside it, and all or nothing.
//!
//! Hostile archives are assumed. Refused (the whole archive, naming the entry and why):
//! names with `..` components or absolute paths (refused, not stripped), symlinks whose target
//! is absolute or climbs out of the destination (judged from the link's own directory, and
//! again through the archive's other symlinks once all are written), hard links to anything
//! but a regular file written earlier in the archive, entries written through a symlink of
//! the archive (`link -> /etc`, then `link/passwd`), device nodes, FIFOs and sockets, zip names
//! with backslashes or drive letters, duplicate names, and archives over `max_entries` entries
//! or `max_bytes` bytes unpacked. Set-user-ID, set-group-ID and sticky bits are never applied;
//! ownership in the archive is never applied.
//!
//! All or nothing: entries are written into a hidden staging directory inside the
//! destination (the destination is often a volume mount point, which cannot be renamed); only
//! when every entry is written and flushed are the top-level entries renamed into place. A
//! top-level entry already in the destination is replaced, a directory as a whole (a re-run
//! replaces the tree, never merges into it); everything else in the destination is left alone.
//! On any error or stop the staging directory is removed and the destination holds what it
//! held before. See `staging` for the moves.

mod names;
mod readers;
mod staging;
mod tarball;
mod zipfile;

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::{FileError, Mode, Owner};

use readers::{Source, Zstd};
use staging::Staging;

/// An archive format `--extract` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Uncompressed tar.
    Tar,
    /// gzip-compressed tar (`.tar.gz`, `.tgz`).
    TarGz,
    /// zstd-compressed tar (`.tar.zst`).
    TarZst,
    /// zip.
    Zip,
}

/// How many leading bytes [`Format::sniff`] needs to recognise every format (tar's magic is at
/// offset 257).
pub const SNIFF_LEN: usize = 512;

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 4] = [Format::Tar, Format::TarGz, Format::TarZst, Format::Zip];

    /// The format the first bytes of a file show (magic numbers), if any. A gzip or zstd
    /// stream is taken for a compressed tar. Give it [`SNIFF_LEN`] bytes (fewer when the file
    /// is shorter): tar's magic is at offset 257.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::TarZst)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            // A local file header, or the end record alone: an empty zip.
            Some(Format::Zip)
        } else if head.get(257..262) == Some(b"ustar") {
            // POSIX "ustar\0" and GNU "ustar  " both start so.
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// [`sniff`](Self::sniff) on the first bytes of the file at `path`.
    pub fn sniff_file(path: &Path) -> Result<Option<Format>, FileError> {
        let fail = |err| FileError::input(path, "read", err);
        let mut head = Vec::with_capacity(SNIFF_LEN);
        File::open(path)
            .map_err(fail)?
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(fail)?;
        Ok(Format::sniff(&head))
    }

    /// The name `--extract` takes for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `tar`, `tar.gz` (or `tgz`), `tar.zst` (or `tzst`), `zip`; case does not matter.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "tar" => Ok(Format::Tar),
            "tar.gz" | "tgz" => Ok(Format::TarGz),
            "tar.zst" | "tzst" => Ok(Format::TarZst),
            "zip" => Ok(Format::Zip),
            _ => Err(format!(
                "invalid archive format {value:?}: expected tar, tar.gz (or tgz), tar.zst (or tzst) or zip"
            )),
        }
    }
}

/// Default for [`ExtractOptions::max_bytes`]: 10 GiB unpacked.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;

/// Default for [`ExtractOptions::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// What is applied to what extraction writes, and the limits against decompression bombs.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Mode for files (`--mode`); directories get it plus search bits where read is set.
    /// Its set-user-ID, set-group-ID and sticky bits are dropped: extraction never sets them.
    /// Without it, the archive's permission bits are kept less those bits and less group and
    /// other write (as umask 022); 0644 and 0755 when the archive has none (zips from Windows).
    pub mode: Option<Mode>,
    /// Owner for everything written (`--owner`, needs root or CAP_CHOWN). Owners recorded in
    /// the archive are never applied.
    pub owner: Option<Owner>,
    /// Most bytes of file content the archive may unpack to (what a zip declares is checked
    /// before anything is written, what is read while writing). Default [`DEFAULT_MAX_BYTES`].
    pub max_bytes: u64,
    /// Most entries the archive may hold. Default [`DEFAULT_MAX_ENTRIES`].
    pub max_entries: u64,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            mode: None,
            owner: None,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What was extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symbolic and hard links made.
    pub links: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Why an archive was not extracted. Nothing of it is left in the destination.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry would escape the destination or is of a refused kind, or the archive is over
    /// a limit (`max_bytes`, `max_entries`: the reason names the limit).
    #[error("refused archive entry {entry:?}: {why}")]
    Unsafe {
        /// The entry's name as stored in the archive (printable).
        entry: String,
        /// Why it was refused.
        why: String,
    },
    /// The archive is not a valid archive of its format.
    #[error("corrupt {format} archive: {why}")]
    Corrupt {
        /// The format it was read as.
        format: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Writing to the destination failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// Stopped by a signal before it finished.
    #[error("stopped before extraction finished")]
    Stopped,
}

impl ExtractError {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ExtractError::Unsafe { .. } | ExtractError::Corrupt { .. } | ExtractError::Stopped => {
                ExitCode::Failure
            }
            ExtractError::File(err) => err.exit_code(),
        }
    }
}

/// Who a failed read of the archive is blamed on: the file (an I/O error, exit 66) or its
/// content (corrupt).
#[derive(Debug)]
pub(crate) struct Blame {
    archive: PathBuf,
    format: Format,
    source_failed: Rc<Cell<bool>>,
}

impl Blame {
    fn read_error(&self, err: io::Error) -> ExtractError {
        if self.source_failed.get() {
            return ExtractError::File(FileError::input(&self.archive, "read", err));
        }
        let why = match err.kind() {
            io::ErrorKind::UnexpectedEof if err.get_ref().is_none() => {
                "the data ends too early (truncated?)".to_owned()
            }
            _ => err.to_string(),
        };
        ExtractError::Corrupt {
            format: self.format.as_str(),
            why,
        }
    }
}

/// Extracts `archive` (already downloaded and verified) read as `format` into `destination`,
/// checking `stop` between entries and every few MiB inside one. `destination` is created if
/// missing (and removed again if the extraction fails). See the module docs for what is
/// refused and how entries already in the destination are replaced.
pub fn extract(
    archive: &Path,
    format: Format,
    destination: &Path,
    options: &ExtractOptions,
    stop: &AtomicBool,
) -> Result<Extracted, ExtractError> {
    let file = File::open(archive).map_err(|err| FileError::input(archive, "read", err))?;
    let source = Source::new(file);
    let blame = Blame {
        archive: archive.to_owned(),
        format,
        source_failed: source.failed(),
    };
    let mut staging = Staging::open(destination, options, stop)?;
    match format {
        Format::Tar => tarball::unpack(source, &mut staging, &blame)?,
        Format::TarGz => tarball::unpack(
            flate2::read::MultiGzDecoder::new(BufReader::new(source)),
            &mut staging,
            &blame,
        )?,
        Format::TarZst => tarball::unpack(Zstd::new(BufReader::new(source)), &mut staging, &blame)?,
        Format::Zip => zipfile::unpack(source, &mut staging, &blame)?,
    }
    let extracted = staging.finish()?;
    tracing::debug!(
        archive = %archive.display(),
        destination = %destination.display(),
        files = extracted.files,
        directories = extracted.directories,
        links = extracted.links,
        bytes = extracted.bytes,
        "archive extracted"
    );
    Ok(extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_and_refuse_others_listing_the_accepted() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
        }
        assert_eq!("tgz".parse::<Format>(), Ok(Format::TarGz));
        assert_eq!("TAR.GZ".parse::<Format>(), Ok(Format::TarGz));
        assert_eq!("tzst".parse::<Format>(), Ok(Format::TarZst));
        let err = "rar".parse::<Format>().unwrap_err();
        assert!(
            err.contains("\"rar\"") && err.contains("tar.zst") && err.contains("zip"),
            "{err}"
        );
        assert!("".parse::<Format>().is_err());
        assert!("tar.xz".parse::<Format>().is_err());
    }

    #[test]
    fn sniffing_reads_magic_numbers() {
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::TarGz));
        assert_eq!(Format::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Format::TarZst));
        assert_eq!(Format::sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(Format::sniff(b"PK\x05\x06rest"), Some(Format::Zip));
        let mut tar = vec![0; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(Format::sniff(&tar), Some(Format::Tar));
        assert_eq!(Format::sniff(&tar[..260]), None);
        assert_eq!(Format::sniff(b"<html>404</html>"), None);
        assert_eq!(Format::sniff(b""), None);
        // xz and bzip2 are not supported.
        assert_eq!(Format::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), None);
        assert_eq!(Format::sniff(b"BZh91AY"), None);
    }

    #[test]
    fn default_limits_are_set() {
        let options = ExtractOptions::default();
        assert_eq!(options.max_bytes, 10 << 30);
        assert_eq!(options.max_entries, 1_000_000);
        assert!(options.mode.is_none() && options.owner.is_none());
    }
}
