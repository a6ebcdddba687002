//! The rotation torture test's generator and checker, shared by pitcrew-follow's engine tests
//! and pitcrew-tail's tests of the real binary.
//!
//! [`Torture::run`] plays a seeded random sequence of operations on a log directory while a
//! [`Consumer`] (the follower under test, with its checkpoint) follows `DIR/*.log*`:
//!
//! - appends of self-identifying lines, `stream=2 gen=0003 seq=00001234 <padding>`, where the
//!   padding holds spaces and multi-byte UTF-8, and a batch is sometimes split mid-line between
//!   two writes;
//! - rename rotations (`s2.log` → `s2.log.7`), with a few appends to the old descriptor after the
//!   rename (a writer that has not reopened yet), then a new `s2.log`;
//! - copytruncates (copy `s2.log` to `s2.log.8`, truncate `s2.log` in place);
//! - delete-and-recreate of `s2.log` (with late appends to the deleted file's descriptor) and
//!   deletes of old rotated files;
//! - consumer restarts, clean ([`Stop::Clean`]) and "kill -9" ([`Stop::Kill`]: the consumer
//!   loses what it read but had not checkpointed yet), with appends and rename rotations while
//!   it is down.
//!
//! Then [`check`] verifies that every line written was delivered, byte for byte, in order
//! within each file segment (`stream` + `gen`), and delivered twice only after a kill. The first
//! violation is reported with the line and the operations around the moment it was written.
//!
//! # What the generator avoids, and why
//!
//! The guarantee is "no loss, duplicates only after kills" *for what a follower can possibly
//! see*. So the generator never:
//!
//! - deletes a file, or lets a writer delete one, with lines not yet delivered unless the
//!   consumer is running, past `settle` since its start, and caught up (so it has the file
//!   open): a file deleted while nobody follows it is gone by definition;
//! - copytruncates while the consumer is down, or started less than `settle` ago (before its
//!   first scan): the lines between its last read and the truncation are only in the copy, and
//!   recognising the copy needs the follower to have seen the truncation (pitcrew-follow's copy
//!   heuristic); otherwise the copy is read from its start (duplicates, never loss);
//! - writes between the copy and the truncation (logrotate's own loss window, no follower can
//!   close it);
//! - stops the consumer (clean or kill) before it caught up with everything written and had
//!   `settle` time to notice the last rotations: a follower learns of a change when it looks
//!   (an event or a rescan), and a rotation it never saw cannot be held against it. Lines are
//!   still appended between the catch-up and the stop, so stops land with unread data;
//! - renames to a name outside the pattern: the rotated files stay matched (`*.log*`), so
//!   lines appended to a renamed file while the consumer is down are still found.
//!
//! Order is checked within a file segment only: a follower reads several files in turn and
//! cannot know in which order lines in two different files were written.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the consumer is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM-like: deliver what is in flight, save the checkpoint, exit.
    Clean,
    /// kill -9: whatever was read but not checkpointed is read again by the next run.
    Kill,
}

/// The follower under test.
pub trait Consumer {
    /// Starts following [`Torture::pattern`] (resuming from its checkpoint, if any).
    fn start(&mut self);
    /// Stops it (see [`Stop`]); returns when it has ended.
    fn stop(&mut self, how: Stop);
    /// Lines delivered since the last call, in delivery order, without their newlines.
    fn drain(&mut self) -> Vec<Vec<u8>>;
}

/// How long and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// The random sequence; the same seed gives the same operations.
    pub seed: u64,
    /// Writers, each with its own `sN.log`.
    pub streams: u32,
    /// How long to keep generating operations.
    pub duration: Duration,
    /// How long to wait for the consumer to catch up before calling it stuck.
    pub catch_up_timeout: Duration,
    /// Time the consumer needs to notice a change without an event (its rescan interval plus a
    /// margin): waited after a catch-up before a stop.
    pub settle: Duration,
}

