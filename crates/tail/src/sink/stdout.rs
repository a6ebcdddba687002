//! The stdout sink: what `kubectl logs POD -c SIDECAR` shows.
//!
//! Two ways in. The raw path ([`HeaderWriter`]), taken when stdout is the only sink, the output
//! is raw and nothing is parsed or joined, writes the follower's chunks as they are, with no
//! per-line work at all: that is what keeps pace with GNU tail. Everything else goes through
//! [`StdoutSink`] like any sink (raw messages or JSON records, batched by the worker).
//!
//! Writes block the task: stdout is the container runtime's pipe, and when it is full there is
//! nothing better to do than wait (which pauses reading, the backpressure every sink has).
//! `==> path <==` headers come before lines when the file changes, as GNU and busybox tail
//! print them (`-v` always, `-q` never, by default when more than one file may be followed).

use std::io::{self, Write as _};

use pitcrew_follow::Chunk;

use super::{Delivery, SendError, Sink};
use crate::OutputFormat;
use crate::encode::{self, EncodeContext};
use crate::record::Record;

/// Writes `==> path <==` before lines when the file they come from changes.
#[derive(Debug)]
pub struct HeaderWriter {
    headers: bool,
    last_file: Option<u64>,
}

impl HeaderWriter {
    /// A writer that prints headers when `headers` is true.
    pub fn new(headers: bool) -> Self {
        HeaderWriter {
            headers,
            last_file: None,
        }
    }

    /// Appends the header for the file with `id` and `path` to `out` if it differs from the
    /// last one (GNU's format: a blank line before every header but the first).
    pub fn header(&mut self, id: u64, path: &std::path::Path, out: &mut Vec<u8>) {
        if !self.headers || self.last_file == Some(id) {
            return;
        }
        if self.last_file.is_some() {
            out.push(b'\n');
        }
        out.extend_from_slice(b"==> ");
        out.extend_from_slice(path.as_os_str().as_encoded_bytes());
        out.extend_from_slice(b" <==\n");
        self.last_file = Some(id);
    }

    /// The raw path: writes a chunk (complete lines) to stdout as it is.
    pub fn write_chunk(&mut self, chunk: &Chunk) -> io::Result<()> {
        let mut header = Vec::new();
        self.header(chunk.file.id, &chunk.file.path, &mut header);
        let mut stdout = io::stdout().lock();
        stdout.write_all(&header)?;
        stdout.write_all(&chunk.data)
    }

    /// Flushes stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// Stdout as a sink: raw messages (one per line; a multiline group keeps its newlines) or
/// JSON records, one per line.
#[derive(Debug)]
pub struct StdoutSink {
    format: OutputFormat,
    headers: HeaderWriter,
    buffer: Vec<u8>,
}

impl StdoutSink {
    /// A sink writing `format`, with `==> path <==` headers in raw output when `headers`.
    pub fn new(format: OutputFormat, headers: bool) -> Self {
        StdoutSink {
            format,
            headers: HeaderWriter::new(headers && format == OutputFormat::Raw),
            buffer: Vec::new(),
        }
    }

    /// Encodes `records` into the internal buffer (what [`Sink::send`] writes).
    fn encode(&mut self, records: &[Record], context: &EncodeContext) {
        self.buffer.clear();
        for record in records {
            match self.format {
                OutputFormat::Raw => {
                    self.headers
                        .header(record.source.id, &record.source.path, &mut self.buffer);
                    self.buffer.extend_from_slice(&record.message);
                }
                OutputFormat::Json => encode::json_record(record, context, &mut self.buffer),
            }
            self.buffer.push(b'\n');
        }
    }
}

impl StdoutSink {
    /// Encodes `records` and writes them to stdout (the pipeline's stdout-only path);
    /// returns the bytes written.
    pub fn write_records(&mut self, records: &[Record], context: &EncodeContext) -> io::Result<usize> {
        self.encode(records, context);
        io::stdout().lock().write_all(&self.buffer)?;
        Ok(self.buffer.len())
    }
}

impl Sink for StdoutSink {
    async fn send(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        self.encode(records, context);
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(&self.buffer)
            .and_then(|()| stdout.flush())
            .map(|()| Delivery::All)
            .map_err(|err| SendError {
                message: format!("stdout: cannot write: {err}"),
                retry_after: None,
            })
    }
}
