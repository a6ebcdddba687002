//! The optional on-disk buffer (`--buffer-dir`): a per-sink spool of segment files that takes
//! records when the sink's in-memory queue is full, so reading goes on through an outage.
//!
//! Layout: `DIR/sink-<index>-<hash of the display name>/seg-<sequence>.spool`, one directory
//! per sink so two sinks never share a spool, and a renamed sink (another URL) does not replay
//! the old one's records. A segment is a run of records, each `u32 length | u64 checksum |
//! body` (little endian; the checksum is FNV-1a over the body), the body holding what a record
//! needs: source path and file identity, end offset, time, message and parsed fields (JSON).
//!
//! Rules the worker relies on:
//! - FIFO: once anything is spooled, later records of the sink go to the spool too until the
//!   worker has drained it, so lines stay in order per file.
//! - Durable, then acknowledged: every append is written and fsynced before the records are
//!   acknowledged; the checkpoint may pass them because the spool survives a restart.
//! - When records are spooled while the worker retries an in-memory batch, the worker moves
//!   that batch and everything queued in memory to a segment in front of the spool (they are
//!   older) and acknowledges them: so during an outage the checkpoint follows what is read,
//!   and a kill repeats no more than the unacknowledged tail.
//! - At start, segments a previous run left are replayed first; their records were
//!   acknowledged by that run and are not acknowledged again. A segment is deleted only once
//!   all its records are delivered (or dropped by policy), so a kill repeats at most one
//!   segment.
//! - A corrupt or cut-off segment (a crash during a write) yields the records before the
//!   damage; what was skipped is logged; nothing panics.
//! - `BufferConfig::max_bytes` caps all sinks' spools together (per directory); when reached,
//!   `push` waits (backpressure) as it does without a buffer.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
#[cfg(test)]
use std::time::SystemTime;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use pitcrew_follow::{FileInfo, FileKey, Fingerprint};

use super::BufferConfig;
use crate::TailError;
use crate::record::Record;

/// Bytes of a record's frame before its body: length and checksum.
const FRAME_HEADER: usize = 12;

/// The first segment number of a new spool: high, so segments can be put in front of the
/// oldest one ([`Spool::prepend`]) without renaming anything.
const FIRST_SEQUENCE: u64 = 1 << 40;

/// Per buffer directory, the bytes every sink's spool holds now (the cap is shared).
fn usage_of(dir: &Path) -> Arc<AtomicU64> {
    static USAGE: OnceLock<Mutex<HashMap<PathBuf, Arc<AtomicU64>>>> = OnceLock::new();
    let map = USAGE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(map.entry(dir.to_owned()).or_default())
}

/// A stable 64-bit FNV-1a hash (checksums, directory names).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One sink's spool.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// All spools' bytes in this buffer directory.
    usage: Arc<AtomicU64>,
    /// This spool's bytes.
    own_bytes: u64,
    /// Segments no longer written to, oldest first, with their sizes.
    closed: VecDeque<(PathBuf, u64)>,
    /// The segment being appended to, and its size.
    writing: Option<(PathBuf, u64)>,
    file: Option<File>,
    next_sequence: u64,
    /// The lowest segment number in use or used.
    lowest_sequence: u64,
    segment_max: u64,
    /// Records are (or are about to be) spooled: pushes go here until the worker drains it.
    pub(crate) active: bool,
    /// The worker delivers from the spool now: every in-memory record before it is done, so
    /// appends may be acknowledged at once.
    pub(crate) worker_reading: bool,
    /// Per file, the highest offset spooled but not acknowledged yet (records spooled while
    /// in-memory ones before them are still in flight).
    pub(crate) unacked: Vec<(Arc<FileInfo>, u64)>,
}

