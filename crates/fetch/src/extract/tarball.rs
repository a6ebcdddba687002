//! Reading tar streams (plain, gzip, zstd) entry by entry into the staging directory. The tar
//! crate parses headers (ustar, GNU long names, PAX); it never writes anything itself.

use std::io::{self, Read};
use std::rc::Rc;

use tar::EntryType;

use super::names::{self, printable};
use super::readers::{Meter, Metered};
use super::staging::{FileMeta, Staging};
use super::{Blame, ExtractError};

/// What the tar reader may pull in on its own between two entries: headers, padding, GNU
/// long names and PAX records, which it reads whole into memory.
const HEADER_ALLOWANCE: u64 = 16 * 1024 * 1024;

/// What is read after the end-of-archive marker, so that a gzip or zstd trailer (its CRC or
/// checksum) is checked; GNU tar pads to 10 KiB records. Past this, the rest is not read.
const TRAILER_ALLOWANCE: u64 = 1024 * 1024;

/// Unpacks the tar stream `reader` (already decompressed) into `staging`.
pub(crate) fn unpack<R: Read>(
    reader: R,
    staging: &mut Staging<'_>,
    blame: &Blame,
) -> Result<(), ExtractError> {
    let meter = Rc::new(Meter::default());
    let mut archive = tar::Archive::new(Metered::new(reader, Rc::clone(&meter)));
    let read_error = |err: io::Error| {
        if meter.hit() {
            ExtractError::Unsafe {
                entry: "(tar headers)".into(),
                why: format!(
                    "an entry's headers (long name or PAX records) are larger than {} MiB",
                    HEADER_ALLOWANCE >> 20
                ),
            }
        } else {
            blame.read_error(err)
        }
    };
    meter.allow(HEADER_ALLOWANCE);
    {
        let mut entries = archive.entries().map_err(read_error)?;
        let mut count = 0_u64;
        loop {
            meter.allow(HEADER_ALLOWANCE);
            count += 1;
            match entries.next() {
                None => break,
                Some(Ok(entry)) => unpack_entry(entry, staging, &meter, &read_error)?,
                Some(Err(err)) => {
                    return Err(match read_error(err) {
                        ExtractError::Corrupt { format, why } => ExtractError::Corrupt {
                            format,
                            why: format!("cannot read the header of entry {count}: {why}"),
                        },
                        other => other,
                    });
                }
            }
        }
    }
    // Read on to the end of the compressed stream (a little), so that a damaged trailer or a
    // CRC mismatch is found; a plain tar has none, and reading it costs a read of the rest.
    if blame.format != super::Format::Tar {
        meter.allow(TRAILER_ALLOWANCE);
        let mut rest = archive.into_inner();
        let mut sink = [0; 8192];
        loop {
            match rest.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if meter.hit() => break,
                Err(err) => return Err(blame.read_error(err)),
            }
        }
        let _ = rest.into_inner();
    }
    Ok(())
}

/// Judges one entry and writes it into `staging`.
fn unpack_entry<R: Read>(
    mut entry: tar::Entry<'_, R>,
    staging: &mut Staging<'_>,
    meter: &Meter,
    read_error: &dyn Fn(io::Error) -> ExtractError,
) -> Result<(), ExtractError> {
    let name = entry.path_bytes().into_owned();
    staging.entry(&name)?;
    let kind = entry.header().entry_type();
    let refuse = |why: String| ExtractError::Unsafe {
        entry: printable(&name),
        why,
    };
    let size = entry.size();
    meter.allow(
        entry
            .header()
            .entry_size()
            .unwrap_or(size)
            .saturating_add(HEADER_ALLOWANCE),
    );
    if kind.is_pax_global_extensions() {
        // Global PAX records (`git archive` writes the commit id in one): nothing to make.
        // The reader skips its data, within the allowance.
        tracing::debug!(entry = %printable(&name), "pax global header skipped");
        return Ok(());
    }
    let Some(relative) = names::entry_path(&name, false).map_err(refuse)? else {
        // `./`: the destination itself, whose mode and owner are not the archive's.
        return Ok(());
    };
    let mode = entry.header().mode().map_err(read_error)?;
    let mtime = entry.header().mtime().ok();
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            let meta = FileMeta {
                mode: Some(mode),
                mtime,
                declared: Some(size),
            };
            staging.file(&name, &relative, meta, &mut entry, read_error)
        }
        EntryType::Directory => {
            drain(&mut entry, size, staging, &name, read_error)?;
            staging.directory(&name, &relative, Some(mode), mtime)
        }
        EntryType::Symlink | EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .map(std::borrow::Cow::into_owned)
                .ok_or_else(|| refuse("link without a target".into()))?;
            drain(&mut entry, size, staging, &name, read_error)?;
            if kind == EntryType::Symlink {
                staging.symlink(&name, &relative, &target)
            } else {
                staging.hard_link(&name, &relative, &target)
            }
        }
        EntryType::Char | EntryType::Block => Err(refuse("device node: never created".into())),
        EntryType::Fifo => Err(refuse("FIFO (named pipe): never created".into())),
        other => Err(refuse(format!(
            "entry of type {:?} ({other:?}): only files, directories and links are extracted",
            char::from(other.as_byte()),
        ))),
    }
}

/// Reads and drops the data of an entry that should have none (a directory or link with a
/// size), so that the tar reader never skips unmetered data, counting it against `max_bytes`.
fn drain(
    entry: &mut dyn Read,
    size: u64,
    staging: &Staging<'_>,
    name: &[u8],
    read_error: &dyn Fn(io::Error) -> ExtractError,
) -> Result<(), ExtractError> {
    if size == 0 {
        return Ok(());
    }
    staging.check_declared_bytes(name, size)?;
    let mut buffer = [0; 8192];
    let mut since_check = 0;
    loop {
        match entry.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => {
                since_check += read;
                if since_check >= 4 << 20 {
                    since_check = 0;
                    staging.check_stop()?;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(read_error(err)),
        }
    }
}