impl Options {
    /// A short run for CI; `PITCREW_TORTURE_SECONDS` and `PITCREW_TORTURE_SEED` override the
    /// length and the seed (a random seed is printed so a failure can be replayed).
    pub fn from_env(default_seconds: u64) -> Options {
        let seconds = std::env::var("PITCREW_TORTURE_SECONDS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default_seconds);
        let seed = std::env::var("PITCREW_TORTURE_SEED")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        eprintln!("rotation torture: seed {seed} (PITCREW_TORTURE_SEED={seed} replays it), {seconds}s");
        Options {
            seed,
            streams: 3,
            duration: Duration::from_secs(seconds),
            catch_up_timeout: Duration::from_secs(60),
            settle: Duration::from_millis(600),
        }
    }
}

/// What one consumer run delivered, and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// Lines in delivery order.
    pub lines: Vec<Vec<u8>>,
    /// How it was stopped.
    pub ended: Stop,
}

/// A line's identity, parsed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct LineId {
    stream: u32,
    generation: u32,
    seq: u64,
}

/// One writer.
struct Stream {
    /// The writer's descriptor on `sN.log` (append mode).
    writer: File,
    generation: u32,
    seq: u64,
    /// Rotated copies and renamed files still on disk, oldest first.
    rotated: Vec<PathBuf>,
}

/// The generator: the directory, the writers, and the record of what was written.
pub struct Torture {
    dir: PathBuf,
    rng: fastrand::Rng,
    streams: Vec<Stream>,
    next_rotation: u64,
    /// Every line written: its bytes and the operation it was written in.
    written: HashMap<LineId, (Vec<u8>, usize)>,
    /// Operations so far, for failure reports.
    ops: Vec<String>,
    runs: Vec<Run>,
    current: Vec<Vec<u8>>,
    delivered: HashSet<LineId>,
    running: bool,
    /// When the consumer was last started.
    started: Instant,
    options: Options,
}

impl Torture {
    /// A generator writing into `dir` (which should be empty).
    pub fn new(dir: &Path, options: Options) -> Torture {
        let mut torture = Torture {
            dir: dir.to_owned(),
            rng: fastrand::Rng::with_seed(options.seed),
            streams: Vec::new(),
            next_rotation: 1,
            written: HashMap::new(),
            ops: Vec::new(),
            runs: Vec::new(),
            current: Vec::new(),
            delivered: HashSet::new(),
            running: false,
            started: Instant::now(),
            options,
        };
        for index in 0..torture.options.streams {
            let writer = torture.open_writer(index);
            torture.streams.push(Stream {
                writer,
                generation: 0,
                seq: 0,
                rotated: Vec::new(),
            });
        }
        torture
    }

    /// What the consumer follows: `DIR/*.log*` (live files and rotated ones).
    pub fn pattern(&self) -> PathBuf {
        self.dir.join("*.log*")
    }

    /// Lines written so far.
    pub fn lines_written(&self) -> usize {
        self.written.len()
    }

    fn live_path(&self, stream: u32) -> PathBuf {
        self.dir.join(format!("s{stream}.log"))
    }

