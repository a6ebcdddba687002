//! The byte streams extraction reads: the archive file (remembering whether the file itself
//! failed, so that an I/O error is not reported as a corrupt archive), a meter that bounds how
//! much a tar reader may pull in between two entries, and a zstd reader for streams of several
//! frames.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::rc::Rc;

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// The archive file; a failed read sets the shared flag.
#[derive(Debug)]
pub(crate) struct Source {
    file: File,
    failed: Rc<Cell<bool>>,
}

impl Source {
    pub(crate) fn new(file: File) -> Self {
        Source {
            file,
            failed: Rc::default(),
        }
    }

    /// The flag a failed read of the file sets.
    pub(crate) fn failed(&self) -> Rc<Cell<bool>> {
        Rc::clone(&self.failed)
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf).inspect_err(|err| {
            if err.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

impl Seek for Source {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.file.seek(position).inspect_err(|_| self.failed.set(true))
    }
}

/// How far a [`Metered`] reader may read: the tar driver sets the limit before each step so
/// that what the tar crate reads into memory on its own (GNU long names, PAX headers, read
/// whole) stays small however large the archive says they are.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    consumed: Cell<u64>,
    limit: Cell<u64>,
    hit: Cell<bool>,
}

impl Meter {
    /// Allows `bytes` more from here.
    pub(crate) fn allow(&self, bytes: u64) {
        self.limit.set(self.consumed.get().saturating_add(bytes));
    }

    /// Bytes read so far.
    #[cfg(test)]
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.get()
    }

    /// Whether a read was refused because the limit was reached.
    pub(crate) fn hit(&self) -> bool {
        self.hit.get()
    }
}

/// A reader that stops at its [`Meter`]'s limit with an error.
pub(crate) struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, meter: Rc<Meter>) -> Self {
        Metered { inner, meter }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.meter.limit.get().saturating_sub(self.meter.consumed.get());
        if left == 0 && !buf.is_empty() {
            self.meter.hit.set(true);
            return Err(io::Error::other("read limit of the archive reader reached"));
        }
        let wanted = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..wanted])?;
        self.meter.consumed.set(self.meter.consumed.get() + read as u64);
        Ok(read)
    }
}

/// A zstd decoder for a stream of one or more frames (`zstd` writes one; concatenated files
/// and `pzstd` make several), skipping skippable frames and checking each frame's checksum.
pub(crate) struct Zstd<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
    frames: u64,
}

impl<R: BufRead> Zstd<R> {
    pub(crate) fn new(source: R) -> Self {
        Zstd {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
            frames: 0,
        }
    }

    /// Starts the next frame; `false` at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                if self.frames == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file holds no zstd frame",
                    ));
                }
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => {
                    self.frames += 1;
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(&mut (&mut self.source).take(u64::from(length)), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the stream ends inside a skippable frame",
                        ));
                    }
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::BadMagicNumber(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        if self.frames == 0 {
                            "not zstd data (no zstd magic number at the start)"
                        } else {
                            "data after the last zstd frame is not a zstd frame"
                        },
                    ));
                }
                Err(err) => return Err(self.decode_error(err)),
            }
        }
    }

    /// A decoding error, said plainly when the cause is the stream ending inside a frame.
    fn decode_error(&mut self, err: FrameDecoderError) -> io::Error {
        if self.source.fill_buf().is_ok_and(<[u8]>::is_empty) {
            return io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zstd stream ends inside a frame (truncated?)",
            );
        }
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    /// After a frame's last byte: its checksum, when it carries one.
    fn check_frame(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(expected), Some(computed)) if expected != computed => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("zstd frame checksum mismatch (stored {expected:08x}, computed {computed:08x})"),
            )),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                if let Err(err) = self
                    .decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                {
                    return Err(self.decode_error(err));
                }
            }
            let read = self.decoder.read(buf)?;
            if read > 0 {
                return Ok(read);
            }
            self.check_frame()?;
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_stops_reads_at_its_limit() {
        let meter = Rc::new(Meter::default());
        let mut reader = Metered::new(&b"0123456789"[..], Rc::clone(&meter));
        meter.allow(4);
        let mut buf = [0; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        assert!(reader.read(&mut buf).is_err());
        assert!(meter.hit());
        meter.allow(100);
        assert_eq!(reader.read(&mut buf).unwrap(), 6);
        assert_eq!(meter.consumed(), 10);
    }

    #[test]
    fn zstd_reads_nothing_from_an_empty_stream_as_an_error() {
        let mut reader = Zstd::new(&b""[..]);
        assert!(reader.read(&mut [0; 8]).is_err());
        let mut reader = Zstd::new(&b"not zstd at all"[..]);
        assert_eq!(
            reader.read(&mut [0; 8]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
