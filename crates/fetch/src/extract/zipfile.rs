//! Reading a zip archive (stored and deflate entries) into the staging directory. The zip crate
//! parses the central directory and decompresses; every name and kind is judged here.

use std::io::{self, Read};

use zip::read::ZipFileEntry;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive, ZipReadOptions};

use super::names::{self, printable};
use super::readers::Source;
use super::staging::{FileMeta, Staging};
use super::{Blame, ExtractError};

/// File-type bits of a Unix mode.
const TYPE_MASK: u32 = 0o170_000;
const TYPE_REGULAR: u32 = 0o100_000;
const TYPE_DIRECTORY: u32 = 0o040_000;
const TYPE_SYMLINK: u32 = 0o120_000;

/// The longest symlink target read from an entry (Linux's PATH_MAX).
const MAX_TARGET: u64 = 4096;

/// Unpacks the zip archive `source` into `staging`.
pub(crate) fn unpack(source: Source, staging: &mut Staging<'_>, blame: &Blame) -> Result<(), ExtractError> {
    let zip_error = |err: ZipError| match err {
        ZipError::Io(err) => blame.read_error(err),
        other => ExtractError::Corrupt {
            format: "zip",
            why: other.to_string(),
        },
    };
    let mut archive = ZipArchive::new(source).map_err(zip_error)?;
    staging.check_entry_count(archive.len() as u64)?;
    if archive.has_duplicate_names() {
        return Err(ExtractError::Unsafe {
            entry: "(central directory)".into(),
            why: "the archive lists a name twice (duplicates are refused: extractors disagree on which one wins)"
                .into(),
        });
    }
    if let Some(total) = archive.decompressed_size() {
        staging.check_declared_bytes(b"(whole archive)", u64::try_from(total).unwrap_or(u64::MAX))?;
    }
    for index in 0..archive.len() {
        // Names and kinds first, from the central directory, before any data is read.
        let Described {
            name,
            kind,
            mode,
            mtime,
            size,
        } = describe(&archive.by_index_data(index).map_err(zip_error)?, staging)?;
        let Some(relative) = names::entry_path(&name, true).map_err(|why| ExtractError::Unsafe {
            entry: printable(&name),
            why,
        })?
        else {
            continue;
        };
        if kind == Kind::Directory {
            staging.directory(&name, &relative, mode, mtime)?;
            continue;
        }
        // Local header checked against the central directory: a name that differs between
        // them shows one file to one tool and another to the next.
        let options = ZipReadOptions::new().enforce_header_consistency(true);
        let mut file = archive.by_index_with_options(index, options).map_err(zip_error)?;
        let read_error = |err: io::Error| blame.read_error(err);
        if kind == Kind::Symlink {
            let mut target = Vec::new();
            (&mut file)
                .take(MAX_TARGET + 1)
                .read_to_end(&mut target)
                .map_err(read_error)?;
            if target.len() as u64 > MAX_TARGET {
                return Err(ExtractError::Unsafe {
                    entry: printable(&name),
                    why: format!("symlink target longer than {MAX_TARGET} bytes"),
                });
            }
            staging.symlink(&name, &relative, &target)?;
        } else {
            let meta = FileMeta {
                mode,
                mtime,
                declared: Some(size),
            };
            staging.file(&name, &relative, meta, &mut file, &read_error)?;
        }
    }
    Ok(())
}

/// What the central directory says of an entry, once judged.
struct Described {
    name: Vec<u8>,
    kind: Kind,
    mode: Option<u32>,
    mtime: Option<u64>,
    size: u64,
}

/// Reads an entry's name, kind, mode and time, refusing encrypted entries, compression
/// methods other than stored and deflate, and special files.
fn describe(entry: &ZipFileEntry<'_>, staging: &mut Staging<'_>) -> Result<Described, ExtractError> {
    let name = match entry.name() {
        Ok(name) => name.into_owned().into_bytes(),
        Err(_) => entry.name_raw().to_vec(),
    };
    staging.entry(&name)?;
    let refuse = |why: String| ExtractError::Unsafe {
        entry: printable(&name),
        why,
    };
    if entry.encrypted() {
        return Err(refuse(
            "encrypted entry: encrypted zip archives are not supported".into(),
        ));
    }
    let method = entry.compression();
    if !matches!(method, CompressionMethod::Stored | CompressionMethod::Deflated) {
        return Err(refuse(format!(
            "compression method {method}: only stored and deflate entries are supported"
        )));
    }
    let unix = entry.unix_mode();
    let kind = match unix.map(|mode| mode & TYPE_MASK) {
        _ if entry.is_dir() => Kind::Directory,
        Some(TYPE_DIRECTORY) => Kind::Directory,
        Some(TYPE_SYMLINK) => Kind::Symlink,
        None | Some(0 | TYPE_REGULAR) => Kind::File,
        Some(other) => {
            return Err(refuse(format!(
                "{}: never created",
                match other {
                    0o010_000 => "FIFO (named pipe)",
                    0o020_000 | 0o060_000 => "device node",
                    0o140_000 => "socket",
                    _ => "unknown file type",
                }
            )));
        }
    };
    let mtime = entry.last_modified().and_then(|time| {
        epoch_seconds(
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second(),
        )
    });
    Ok(Described {
        mode: unix.map(|mode| mode & 0o7777),
        size: entry.size(),
        name,
        kind,
        mtime,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Symlink,
}

/// Seconds since the epoch for a zip (MS-DOS) time, which has no time zone: read as UTC, so
/// that a re-run gives the same mtimes wherever it runs.
fn epoch_seconds(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), for years from 1980 on.
    let (year, month, day) = (i64::from(year), i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_become_epoch_seconds() {
        assert_eq!(epoch_seconds(1980, 1, 1, 0, 0, 0), Some(315_532_800));
        assert_eq!(epoch_seconds(2024, 2, 29, 12, 30, 2), Some(1_709_209_802));
        assert_eq!(epoch_seconds(2024, 0, 1, 0, 0, 0), None);
    }
}