    fn open_writer(&self, stream: u32) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.live_path(stream))
            .expect("open the live log file")
    }

    /// Plays operations for `options.duration`, then catches up, stops cleanly and checks.
    /// Panics with the first violation.
    pub fn run(&mut self, consumer: &mut dyn Consumer) {
        let started = Instant::now();
        self.start(consumer);
        while started.elapsed() < self.options.duration {
            self.step(consumer);
        }
        if !self.running {
            self.start(consumer);
        }
        self.append_batch(0, 1);
        self.catch_up(consumer);
        self.stop(consumer, Stop::Clean);
        if let Err((violation, id)) = check_ids(&self.runs, &self.written_lines()) {
            let written_at = id
                .and_then(|id| self.written.get(&id))
                .map_or(String::new(), |(_, op)| {
                    let from = op.saturating_sub(15);
                    format!(
                        "\nthe line was written at operation {op}; operations {from} to {}:\n{}",
                        op + 15,
                        self.numbered_ops(from, op + 15)
                    )
                });
            panic!(
                "rotation torture (seed {}): {violation}{written_at}\nlast operations:\n{}",
                self.options.seed,
                self.numbered_ops(self.ops.len().saturating_sub(30), self.ops.len())
            );
        }
        let delivered: usize = self.runs.iter().map(|run| run.lines.len()).sum();
        let kills = self.runs.iter().filter(|run| run.ended == Stop::Kill).count();
        eprintln!(
            "rotation torture: {} operations, {} lines, {} consumer runs ({kills} killed): every line \
             delivered, {} duplicates (after kills)",
            self.ops.len(),
            self.written.len(),
            self.runs.len(),
            delivered - self.written.len()
        );
    }

    fn numbered_ops(&self, from: usize, to: usize) -> String {
        (from..to.min(self.ops.len()))
            .map(|index| format!("{index:5}: {}", self.ops[index]))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything written, for [`check`].
    fn written_lines(&self) -> Vec<Vec<u8>> {
        let mut lines: Vec<_> = self.written.iter().collect();
        lines.sort_by_key(|(id, _)| **id);
        lines.into_iter().map(|(_, (line, _))| line.clone()).collect()
    }

    fn step(&mut self, consumer: &mut dyn Consumer) {
        let stream = self.rng.u32(..self.options.streams);
        let roll = self.rng.u32(..100);
        if !self.running {
            // While down: appends and renames only (see the module docs), then start again.
            match roll {
                0..=59 => {
                    let count = self.rng.usize(1..40);
                    self.append_batch(stream, count);
                }
                60..=79 => self.rename_rotate(stream),
                _ => self.start(consumer),
            }
            return;
        }
        // Copytruncates and deletes only once the consumer had time for its first scan: until
        // then it is, for those, as good as down (see the module docs).
        let settled = self.started.elapsed() >= self.options.settle;
        match roll {
            0..=64 => {
                let count = self.rng.usize(1..60);
                self.append_batch(stream, count);
            }
            65..=72 => self.rename_rotate(stream),
            73..=79 if settled => self.copy_truncate(stream),
            80..=84 if settled => self.delete_recreate(stream, consumer),
            73..=84 => self.append_batch(stream, 1),
            85..=88 => self.delete_oldest(stream, consumer),
            // Stops cost a catch-up and `settle`: rarer, so rotations dominate the run.
            89..=96 => std::thread::sleep(Duration::from_millis(self.rng.u64(1..30))),
            _ => {
                let how = if self.rng.bool() { Stop::Clean } else { Stop::Kill };
                // Deleted files must be read before any stop (see the module docs).
                self.catch_up(consumer);
                if how == Stop::Clean {
                    // A clean stop must lose and repeat nothing: give the consumer time to
                    // have seen the last rotations.
                    std::thread::sleep(self.options.settle);
                }
                // Unread data at the stop, and for a kill some of it read but (likely) not yet
                // checkpointed: a kill costs duplicates, never loss. An unnoticed rotation
                // costs a kill duplicates only too (a copy not yet recognised is read again
                // from its start).
                let count = self.rng.usize(0..40);
                self.append_batch(stream, count);
                if how == Stop::Kill {
                    std::thread::sleep(Duration::from_millis(self.rng.u64(0..100)));
                }
                self.stop(consumer, how);
            }
        }
    }

    fn start(&mut self, consumer: &mut dyn Consumer) {
        self.ops.push("start the consumer".into());
        consumer.start();
        self.running = true;
        self.started = Instant::now();
    }

    fn stop(&mut self, consumer: &mut dyn Consumer, how: Stop) {
        self.ops.push(format!("stop the consumer ({how:?})"));
        consumer.stop(how);
        self.collect(consumer);
        self.runs.push(Run {
            lines: std::mem::take(&mut self.current),
            ended: how,
        });
        self.running = false;
    }

    fn collect(&mut self, consumer: &mut dyn Consumer) {
        for line in consumer.drain() {
            if let Some(id) = parse(&line) {
                self.delivered.insert(id);
            }
            self.current.push(line);
        }
    }

    /// Waits until every line written so far was delivered at least once.
    fn catch_up(&mut self, consumer: &mut dyn Consumer) {
        let started = Instant::now();
        loop {
            self.collect(consumer);
            if self.delivered.len() >= self.written.len()
                && self.written.keys().all(|id| self.delivered.contains(id))
            {
                return;
            }
            if started.elapsed() > self.options.catch_up_timeout {
                let mut missing: Vec<_> = self
                    .written
                    .keys()
                    .filter(|id| !self.delivered.contains(id))
                    .collect();
                missing.sort();
                let first = missing[0];
                let (line, op) = &self.written[first];
                panic!(
                    "rotation torture (seed {}): the consumer did not catch up within {:?}: {} lines \
                     missing, the first {:?} written at operation {op} ({})\nlast operations:\n{}",
                    self.options.seed,
                    self.options.catch_up_timeout,
                    missing.len(),
                    String::from_utf8_lossy(line),
                    self.ops[*op],
                    self.ops
                        .iter()
                        .rev()
                        .take(40)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn make_line(&mut self, stream: u32) -> Vec<u8> {
        const PADDING: &[&str] = &[" ", "  ", "x", "word", "é", "日本", "🦀", "\t", "=", "ü"];
        let state = &mut self.streams[stream as usize];
        let id = LineId {
            stream,
            generation: state.generation,
            seq: state.seq,
        };
        state.seq += 1;
        let mut line = format!("stream={stream} gen={:04} seq={:08} ", id.generation, id.seq).into_bytes();
        for _ in 0..self.rng.usize(0..40) {
            line.extend_from_slice(PADDING[self.rng.usize(..PADDING.len())].as_bytes());
        }
        // Every operation logs itself before it writes: this line belongs to the last one.
        self.written
            .insert(id, (line.clone(), self.ops.len().saturating_sub(1)));
        line.push(b'\n');
        line
    }

    fn append_batch(&mut self, stream: u32, count: usize) {
        self.ops.push(format!("append {count} lines to s{stream}.log"));
        self.write_lines(stream, count);
    }

    /// Writes `count` lines through the stream's descriptor, sometimes in two writes split
    /// mid-line (a reader may see the first half alone).
    fn write_lines(&mut self, stream: u32, count: usize) {
        let mut batch = Vec::new();
        for _ in 0..count {
            let line = self.make_line(stream);
            batch.extend_from_slice(&line);
        }
        let writer = &mut self.streams[stream as usize].writer;
        if batch.len() > 2 && self.rng.u32(..4) == 0 {
            let split = self.rng.usize(1..batch.len());
            writer.write_all(&batch[..split]).expect("append");
            writer.write_all(&batch[split..]).expect("append");
        } else {
            writer.write_all(&batch).expect("append");
        }
    }

    fn rotated_path(&mut self, stream: u32) -> PathBuf {
        let number = self.next_rotation;
        self.next_rotation += 1;
        self.dir.join(format!("s{stream}.log.{number}"))
    }

    /// Rename, a few late appends through the old descriptor, then a new live file.
    fn rename_rotate(&mut self, stream: u32) {
        let target = self.rotated_path(stream);
        let late = self.rng.usize(0..5);
        self.ops.push(format!(
            "rename s{stream}.log to {} (then {late} late lines)",
            target.display()
        ));
        std::fs::rename(self.live_path(stream), &target).expect("rename");
        self.write_lines(stream, late);
        self.new_generation(stream);
        self.streams[stream as usize].rotated.push(target);
    }

    fn new_generation(&mut self, stream: u32) {
        let writer = self.open_writer(stream);
        let state = &mut self.streams[stream as usize];
        state.writer = writer;
        state.generation += 1;
        state.seq = 0;
    }

    /// Copy then truncate in place, nothing written in between; the writer keeps its
    /// descriptor (O_APPEND: its next line lands at the new end).
    fn copy_truncate(&mut self, stream: u32) {
        let target = self.rotated_path(stream);
        self.ops
            .push(format!("copytruncate s{stream}.log to {}", target.display()));
        std::fs::copy(self.live_path(stream), &target).expect("copy");
        let state = &mut self.streams[stream as usize];
        state.writer.set_len(0).expect("truncate");
        state.generation += 1;
        state.seq = 0;
        state.rotated.push(target);
        // A line after the truncation, so a catch-up proves the follower saw it.
        self.write_lines(stream, 1);
    }

    /// Delete the live file while the writer keeps appending to it, then recreate it. Only
    /// after a catch-up: the consumer provably has the file open.
    fn delete_recreate(&mut self, stream: u32, consumer: &mut dyn Consumer) {
        self.catch_up(consumer);
        let unread = self.rng.usize(0..20);
        let late = self.rng.usize(0..5);
        self.ops.push(format!(
            "delete s{stream}.log ({unread} lines just before, {late} late lines after) and recreate it"
        ));
        self.write_lines(stream, unread);
        std::fs::remove_file(self.live_path(stream)).expect("delete");
        self.write_lines(stream, late);
        self.new_generation(stream);
    }

    /// Delete the oldest rotated file, once everything in it was delivered.
    fn delete_oldest(&mut self, stream: u32, consumer: &mut dyn Consumer) {
        if self.streams[stream as usize].rotated.is_empty() {
            return;
        }
        self.catch_up(consumer);
        let oldest = self.streams[stream as usize].rotated.remove(0);
        self.ops.push(format!("delete {}", oldest.display()));
        std::fs::remove_file(&oldest).expect("delete a rotated file");
    }
}

fn parse(line: &[u8]) -> Option<LineId> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(' ');
    let stream = fields.next()?.strip_prefix("stream=")?.parse().ok()?;
    let generation = fields.next()?.strip_prefix("gen=")?.parse().ok()?;
    let seq = fields.next()?.strip_prefix("seq=")?.parse().ok()?;
    Some(LineId {
        stream,
        generation,
        seq,
    })
}

/// Checks what the consumer's runs delivered against the lines written (without newlines):
/// every line delivered, exactly as written, in order within its file segment (`stream`,
/// `gen`) within a run, and again in a later run only if a run in between (or the first) ended
/// with a kill. Returns the first violation.
pub fn check(runs: &[Run], written: &[Vec<u8>]) -> Result<(), String> {
    check_ids(runs, written).map_err(|(message, _)| message)
}

/// [`check`], also naming the line the violation is about.
fn check_ids(runs: &[Run], written: &[Vec<u8>]) -> Result<(), (String, Option<LineId>)> {
    let mut expected = HashMap::new();
    for line in written {
        let id = parse(line).ok_or_else(|| {
            (
                format!("written line {:?} has no id", String::from_utf8_lossy(line)),
                None,
            )
        })?;
        expected.insert(id, line.as_slice());
    }
    // Where each line was first delivered: (run, position).
    let mut first_seen: HashMap<LineId, (usize, usize)> = HashMap::new();
    for (run_index, run) in runs.iter().enumerate() {
        let mut last: HashMap<(u32, u32), u64> = HashMap::new();
        for (position, line) in run.lines.iter().enumerate() {
            let shown = String::from_utf8_lossy(line);
            let id = parse(line).ok_or_else(|| {
                let message = format!(
                    "run {run_index}, line {position}: {shown:?} is not a line that was written (corrupt or cut)"
                );
                (message, None)
            })?;
            match expected.get(&id) {
                Some(original) if *original == line.as_slice() => {}
                Some(original) => {
                    let message = format!(
                        "run {run_index}, line {position}: {shown:?} differs from what was written: {:?}",
                        String::from_utf8_lossy(original)
                    );
                    return Err((message, Some(id)));
                }
                None => {
                    let message = format!("run {run_index}, line {position}: {shown:?} was never written");
                    return Err((message, None));
                }
            }
            if let Some(previous) = last.insert((id.stream, id.generation), id.seq)
                && previous >= id.seq
            {
                let message = format!(
                    "run {run_index}, line {position}: {shown:?} delivered after seq {previous} of the same \
                     file segment (out of order or duplicated within a run)"
                );
                return Err((message, Some(id)));
            }
            match first_seen.get(&id) {
                None => {
                    first_seen.insert(id, (run_index, position));
                }
                Some(&(earlier, earlier_position)) => {
                    if !runs[earlier..run_index].iter().any(|run| run.ended == Stop::Kill) {
                        let message = format!(
                            "run {run_index}, line {position}: {shown:?} is a duplicate of run {earlier}, line \
                             {earlier_position}, with no kill in between (only clean stops)"
                        );
                        return Err((message, Some(id)));
                    }
                }
            }
        }
    }
    let mut missing: Vec<_> = expected
        .keys()
        .filter(|id| !first_seen.contains_key(id))
        .collect();
    missing.sort();
    if let Some(first) = missing.first() {
        let message = format!(
            "{} lines were never delivered; the first: {:?}",
            missing.len(),
            String::from_utf8_lossy(expected[first])
        );
        return Err((message, Some(**first)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stream: u32, generation: u32, seq: u64) -> Vec<u8> {
        format!("stream={stream} gen={generation:04} seq={seq:08} pad é").into_bytes()
    }

    #[test]
    fn the_checker_accepts_a_perfect_delivery_and_duplicates_after_a_kill() {
        let written = vec![line(0, 0, 0), line(0, 0, 1), line(1, 0, 0)];
        let perfect = [Run {
            lines: written.clone(),
            ended: Stop::Clean,
        }];
        assert_eq!(check(&perfect, &written), Ok(()));
        let killed = [
            Run {
                lines: vec![line(0, 0, 0), line(0, 0, 1)],
                ended: Stop::Kill,
            },
            Run {
                lines: vec![line(0, 0, 1), line(1, 0, 0)],
                ended: Stop::Clean,
            },
        ];
        assert_eq!(check(&killed, &written), Ok(()));
    }

    #[test]
    fn the_checker_reports_loss_duplicates_disorder_and_corruption() {
        let written = vec![line(0, 0, 0), line(0, 0, 1)];
        let lost = check(
            &[Run {
                lines: vec![line(0, 0, 0)],
                ended: Stop::Clean,
            }],
            &written,
        )
        .unwrap_err();
        assert!(
            lost.contains("1 lines were never delivered") && lost.contains("seq=00000001"),
            "{lost}"
        );
        let clean_dup = [
            Run {
                lines: vec![line(0, 0, 0)],
                ended: Stop::Clean,
            },
            Run {
                lines: vec![line(0, 0, 0), line(0, 0, 1)],
                ended: Stop::Clean,
            },
        ];
        let duplicate = check(&clean_dup, &written).unwrap_err();
        assert!(
            duplicate.contains("duplicate") && duplicate.contains("no kill"),
            "{duplicate}"
        );
        let disorder = check(
            &[Run {
                lines: vec![line(0, 0, 1), line(0, 0, 0)],
                ended: Stop::Clean,
            }],
            &written,
        );
        assert!(disorder.unwrap_err().contains("out of order"));
        let mut cut = line(0, 0, 1);
        cut.truncate(cut.len() - 3);
        let corrupt = check(
            &[Run {
                lines: vec![line(0, 0, 0), cut],
                ended: Stop::Clean,
            }],
            &written,
        );
        assert!(corrupt.unwrap_err().contains("differs from what was written"));
        let garbage = check(
            &[Run {
                lines: vec![b"half a line".to_vec()],
                ended: Stop::Clean,
            }],
            &written,
        );
        assert!(garbage.unwrap_err().contains("not a line that was written"));
    }
}
