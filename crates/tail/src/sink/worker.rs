//! One worker per sink: queue, batching, retries, drop policy, disk buffer, acks.
//!
//! - Queue: bounded by bytes (`queue_max_bytes`, measured with [`Record::approximate_size`]),
//!   through a semaphore of byte permits that `push` takes and the worker gives back once a
//!   batch is done. A push bigger than the whole limit takes all of it (and so still passes
//!   once the queue is empty) rather than waiting for ever.
//! - Batching: a batch is sent when it holds `batch_max_bytes` (or the queue limit, if smaller)
//!   or when its first record has waited `batch_max_wait`.
//! - Retries: a failed send is retried with backoff (`retry_first_delay` doubling to
//!   `retry_max_delay`, with jitter; `Retry-After` honoured), one log line per failure. While
//!   it is retried the queue fills and `push` waits: reading pauses (backpressure).
//! - `drop_after`: a batch that could not be delivered for that long is dropped: counted,
//!   logged (records and the files' offset ranges) and acknowledged, which is what dropping
//!   means: the checkpoint moves past those lines and they are never sent.
//! - Partial deliveries (Elasticsearch): only the items to retry are sent again; rejected
//!   items are dropped, counted and logged; the batch is acknowledged once every item is done.
//! - Acks: after each batch, per file, the highest `end_offset` in it, in order. Never for
//!   anything not delivered, dropped by policy, or safely in the disk buffer, so aborting the
//!   worker (the pipeline's drain timeout) at any await loses nothing.
//! - Disk buffer ([`super::buffer`]): when the memory queue is full, records go to the spool
//!   instead of waiting; see that module for its rules.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pitcrew_core::backoff::Backoff;
use pitcrew_core::duration::display as show_duration;
use tokio::sync::{Mutex, Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::buffer::{self, Spool};
use super::{Ack, Delivery, DeliveryConfig, Sink};
use crate::encode::EncodeContext;
use crate::metrics::SinkMetrics;
use crate::record::Record;

/// How many pushes the channel holds; the byte permits are the real limit.
const CHANNEL_SLOTS: usize = 4096;

/// The pipeline's side of a worker.
pub struct SinkHandle {
    /// Index into `Config::sinks`.
    pub index: usize,
    /// Display name (no secrets).
    pub name: String,
    queue: mpsc::Sender<Arc<[Record]>>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

/// What the handle and the worker share.
struct Shared {
    /// Byte permits of the memory queue.
    permits: Semaphore,
    /// `queue_max_bytes`, clamped to what a semaphore takes at once.
    limit: usize,
    /// Records pushed and not yet done (for the log line).
    waiting: AtomicUsize,
    spool: Option<Mutex<Spool>>,
    /// Mirrors `Spool::active` for the worker's lock-free checks.
    spool_active: AtomicBool,
    /// Wakes the worker when the spool becomes active.
    wake_worker: Notify,
    /// Wakes pushes waiting for room (memory or spool).
    room: Notify,
    acks: mpsc::UnboundedSender<Ack>,
    index: usize,
    metrics: SinkMetrics,
}

/// What `records` cost in byte permits.
fn cost_of(records: &[Record], limit: usize) -> usize {
    records
        .iter()
        .map(Record::approximate_size)
        .sum::<usize>()
        .min(limit)
        .max(1)
}

impl SinkHandle {
    /// Queues records; waits while the queue is full (backpressure). Returns `false` when
    /// the worker is gone.
    pub async fn push(&self, records: Arc<[Record]>) -> bool {
        if records.is_empty() {
            return !self.queue.is_closed();
        }
        let cost = cost_of(&records, self.shared.limit);
        match &self.shared.spool {
            None => self.push_memory(records, cost).await,
            Some(spool) => self.push_buffered(spool, records, cost).await,
        }
    }

    async fn push_memory(&self, records: Arc<[Record]>, cost: usize) -> bool {
        let permits = u32::try_from(cost).unwrap_or(u32::MAX);
        let permit = tokio::select! {
            permit = self.shared.permits.acquire_many(permits) => permit,
            () = self.queue.closed() => return false,
        };
        let Ok(permit) = permit else { return false };
        let Ok(slot) = self.queue.reserve().await else {
            return false;
        };
        // From here nothing awaits: the permits travel with the records to the worker.
        permit.forget();
        self.shared.waiting.fetch_add(records.len(), Ordering::Relaxed);
        slot.send(records);
        true
    }

    async fn push_buffered(&self, spool: &Mutex<Spool>, records: Arc<[Record]>, cost: usize) -> bool {
        let permits = u32::try_from(cost).unwrap_or(u32::MAX);
        let mut encoded = None;
        loop {
            if self.queue.is_closed() {
                return false;
            }
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut spool = spool.lock().await;
                if !spool.active
                    && let Ok(permit) = self.shared.permits.try_acquire_many(permits)
                    && let Ok(slot) = self.queue.try_reserve()
                {
                    permit.forget();
                    self.shared.waiting.fetch_add(records.len(), Ordering::Relaxed);
                    slot.send(records);
                    return true;
                }
                let bytes = encoded.get_or_insert_with(|| Spool::encode(&records));
                if spool.has_room(bytes.len() as u64) {
                    match spool.append(std::mem::take(bytes), &records).await {
                        Ok(()) => {
                            self.shared.waiting.fetch_add(records.len(), Ordering::Relaxed);
                            self.shared.metrics.buffered_bytes.set(gauge(spool.bytes()));
                            if spool.worker_reading {
                                // Everything before is delivered: these may be acknowledged now.
                                send_ack(&self.shared, std::mem::take(&mut spool.unacked));
                            }
                            if !self.shared.spool_active.swap(true, Ordering::SeqCst) {
                                self.shared.wake_worker.notify_one();
                            }
                            return true;
                        }
                        Err(err) => {
                            // A broken disk must not stop delivery: wait for memory instead.
                            tracing::error!(
                                "sink {}: cannot write the disk buffer: {}; waiting for the sink instead",
                                self.name,
                                pitcrew_core::io_error::describe(&err)
                            );
                            encoded = None;
                            if !spool.active {
                                drop(spool);
                                return self.push_memory(records, cost).await;
                            }
                        }
                    }
                }
            }
            room.await;
        }
    }

    /// No more records will come: the worker delivers what is queued (and buffered), sends
    /// the last acks and ends. Await the returned handle (with the drain timeout).
    pub fn close(self) -> JoinHandle<()> {
        self.task
    }
}

fn gauge(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Adds `records`' offsets to `offsets`: per file (by id), the highest `end_offset`.
pub(crate) fn merge_offsets(offsets: &mut Vec<(Arc<pitcrew_follow::FileInfo>, u64)>, records: &[Record]) {
    for record in records {
        match offsets.iter_mut().find(|(file, _)| file.id == record.source.id) {
            Some((_, offset)) => *offset = (*offset).max(record.end_offset),
            None => offsets.push((Arc::clone(&record.source), record.end_offset)),
        }
    }
}

fn send_ack(shared: &Shared, offsets: Vec<(Arc<pitcrew_follow::FileInfo>, u64)>) {
    if !offsets.is_empty() {
        // The pipeline may be gone (shutting down): nothing else to tell.
        let _ = shared.acks.send(Ack {
            sink: shared.index,
            offsets,
        });
    }
}

/// Starts the worker for `sink` (the `index`-th sink) on the current runtime.
pub fn spawn_worker<S: Sink>(
    sink: S,
    index: usize,
    name: String,
    delivery: &DeliveryConfig,
    context: Arc<EncodeContext>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: SinkMetrics,
) -> Result<SinkHandle, crate::TailError> {
    let limit = delivery.queue_max_bytes.clamp(1, u32::MAX as usize);
    let batch_max = delivery.batch_max_bytes.clamp(1, limit);
    let spool = match &delivery.buffer {
        Some(config) => {
            let segment_max = (batch_max as u64).clamp(64 * 1024, 8 * 1024 * 1024);
            Some(Spool::open(config, index, &name, segment_max)?)
        }
        None => None,
    };
    if let Some(spool) = &spool {
        metrics.buffered_bytes.set(gauge(spool.bytes()));
    }
    let spool_active = spool.as_ref().is_some_and(|spool| spool.active);
    let shared = Arc::new(Shared {
        permits: Semaphore::new(limit),
        limit,
        waiting: AtomicUsize::new(0),
        spool: spool.map(Mutex::new),
        spool_active: AtomicBool::new(spool_active),
        wake_worker: Notify::new(),
        room: Notify::new(),
        acks,
        index,
        metrics,
    });
    let (sender, receiver) = mpsc::channel(CHANNEL_SLOTS);
    let worker = Worker {
        sink,
        name: name.clone(),
        context,
        shared: Arc::clone(&shared),
        queue: receiver,
        closed: false,
        pending: VecDeque::new(),
        pending_bytes: 0,
        first_arrival: None,
        batch_max,
        batch_max_wait: delivery.batch_max_wait,
        retry_first_delay: delivery.retry_first_delay,
        retry_max_delay: delivery.retry_max_delay,
        drop_after: delivery.drop_after,
        spool_mode: spool_active,
        segment: None,
        files: buffer::Files::default(),
    };
    let task = tokio::spawn(worker.run());
    Ok(SinkHandle {
        index,
        name,
        queue: sender,
        task,
        shared,
    })
}

/// One batch on its way.
struct Batch {
    records: Vec<Record>,
    /// Byte permits to give back once done.
    permits: usize,
    /// Whether to acknowledge it once done (not for spooled records: acked when spooled).
    ack: bool,
}

/// The segment being replayed: its records not yet batched, and the file to delete once the
/// last of them is done.
struct Segment {
    records: VecDeque<Record>,
    path: std::path::PathBuf,
    size: u64,
}

struct Worker<S> {
    sink: S,
    name: String,
    context: Arc<EncodeContext>,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Arc<[Record]>>,
    closed: bool,
    /// Records taken from the channel, each with its byte permits.
    pending: VecDeque<(Record, usize)>,
    pending_bytes: usize,
    first_arrival: Option<Instant>,
    batch_max: usize,
    batch_max_wait: Duration,
    retry_first_delay: Duration,
    retry_max_delay: Duration,
    drop_after: Option<Duration>,
    /// Delivering from the spool (every in-memory record before it is done).
    spool_mode: bool,
    segment: Option<Segment>,
    files: buffer::Files,
}

/// What the worker does next.
enum Next {
    Send(Batch),
    /// The spool took over (or gave back): look again.
    Switch,
    /// Closed and everything delivered.
    End,
}

impl<S: Sink> Worker<S> {
    async fn run(mut self) {
        loop {
            let next = if self.spool_mode {
                self.next_spooled().await
            } else {
                self.next_in_memory().await
            };
            match next {
                Next::Send(batch) => self.deliver(batch).await,
                Next::Switch => {}
                Next::End => return,
            }
        }
    }

    fn take_chunk(&mut self, chunk: &[Record]) {
        let mut left = cost_of(chunk, self.shared.limit);
        for record in chunk {
            let size = record.approximate_size();
            let cost = size.min(left);
            left -= cost;
            self.pending_bytes += size;
            self.pending.push_back((record.clone(), cost));
        }
        // A chunk whose records' sizes round down to less than its cost (never, as sizes are
        // at least 64) would leak permits: give the rest to its last record.
        if let Some((_, cost)) = self.pending.back_mut() {
            *cost += left;
        }
        self.first_arrival.get_or_insert_with(Instant::now);
    }

    fn drain_ready(&mut self) {
        while self.pending_bytes < self.batch_max {
            match self.queue.try_recv() {
                Ok(chunk) => self.take_chunk(&chunk),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    fn cut_batch(&mut self) -> Batch {
        let mut records = Vec::new();
        let mut bytes = 0;
        let mut permits = 0;
        while let Some((record, _)) = self.pending.front() {
            let size = record.approximate_size();
            if !records.is_empty() && bytes + size > self.batch_max {
                break;
            }
            let Some((record, cost)) = self.pending.pop_front() else {
                break;
            };
            bytes += size;
            permits += cost;
            self.pending_bytes -= size;
            records.push(record);
        }
        self.first_arrival = (!self.pending.is_empty()).then(Instant::now);
        Batch {
            records,
            permits,
            ack: true,
        }
    }

    async fn next_in_memory(&mut self) -> Next {
        loop {
            // Read before draining: when the spool is active and the channel then empty,
            // every push that went to memory was before the spool's first record.
            let spool_active = self.shared.spool_active.load(Ordering::SeqCst);
            self.drain_ready();
            if self.pending_bytes >= self.batch_max {
                return Next::Send(self.cut_batch());
            }
            if let Some(first) = self.first_arrival {
                let deadline = first + self.batch_max_wait;
                if self.closed || Instant::now() >= deadline {
                    return Next::Send(self.cut_batch());
                }
                tokio::select! {
                    chunk = self.queue.recv() => match chunk {
                        Some(chunk) => self.take_chunk(&chunk),
                        None => self.closed = true,
                    },
                    () = tokio::time::sleep_until(deadline) => {}
                }
                continue;
            }
            if spool_active {
                self.spool_mode = true;
                return Next::Switch;
            }
            if self.closed {
                return Next::End;
            }
            tokio::select! {
                chunk = self.queue.recv() => match chunk {
                    Some(chunk) => self.take_chunk(&chunk),
                    None => self.closed = true,
                },
                () = self.shared.wake_worker.notified() => {}
            }
        }
    }

    async fn next_spooled(&mut self) -> Next {
        let Some(spool) = &self.shared.spool else {
            self.spool_mode = false;
            return Next::Switch;
        };
        if let Some(segment) = &mut self.segment
            && !segment.records.is_empty()
        {
            let mut records = Vec::new();
            let mut bytes = 0;
            while let Some(record) = segment.records.front() {
                let size = record.approximate_size();
                if !records.is_empty() && bytes + size > self.batch_max {
                    break;
                }
                bytes += size;
                records.extend(segment.records.pop_front());
            }
            return Next::Send(Batch {
                records,
                permits: 0,
                ack: false,
            });
        }
        let done = self.segment.take();
        let taken = {
            let mut spool = spool.lock().await;
            if let Some(done) = &done {
                spool.remove_segment(&done.path, done.size);
                self.shared.metrics.buffered_bytes.set(gauge(spool.bytes()));
                self.shared.room.notify_waiters();
            }
            // Every in-memory record before the spool is done: what was spooled meanwhile
            // may be acknowledged now, and later appends at once.
            send_ack(&self.shared, std::mem::take(&mut spool.unacked));
            spool.worker_reading = true;
            let taken = spool.take_segment();
            if taken.is_none() {
                spool.active = false;
                spool.worker_reading = false;
                self.shared.spool_active.store(false, Ordering::SeqCst);
                self.spool_mode = false;
                self.shared.room.notify_waiters();
            }
            taken
        };
        let Some((path, size)) = taken else {
            return Next::Switch;
        };
        let read_path = path.clone();
        let data = tokio::task::spawn_blocking(move || buffer::read_segment(&read_path)).await;
        let data = match data {
            Ok(Ok(data)) => data,
            Ok(Err(err)) => {
                tracing::error!(
                    "sink {}: cannot read buffer segment {}: {}; skipping it",
                    self.name,
                    path.display(),
                    pitcrew_core::io_error::describe(&err)
                );
                Vec::new()
            }
            Err(err) => {
                tracing::error!(
                    "sink {}: reading buffer segment {} failed: {err}",
                    self.name,
                    path.display()
                );
                Vec::new()
            }
        };
        let (records, problem) = buffer::decode_records(&data, &mut self.files);
        if let Some(problem) = problem {
            tracing::warn!(
                "sink {}: buffer segment {} is damaged (a crash while writing?): {problem}; delivering the {} records before it",
                self.name,
                path.display(),
                records.len()
            );
        }
        self.segment = Some(Segment {
            records: records.into(),
            path,
            size,
        });
        Next::Switch
    }

    /// Sends `batch` until delivered or dropped by policy, then frees its permits and
    /// acknowledges it.
    async fn deliver(&mut self, batch: Batch) {
        let Batch {
            records,
            permits,
            ack,
        } = batch;
        let started = Instant::now();
        let mut backoff =
            Backoff::new(self.retry_first_delay, self.retry_max_delay).with_warmup(Duration::ZERO);
        let mut todo: Option<Vec<Record>> = None;
        let mut attempt: u64 = 0;
        let mut evacuated: Vec<Record> = Vec::new();
        let metrics = self.shared.metrics.clone();
        loop {
            let sending: &[Record] = todo.as_deref().unwrap_or(&records);
            let result = self.sink.send(sending, &self.context).await;
            let failure = match result {
                Ok(Delivery::All) => {
                    self.delivered(sending);
                    metrics.send_succeeded();
                    break;
                }
                Ok(Delivery::Partial {
                    retry,
                    rejected,
                    reason,
                }) => {
                    let Some(again) = self.partial(sending, &retry, &rejected) else {
                        metrics.send_succeeded();
                        break;
                    };
                    if !rejected.is_empty() {
                        tracing::error!(
                            "sink {}: {} records refused for good and dropped: {reason}",
                            self.name,
                            rejected.len(),
                        );
                    }
                    metrics.retries.inc_by(again.len() as u64);
                    let message = format!("{}: {} records to retry: {reason}", self.name, again.len());
                    todo = Some(again);
                    (message, None)
                }
                Err(err) => {
                    metrics.retries.inc();
                    (err.message, err.retry_after)
                }
            };
            metrics.send_failed();
            attempt += 1;
            let (message, retry_after) = failure;
            let sending: &[Record] = todo.as_deref().unwrap_or(&records);
            if ack
                && self.shared.spool_active.load(Ordering::SeqCst)
                && let Some(moved) = self.evacuate(sending).await
            {
                tracing::warn!(
                    "sink {message}; moved {} records to the disk buffer, delivered from there once the sink is back",
                    sending.len() + moved.len()
                );
                evacuated = moved;
                break;
            }
            let elapsed = started.elapsed();
            if let Some(limit) = self.drop_after
                && elapsed >= limit
            {
                metrics.dropped_records.inc_by(sending.len() as u64);
                tracing::error!(
                    "sink {}: dropped {} records undeliverable for {} (--drop-after; {}): {message}",
                    self.name,
                    sending.len(),
                    show_duration(elapsed),
                    ranges(sending)
                );
                break;
            }
            let mut delay = retry_after.unwrap_or_else(|| backoff.next_delay(elapsed));
            if let Some(limit) = self.drop_after {
                // One last attempt when the drop deadline comes, not a backoff step after it.
                delay = delay.min(limit.saturating_sub(elapsed));
            }
            log_retry(&self.shared, &message, attempt, delay);
            tokio::time::sleep(delay).await;
        }
        self.shared.waiting.fetch_sub(
            records.len().min(self.shared.waiting.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if permits > 0 {
            self.shared.permits.add_permits(permits);
            self.shared.room.notify_waiters();
        }
        if ack {
            let mut offsets = Vec::new();
            merge_offsets(&mut offsets, &records);
            merge_offsets(&mut offsets, &evacuated);
            send_ack(&self.shared, offsets);
        }
    }

    /// The spool took over while `failed` (the rest of an in-memory batch) is being retried:
    /// writes it, and every record queued in memory behind it, to a segment in front of the
    /// spool. Returns the queued records moved (their permits given back), or `None` when the
    /// buffer cannot be written (then retrying goes on).
    async fn evacuate(&mut self, failed: &[Record]) -> Option<Vec<Record>> {
        let shared = Arc::clone(&self.shared);
        let spool = shared.spool.as_ref()?;
        loop {
            match self.queue.try_recv() {
                Ok(chunk) => self.take_chunk(&chunk),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let mut encoded = Spool::encode(failed);
        for (record, _) in &self.pending {
            buffer::encode_record(record, &mut encoded);
        }
        let mut spool = spool.lock().await;
        if let Err(err) = spool.prepend(encoded).await {
            tracing::error!(
                "sink {}: cannot write the disk buffer: {}; retrying the sink instead",
                self.name,
                pitcrew_core::io_error::describe(&err)
            );
            return None;
        }
        self.shared.metrics.buffered_bytes.set(gauge(spool.bytes()));
        drop(spool);
        let moved: Vec<(Record, usize)> = self.pending.drain(..).collect();
        self.pending_bytes = 0;
        self.first_arrival = None;
        let permits: usize = moved.iter().map(|(_, cost)| cost).sum();
        self.shared.permits.add_permits(permits);
        self.shared.room.notify_waiters();
        self.spool_mode = true;
        // Still counted as waiting: they are, in the spool.
        let records: Vec<Record> = moved.into_iter().map(|(record, _)| record).collect();
        Some(records)
    }

    /// Counts what a partial delivery stored and refused; returns what to retry, if any.
    fn partial(&self, sending: &[Record], retry: &[usize], rejected: &[usize]) -> Option<Vec<Record>> {
        let stored: Vec<Record> = (0..sending.len())
            .filter(|i| !retry.contains(i) && !rejected.contains(i))
            .map(|i| sending[i].clone())
            .collect();
        self.delivered(&stored);
        if !rejected.is_empty() {
            let refused: Vec<Record> = rejected.iter().filter_map(|&i| sending.get(i).cloned()).collect();
            self.shared.metrics.dropped_records.inc_by(refused.len() as u64);
            tracing::warn!("sink {}: refused records: {}", self.name, ranges(&refused));
        }
        let again: Vec<Record> = retry.iter().filter_map(|&i| sending.get(i).cloned()).collect();
        (!again.is_empty()).then_some(again)
    }

    fn delivered(&self, records: &[Record]) {
        let metrics = &self.shared.metrics;
        metrics.delivered_records.inc_by(records.len() as u64);
        metrics.delivered_bytes.inc_by(
            records
                .iter()
                .map(|record| record.approximate_size() as u64)
                .sum(),
        );
    }
}

/// One line per failed send: what failed, when the next try is, how much waits behind it.
fn log_retry(shared: &Shared, message: &str, attempt: u64, delay: Duration) {
    let waiting = shared.waiting.load(Ordering::Relaxed);
    let line = format!(
        "sink {message}; retry {attempt} in {}; {waiting} records waiting",
        show_duration(delay)
    );
    // A client error (401, 403, 404, …) is a configuration problem, worth an error.
    if message.contains(super::http::CLIENT_ERROR_HINT) {
        tracing::error!("{line}");
    } else {
        tracing::warn!("{line}");
    }
}

/// `/var/log/a.log offsets 120..4096, /var/log/b.log offset 77` for a drop's log line.
fn ranges(records: &[Record]) -> String {
    let mut spans: Vec<(&std::path::Path, u64, u64)> = Vec::new();
    for record in records {
        let path = record.source.path.as_path();
        match spans.iter_mut().find(|(p, _, _)| *p == path) {
            Some((_, low, high)) => {
                *low = (*low).min(record.end_offset);
                *high = (*high).max(record.end_offset);
            }
            None => spans.push((path, record.end_offset, record.end_offset)),
        }
    }
    spans
        .iter()
        .map(|(path, low, high)| {
            if low == high {
                format!("{} end offset {low}", path.display())
            } else {
                format!("{} end offsets {low}..{high}", path.display())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