impl Spool {
    /// Opens (creating) the spool of the `index`-th sink named `name`, finding segments a
    /// previous run left. `segment_max` is the size at which a new segment is started.
    pub fn open(
        config: &BufferConfig,
        index: usize,
        name: &str,
        segment_max: u64,
    ) -> Result<Spool, TailError> {
        let dir = config.dir.join(format!(
            "sink-{index}-{:08x}",
            fnv1a(name.as_bytes()) & 0xffff_ffff
        ));
        let shown = dir.display().to_string();
        let problem = |what: &str, err: &io::Error| {
            TailError::Buffer(format!(
                "--buffer-dir: cannot {what} {shown}: {}",
                pitcrew_core::io_error::describe(err)
            ))
        };
        fs::create_dir_all(&dir).map_err(|err| problem("create", &err))?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|err| problem("list", &err))? {
            let entry = entry.map_err(|err| problem("list", &err))?;
            let file_name = entry.file_name();
            let Some(sequence) = file_name
                .to_str()
                .and_then(|name| name.strip_prefix("seg-"))
                .and_then(|name| name.strip_suffix(".spool"))
                .and_then(|number| number.parse::<u64>().ok())
            else {
                continue;
            };
            let size = entry.metadata().map_err(|err| problem("read", &err))?.len();
            segments.push((sequence, entry.path(), size));
        }
        segments.sort();
        let usage = usage_of(&config.dir);
        let own_bytes: u64 = segments.iter().map(|(_, _, size)| size).sum();
        usage.fetch_add(own_bytes, Ordering::SeqCst);
        if !segments.is_empty() {
            tracing::info!(
                "{shown}: {} spooled by an earlier run in {} segment(s); delivering them first",
                pitcrew_core::text::exact_size(own_bytes),
                segments.len()
            );
        }
        Ok(Spool {
            dir,
            max_bytes: config.max_bytes,
            usage,
            own_bytes,
            next_sequence: segments
                .last()
                .map_or(FIRST_SEQUENCE, |(sequence, _, _)| sequence + 1),
            lowest_sequence: segments
                .first()
                .map_or(FIRST_SEQUENCE, |(sequence, _, _)| *sequence),
            active: !segments.is_empty(),
            closed: segments.into_iter().map(|(_, path, size)| (path, size)).collect(),
            writing: None,
            file: None,
            segment_max: segment_max.max(1),
            worker_reading: false,
            unacked: Vec::new(),
        })
    }

    /// This spool's bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.own_bytes
    }

    /// Whether `bytes` more fit under the shared cap.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.usage.load(Ordering::SeqCst).saturating_add(bytes) <= self.max_bytes
    }

    /// Encodes `records` (for [`Spool::has_room`] and [`Spool::append`]).
    pub fn encode(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::with_capacity(records.iter().map(|r| r.approximate_size() + 64).sum());
        for record in records {
            encode_record(record, &mut out);
        }
        out
    }

    /// Writes `encoded` (from [`Spool::encode`]) and fsyncs it; remembers `records`' offsets
    /// as unacknowledged. Marks the spool active.
    pub async fn append(&mut self, encoded: Vec<u8>, records: &[Record]) -> io::Result<()> {
        let rotate = self
            .writing
            .as_ref()
            .is_none_or(|(_, size)| *size >= self.segment_max);
        if rotate {
            if let Some(done) = self.writing.take() {
                self.closed.push_back(done);
            }
            self.file = None;
            let path = self.dir.join(format!("seg-{:016}.spool", self.next_sequence));
            self.next_sequence += 1;
            self.writing = Some((path, 0));
        }
        let (path, _) = self.writing.clone().unwrap_or_default();
        let file = self.file.take();
        let dir = self.dir.clone();
        let length = encoded.len() as u64;
        let file = tokio::task::spawn_blocking(move || -> io::Result<File> {
            let mut file = if let Some(file) = file {
                file
            } else {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                // The new name must survive a crash too.
                File::open(&dir)?.sync_all()?;
                file
            };
            file.write_all(&encoded)?;
            file.sync_data()?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        self.file = Some(file);
        if let Some((_, size)) = &mut self.writing {
            *size += length;
        }
        self.own_bytes += length;
        self.usage.fetch_add(length, Ordering::SeqCst);
        self.active = true;
        super::worker::merge_offsets(&mut self.unacked, records);
        Ok(())
    }

    /// Writes `encoded` as a segment before every other one (the worker's in-memory records,
    /// which are older than anything spooled) and fsyncs it. Marks the spool active.
    pub async fn prepend(&mut self, encoded: Vec<u8>) -> io::Result<()> {
        let sequence = self.lowest_sequence.saturating_sub(1);
        let path = self.dir.join(format!("seg-{sequence:016}.spool"));
        let dir = self.dir.clone();
        let length = encoded.len() as u64;
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&write_path)?;
            file.write_all(&encoded)?;
            file.sync_data()?;
            File::open(&dir)?.sync_all()
        })
        .await
        .map_err(io::Error::other)??;
        self.lowest_sequence = sequence;
        self.closed.push_front((path, length));
        self.own_bytes += length;
        self.usage.fetch_add(length, Ordering::SeqCst);
        self.active = true;
        Ok(())
    }

    /// The oldest segment to deliver, closing the one being written when it is the only one
    /// left; `None` when the spool is empty.
    pub fn take_segment(&mut self) -> Option<(PathBuf, u64)> {
        if let Some(segment) = self.closed.pop_front() {
            return Some(segment);
        }
        let segment = self.writing.take().filter(|(_, size)| *size > 0)?;
        self.file = None;
        Some(segment)
    }

    /// A segment is delivered: deletes it.
    pub fn remove_segment(&mut self, path: &Path, size: u64) {
        if let Err(err) = fs::remove_file(path) {
            tracing::warn!(
                "cannot delete delivered buffer segment {}: {} (it will be delivered again after a restart)",
                path.display(),
                pitcrew_core::io_error::describe(&err)
            );
        }
        self.own_bytes = self.own_bytes.saturating_sub(size);
        self.usage
            .fetch_sub(size.min(self.usage.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
}

/// Appends one framed record.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    let path = record.source.path.as_os_str().as_encoded_bytes();
    put_bytes(out, path);
    let key = &record.source.key;
    for value in [
        key.dev,
        key.ino,
        u64::from(key.fingerprint.len),
        key.fingerprint.hash,
        record.end_offset,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let since = record.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    out.extend_from_slice(&since.as_secs().to_le_bytes());
    out.extend_from_slice(&since.subsec_nanos().to_le_bytes());
    put_bytes(out, &record.message);
    if record.fields.is_empty() {
        put_bytes(out, b"");
    } else {
        let fields: Vec<serde_json::Value> = record
            .fields
            .iter()
            .map(|(name, value)| serde_json::Value::Array(vec![name.clone().into(), value.clone()]))
            .collect();
        put_bytes(out, serde_json::Value::Array(fields).to_string().as_bytes());
    }
    let body = &out[start + FRAME_HEADER..];
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let checksum = fnv1a(body);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&checksum.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Gives replayed records their `FileInfo`s: one per distinct file, with ids that never
/// collide with the follower's (they count down from `u64::MAX`).
#[derive(Default)]
pub struct Files {
    known: HashMap<(PathBuf, FileKey), Arc<FileInfo>>,
}

impl Files {
    fn get(&mut self, path: PathBuf, key: FileKey) -> Arc<FileInfo> {
        let next_id = u64::MAX - self.known.len() as u64;
        Arc::clone(self.known.entry((path.clone(), key)).or_insert_with(|| {
            Arc::new(FileInfo {
                id: next_id,
                key,
                path,
            })
        }))
    }
}

/// Decodes a segment's bytes; the second value says what was skipped, when something was.
pub fn decode_records(data: &[u8], files: &mut Files) -> (Vec<Record>, Option<String>) {
    let mut records = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let damaged = |reason: &str| {
            Some(format!(
                "{reason} at byte {at}; skipped the last {} bytes",
                data.len() - at
            ))
        };
        let Some(header) = data.get(at..at + FRAME_HEADER) else {
            return (records, damaged("cut-off record header"));
        };
        let length = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let checksum = u64::from_le_bytes(header[4..].try_into().unwrap_or_default());
        let Some(body) = data.get(at + FRAME_HEADER..at + FRAME_HEADER + length) else {
            return (records, damaged("cut-off record"));
        };
        if fnv1a(body) != checksum {
            return (records, damaged("checksum mismatch"));
        }
        let Some(record) = decode_body(body, files) else {
            return (records, damaged("undecodable record"));
        };
        records.push(record);
        at += FRAME_HEADER + length;
    }
    (records, None)
}

fn decode_body(body: &[u8], files: &mut Files) -> Option<Record> {
    let mut reader = body;
    let path = path_from_bytes(take_bytes(&mut reader)?);
    let mut numbers = [0u64; 6];
    for number in &mut numbers {
        *number = u64::from_le_bytes(take(&mut reader, 8)?.try_into().ok()?);
    }
    let [dev, ino, fingerprint_len, fingerprint_hash, end_offset, secs] = numbers;
    let nanos = u32::from_le_bytes(take(&mut reader, 4)?.try_into().ok()?);
    let message = Bytes::copy_from_slice(take_bytes(&mut reader)?);
    let fields_json = take_bytes(&mut reader)?;
    let fields = if fields_json.is_empty() {
        Vec::new()
    } else {
        let serde_json::Value::Array(items) = serde_json::from_slice(fields_json).ok()? else {
            return None;
        };
        items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::Array(mut pair) if pair.len() == 2 => {
                    let value = pair.pop()?;
                    let name = pair.pop()?.as_str()?.to_owned();
                    Some((name, value))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
    };
    if !reader.is_empty() || nanos >= 1_000_000_000 {
        return None;
    }
    let key = FileKey {
        dev,
        ino,
        fingerprint: Fingerprint {
            len: u32::try_from(fingerprint_len).ok()?,
            hash: fingerprint_hash,
        },
    };
    Some(Record {
        source: files.get(path, key),
        end_offset,
        time: UNIX_EPOCH.checked_add(Duration::new(secs, nanos))?,
        message,
        fields,
    })
}

/// The bytes came from `as_encoded_bytes`, which on Unix are the path's bytes.
#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

fn take<'a>(reader: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    if reader.len() < count {
        return None;
    }
    let (head, tail) = reader.split_at(count);
    *reader = tail;
    Some(head)
}

fn take_bytes<'a>(reader: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = u32::from_le_bytes(take(reader, 4)?.try_into().ok()?) as usize;
    take(reader, length)
}

/// Reads a whole segment (blocking: call it through `spawn_blocking`).
pub fn read_segment(path: &Path) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn record(path: &str, offset: u64, message: &str, fields: Vec<(String, serde_json::Value)>) -> Record {
        Record {
            source: Arc::new(FileInfo {
                id: 1,
                key: FileKey {
                    dev: 7,
                    ino: 42,
                    fingerprint: Fingerprint {
                        len: 12,
                        hash: 0xdead_beef,
                    },
                },
                path: PathBuf::from(path),
            }),
            end_offset: offset,
            time: at(1_700_000_000, 123_456_789),
            message: Bytes::copy_from_slice(message.as_bytes()),
            fields,
        }
    }

    #[test]
    fn records_round_trip_with_odd_content() {
        let records = vec![
            record("/var/log/a b/ü.log", 10, "plain", vec![]),
            record(
                "/x",
                u64::MAX,
                "",
                vec![("n".into(), serde_json::json!({"a": [1, null]}))],
            ),
            record(
                "/y",
                3,
                "bad utf8 \u{fffd}\n\0 tab\t",
                vec![(String::new(), serde_json::json!(""))],
            ),
        ];
        let encoded = Spool::encode(&records);
        let mut files = Files::default();
        let (decoded, problem) = decode_records(&encoded, &mut files);
        assert_eq!(problem, None);
        assert_eq!(decoded.len(), 3);
        for (a, b) in records.iter().zip(&decoded) {
            assert_eq!(a.source.path, b.source.path);
            assert_eq!(a.source.key, b.source.key);
            assert_eq!(a.end_offset, b.end_offset);
            assert_eq!(a.time, b.time);
            assert_eq!(a.message, b.message);
            assert_eq!(a.fields, b.fields);
        }
    }

    #[test]
    fn a_cut_off_or_corrupt_segment_yields_what_is_valid() {
        let records: Vec<Record> = (0..5)
            .map(|i| record("/a", i, &format!("line {i}"), vec![]))
            .collect();
        let encoded = Spool::encode(&records);
        let boundaries: Vec<usize> = (1..=5).map(|n| Spool::encode(&records[..n]).len()).collect();
        for cut in 1..encoded.len() {
            let (decoded, problem) = decode_records(&encoded[..cut], &mut Files::default());
            let whole = boundaries.iter().filter(|&&end| end <= cut).count();
            assert_eq!(decoded.len(), whole, "cut at {cut}");
            // A cut between records is a shorter valid segment; anywhere else it is damage.
            assert_eq!(problem.is_some(), !boundaries.contains(&cut), "cut at {cut}");
        }
        let mut corrupt = encoded.clone();
        let third = corrupt.len() / 2;
        corrupt[third] ^= 0x55;
        let (decoded, problem) = decode_records(&corrupt, &mut Files::default());
        assert!(decoded.len() < 5 && problem.unwrap().contains("skipped"));
        // A length field claiming 4 GiB.
        let mut huge = Spool::encode(&records[..1]);
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (decoded, problem) = decode_records(&huge, &mut Files::default());
        assert!(decoded.is_empty() && problem.is_some());
    }
}
