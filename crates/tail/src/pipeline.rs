//! Follower → processor → sinks, and acknowledgements → checkpoint: the run loop.
//!
//! One task owns the loop. It takes the follower's events in order, turns chunks into records
//! (or, on the raw stdout path, writes the chunk as is), hands each batch to every sink's
//! worker (waiting while a worker's queue is full: that is the backpressure that pauses
//! reading), and takes the workers' [`Ack`]s. The checkpoint holds, per file, the lowest offset
//! every sink has acknowledged — never further — and is written atomically at most every
//! [`CHECKPOINT_INTERVAL`] while something changed, and once more at the end.
//!
//! Offsets inside the loop are *virtual*: a file's offsets restart at 0 when it is truncated
//! (copytruncate), and an acknowledgement of a batch read before the truncation may arrive
//! after it. Adding a per-file base that grows at each truncation keeps every offset the loop
//! sees increasing, so the last acknowledgement of a sink is always its furthest, and the
//! checkpoint maps it back to a real offset (0 when nothing after the truncation is delivered).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pitcrew_core::admin::{self, AdminState};
use pitcrew_core::shutdown::{Shutdown, signal_name};
use pitcrew_follow::{Checkpoint, CheckpointEntry, Chunk, Event, FileInfo, FollowControl, Follower};
use tokio::sync::mpsc;

use crate::encode::EncodeContext;
use crate::metrics::{FileLabel, Metrics, SinkMetrics};
use crate::process::Processor;
use crate::record::Record;
use crate::sink::elasticsearch::ElasticsearchSink;
use crate::sink::http::HttpSink;
use crate::sink::loki::LokiSink;
use crate::sink::s3::S3Sink;
use crate::sink::stdout::{HeaderWriter, StdoutSink};
use crate::sink::syslog::SyslogSink;
use crate::sink::{Ack, SinkHandle, SinkSpec, spawn_worker};
use crate::{Config, Headers, Outcome, OutputFormat, TailError};

/// The checkpoint is written at most this often while acknowledgements come in. After a
/// kill -9, lines delivered in this last interval are sent again (never lost).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// How often `--exit-on` is looked for, metrics refreshed and readiness judged.
const TICK: Duration = Duration::from_millis(250);

/// See [`crate::run`].
// One select loop, read top to bottom: splitting it would scatter the order of events.
#[allow(clippy::too_many_lines)]
pub async fn run(
    config: Config,
    admin_listener: Option<tokio::net::TcpListener>,
    mut shutdown: Shutdown,
) -> Result<Outcome, TailError> {
    let started = Instant::now();
    let resume = match &config.checkpoint {
        Some(path) => {
            let loaded = Checkpoint::load(path)?;
            if let Some(checkpoint) = &loaded {
                tracing::info!(
                    "checkpoint {}: resuming {} file(s) where delivery stopped",
                    path.display(),
                    checkpoint.entries.len()
                );
            } else {
                tracing::info!("checkpoint {}: none yet, this is the first run", path.display());
            }
            loaded
        }
        None => None,
    };

    let names: Vec<String> = config.sinks.iter().map(SinkSpec::display_name).collect();
    let (metrics, registry) = Metrics::new(&names);
    let admin_state = AdminState::new(registry);
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin_listener.map(|listener| {
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!("admin server on {address}: /healthz, /readyz, /metrics");
        tokio::spawn(admin::serve(listener, admin_state.clone(), async move {
            let _ = admin_stopped.await;
        }))
    });

    let mut tracker = Tracker::new(config.sinks.len(), resume.clone());
    // Written once at start: a checkpoint path that cannot be written fails now (exit 74),
    // not after the first delivery.
    if let Some(path) = &config.checkpoint {
        tracker.checkpoint().save(path)?;
    }

    let context = Arc::new(EncodeContext {
        added_fields: config.process.added_fields.clone(),
    });
    let headers = match config.headers {
        Headers::Always => true,
        Headers::Never => false,
        Headers::Auto => {
            config.follow.patterns.len() > 1 || config.follow.patterns.iter().any(|p| is_glob(p))
        }
    };
    // When stdout is the only sink, records are written in this task as they come, with no
    // worker, queue or batch in between (stdout is local: a write that returns is delivered);
    // raw passthrough output does not even split the chunks into records.
    let stdout_only = matches!(config.sinks.as_slice(), [SinkSpec::Stdout]);
    let raw_stdout_only =
        stdout_only && config.output == OutputFormat::Raw && config.process.is_passthrough();
    let (ack_sender, mut acks) = mpsc::unbounded_channel::<Ack>();
    let mut sinks = Vec::new();
    if !stdout_only {
        for (index, spec) in config.sinks.iter().enumerate() {
            let handle = start_sink(
                &config,
                headers,
                spec,
                index,
                &names[index],
                &context,
                &ack_sender,
                &metrics,
            )?;
            tracing::info!("sink {}: ready", names[index]);
            sinks.push(handle);
        }
    }
    drop(ack_sender);

    let mut follow = config.follow.clone();
    follow.resume = resume;
    if !stdout_only {
        // The sinks' queues are the buffer that matters; chunks waiting in front of them would
        // only hold memory (each is a read buffer of up to 256 KiB).
        follow.channel_capacity = follow.channel_capacity.min(4);
    }
    let (mut follower, control) = Follower::start(follow)?;
    admin_state.set_ready(true);

    let mut raw_out = raw_stdout_only.then(|| HeaderWriter::new(headers));
    let mut stdout_out = (stdout_only && !raw_stdout_only).then(|| StdoutSink::new(config.output, headers));
    let mut processor = Processor::new(&config.process);
    let mut records: Vec<Record> = Vec::new();
    let mut bases: HashMap<u64, u64> = HashMap::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoint_due: Option<tokio::time::Instant> = None;
    let mut state = Ending::default();

    loop {
        let multiline_deadline = processor.next_deadline();
        tokio::select! {
            biased;
            signal = shutdown.recv(), if state.stop_deadline.is_none() => {
                state.stop(signal, &control, config.drain_timeout);
            }
            Some(ack) = acks.recv() => {
                tracker.ack(&ack);
                checkpoint_due.get_or_insert_with(|| tokio::time::Instant::now() + CHECKPOINT_INTERVAL);
            }
            () = sleep_until(checkpoint_due) => {
                checkpoint_due = None;
                save_checkpoint(&config, &mut tracker, &metrics)?;
            }
            () = sleep_until_std(multiline_deadline) => {
                processor.flush_expired(Instant::now(), &mut records);
                write_direct(&mut records, &mut stdout_out, &metrics.sinks[0], &mut tracker, &context, &mut checkpoint_due, &mut state, &control, config.drain_timeout);
                deliver(&mut records, &sinks, &mut shutdown, &mut state, &control, config.drain_timeout).await;
            }
            _ = ticker.tick() => {
                if !state.finishing && state.stop_deadline.is_none()
                    && let Some(path) = &config.exit_on
                    && path.exists()
                {
                    tracing::info!(
                        "{} appeared: reading every file to its end, delivering, then exiting",
                        path.display()
                    );
                    control.finish();
                    state.finishing = true;
                }
                refresh(&control, &metrics, &admin_state, &config, started, &tracker);
            }
            event = follower.next() => {
                let Some(event) = event else { break };
                match event {
                    Event::Lines(chunk) => {
                        let lines = memchr::memchr_iter(b'\n', &chunk.data).count() as u64;
                        metrics.read_lines.inc_by(lines);
                        metrics.read_bytes.inc_by(chunk.end - chunk.start);
                        let base = bases.get(&chunk.file.id).copied().unwrap_or(0);
                        tracker.refresh_key(&chunk.file);
                        if let Some(out) = &mut raw_out {
                            if let Err(err) = out.write_chunk(&chunk) {
                                // stdout is gone (the container runtime's pipe closed): nothing
                                // more can be delivered; the checkpoint keeps what was.
                                tracing::error!("stdout: cannot write: {err}; stopping");
                                state.stop(SIGPIPE, &control, config.drain_timeout);
                                continue;
                            }
                            tracker.ack_one(0, &chunk.file, base + chunk.end);
                            metrics.sinks[0].delivered_records.inc_by(lines);
                            metrics.sinks[0].delivered_bytes.inc_by(chunk.data.len() as u64);
                            checkpoint_due.get_or_insert_with(|| tokio::time::Instant::now() + CHECKPOINT_INTERVAL);
                        } else {
                            let shifted = Chunk { start: chunk.start + base, end: chunk.end + base, ..chunk };
                            processor.push(&shifted, SystemTime::now(), &mut records);
                            write_direct(&mut records, &mut stdout_out, &metrics.sinks[0], &mut tracker, &context, &mut checkpoint_due, &mut state, &control, config.drain_timeout);
                deliver(&mut records, &sinks, &mut shutdown, &mut state, &control, config.drain_timeout).await;
                        }
                    }
                    Event::Opened { file, offset, reason } => {
                        tracing::info!("following {} from offset {offset} ({reason})", file.path.display());
                        let base = bases.get(&file.id).copied().unwrap_or(0);
                        tracker.open(&file, base + offset);
                    }
                    Event::Truncated { file, at } => {
                        tracing::warn!(
                            "{}: truncated (copytruncate?) after {at} bytes were read; reading again from its start",
                            file.path.display()
                        );
                        processor.file_ended(file.id, &mut records);
                        write_direct(&mut records, &mut stdout_out, &metrics.sinks[0], &mut tracker, &context, &mut checkpoint_due, &mut state, &control, config.drain_timeout);
                deliver(&mut records, &sinks, &mut shutdown, &mut state, &control, config.drain_timeout).await;
                        let base = bases.entry(file.id).or_insert(0);
                        *base += at;
                        tracker.truncated(&file, *base);
                    }
                    Event::Released { file, offset } => {
                        tracing::info!(
                            "{}: rotated away or deleted, and read to its end ({offset} bytes): let go",
                            file.path.display()
                        );
                        processor.file_ended(file.id, &mut records);
                        write_direct(&mut records, &mut stdout_out, &metrics.sinks[0], &mut tracker, &context, &mut checkpoint_due, &mut state, &control, config.drain_timeout);
                deliver(&mut records, &sinks, &mut shutdown, &mut state, &control, config.drain_timeout).await;
                        let base = bases.remove(&file.id).unwrap_or(0);
                        tracker.release(&file, base + offset);
                        metrics.lag_bytes.remove(&FileLabel::of(&file.path));
                    }
                }
            }
        }
    }

    // The follower has ended (stop, finish, or the end of the files without -f): what the
    // processor still holds (a multiline group) is complete lines, so it goes out too.
    processor.flush_all(&mut records);
    write_direct(
        &mut records,
        &mut stdout_out,
        &metrics.sinks[0],
        &mut tracker,
        &context,
        &mut checkpoint_due,
        &mut state,
        &control,
        config.drain_timeout,
    );
    deliver(
        &mut records,
        &sinks,
        &mut shutdown,
        &mut state,
        &control,
        config.drain_timeout,
    )
    .await;
    if let Some(out) = &mut raw_out
        && let Err(err) = out.flush()
    {
        tracing::error!("stdout: cannot write: {err}");
    }
    let result = drain(
        sinks,
        &mut acks,
        &mut tracker,
        &mut shutdown,
        &mut state,
        &control,
        config.drain_timeout,
    )
    .await;
    save_checkpoint(&config, &mut tracker, &metrics)?;
    let _ = admin_stop.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    result.map(|()| {
        if state.stop_deadline.is_some() {
            Outcome::Stopped
        } else {
            Outcome::Finished
        }
    })
}

/// Not a real signal here: stdout closing ends the run like one.
const SIGPIPE: i32 = 13;

/// How the run is ending, if it is.
#[derive(Default)]
struct Ending {
    /// `--exit-on` appeared: the follower reads everything to its end, then ends.
    finishing: bool,
    /// A signal came: records not handed over or delivered by this time are given up (not
    /// acknowledged, so a restart reads them again).
    stop_deadline: Option<tokio::time::Instant>,
}

impl Ending {
    fn stop(&mut self, signal: i32, control: &FollowControl, drain_timeout: Duration) {
        if self.stop_deadline.is_some() {
            return;
        }
        let what = if signal == SIGPIPE {
            "stdout closed"
        } else {
            signal_name(signal)
        };
        tracing::info!(
            "{what}: stopping: no more reading; delivering what was read (up to --drain-timeout {})",
            pitcrew_core::duration::display(drain_timeout)
        );
        control.stop();
        self.stop_deadline = Some(tokio::time::Instant::now() + drain_timeout);
    }
}

/// Builds the sink for `spec` and starts its worker.
#[allow(clippy::too_many_arguments)]
fn start_sink(
    config: &Config,
    headers: bool,
    spec: &SinkSpec,
    index: usize,
    name: &str,
    context: &Arc<EncodeContext>,
    acks: &mpsc::UnboundedSender<Ack>,
    metrics: &Metrics,
) -> Result<SinkHandle, TailError> {
    let options = &config.sink_options;
    let worker_metrics = metrics.sinks[index].clone();
    let (delivery, context, acks, name) = (
        &config.delivery,
        Arc::clone(context),
        acks.clone(),
        name.to_owned(),
    );
    // One worker per sink; only how the sink is made differs.
    macro_rules! start {
        ($sink:expr) => {
            spawn_worker($sink, index, name, delivery, context, acks, worker_metrics)
        };
    }
    match spec {
        SinkSpec::Stdout => start!(StdoutSink::new(config.output, headers)),
        SinkSpec::Http(spec) => start!(HttpSink::new(spec, options)?),
        SinkSpec::Loki(spec) => start!(LokiSink::new(spec, options)?),
        SinkSpec::Elasticsearch(spec) => start!(ElasticsearchSink::new(spec, options)?),
        SinkSpec::Syslog(spec) => start!(SyslogSink::new(spec, options)?),
        SinkSpec::S3(spec) => start!(S3Sink::new(spec, options)?),
    }
}

/// The stdout-only path: writes `records` to stdout and acknowledges them at once (nothing
/// is left in `records`). Does nothing when records go to sink workers.
#[allow(clippy::too_many_arguments)]
fn write_direct(
    records: &mut Vec<Record>,
    out: &mut Option<StdoutSink>,
    metrics: &SinkMetrics,
    tracker: &mut Tracker,
    context: &EncodeContext,
    checkpoint_due: &mut Option<tokio::time::Instant>,
    state: &mut Ending,
    control: &FollowControl,
    drain_timeout: Duration,
) {
    let Some(out) = out else { return };
    if records.is_empty() {
        return;
    }
    let bytes = match out.write_records(records, context) {
        Ok(bytes) => bytes,
        Err(err) => {
            // stdout is gone: nothing more can be delivered; the checkpoint keeps what was.
            tracing::error!("stdout: cannot write: {err}; stopping");
            state.stop(SIGPIPE, control, drain_timeout);
            records.clear();
            return;
        }
    };
    metrics.delivered_records.inc_by(records.len() as u64);
    metrics.delivered_bytes.inc_by(bytes as u64);
    // Records come in file order: acknowledge the last of each run of one file.
    for (index, record) in records.iter().enumerate() {
        if records
            .get(index + 1)
            .is_none_or(|next| next.source.id != record.source.id)
        {
            tracker.ack_one(0, &record.source, record.end_offset);
        }
    }
    records.clear();
    checkpoint_due.get_or_insert_with(|| tokio::time::Instant::now() + CHECKPOINT_INTERVAL);
}

/// Hands the records to every sink, waiting while a sink's queue is full (backpressure). A
/// signal while waiting starts the stop; past the stop's deadline the records are given up
/// (they are not acknowledged, so a restart reads them again).
async fn deliver(
    records: &mut Vec<Record>,
    sinks: &[SinkHandle],
    shutdown: &mut Shutdown,
    state: &mut Ending,
    control: &FollowControl,
    drain_timeout: Duration,
) {
    if records.is_empty() {
        return;
    }
    let batch: Arc<[Record]> = records.drain(..).collect();
    for sink in sinks {
        let push = sink.push(Arc::clone(&batch));
        tokio::pin!(push);
        loop {
            tokio::select! {
                handed = &mut push => {
                    if !handed {
                        tracing::error!("sink {}: its worker has stopped; records not handed over", sink.name);
                    }
                    break;
                }
                signal = shutdown.recv(), if state.stop_deadline.is_none() => state.stop(signal, control, drain_timeout),
                () = sleep_until(state.stop_deadline) => {
                    tracing::warn!(
                        "sink {}: still full at the end of --drain-timeout; {} record(s) not handed over (a restart reads them again)",
                        sink.name,
                        batch.len()
                    );
                    break;
                }
            }
        }
    }
}

/// Closes every sink and waits for their last acknowledgements: without limit after
/// `--exit-on` or the end of the files (the point is to deliver everything), until the stop
/// deadline after a signal (which may also arrive while waiting).
async fn drain(
    sinks: Vec<SinkHandle>,
    acks: &mut mpsc::UnboundedReceiver<Ack>,
    tracker: &mut Tracker,
    shutdown: &mut Shutdown,
    state: &mut Ending,
    control: &FollowControl,
    drain_timeout: Duration,
) -> Result<(), TailError> {
    let mut late = Vec::new();
    let tasks: Vec<_> = sinks
        .into_iter()
        .map(|sink| (sink.name.clone(), sink.close()))
        .collect();
    for (name, mut task) in tasks {
        loop {
            tokio::select! {
                Some(ack) = acks.recv() => tracker.ack(&ack),
                _ = &mut task => break,
                signal = shutdown.recv(), if state.stop_deadline.is_none() => state.stop(signal, control, drain_timeout),
                () = sleep_until(state.stop_deadline) => {
                    task.abort();
                    late.push(name);
                    break;
                }
            }
        }
    }
    while let Ok(ack) = acks.try_recv() {
        tracker.ack(&ack);
    }
    if late.is_empty() {
        Ok(())
    } else {
        Err(TailError::Undelivered(format!(
            "sink(s) {} could not deliver everything within --drain-timeout {}; the checkpoint holds what \
             was delivered, so a restart sends the rest",
            late.join(", "),
            pitcrew_core::duration::display(drain_timeout)
        )))
    }
}

fn save_checkpoint(config: &Config, tracker: &mut Tracker, metrics: &Metrics) -> Result<(), TailError> {
    let Some(path) = &config.checkpoint else {
        return Ok(());
    };
    tracker.checkpoint().save(path)?;
    tracker.saved_at = Some(Instant::now());
    metrics.checkpoint_age_seconds.set(0);
    Ok(())
}

/// Metrics that are snapshots (lag, files, checkpoint age) and the readiness verdict.
fn refresh(
    control: &FollowControl,
    metrics: &Metrics,
    admin: &AdminState,
    config: &Config,
    started: Instant,
    tracker: &Tracker,
) {
    let files = control.status();
    metrics.files.set(i64::try_from(files.len()).unwrap_or(i64::MAX));
    let mut stalled = None;
    for file in &files {
        let lag = file.size.saturating_sub(file.read_offset);
        metrics
            .lag_bytes
            .get_or_create(&FileLabel::of(&file.file.path))
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        if lag > 0 && file.last_progress.elapsed() > config.ready_stall {
            stalled = Some(file.file.path.display().to_string());
        }
    }
    let age = tracker.saved_at.unwrap_or(started).elapsed().as_secs();
    if config.checkpoint.is_some() {
        metrics
            .checkpoint_age_seconds
            .set(i64::try_from(age).unwrap_or(i64::MAX));
    }
    let failing = metrics
        .sinks
        .iter()
        .zip(&config.sinks)
        .find(|(sink, _)| sink.failing_for().is_some_and(|d| d > config.ready_sink_failure))
        .map(|(_, spec)| spec.display_name());
    let ready = stalled.is_none() && failing.is_none();
    if ready != admin.is_ready() {
        match (&stalled, &failing) {
            (_, Some(sink)) => tracing::warn!(
                "not ready: sink {sink} has been failing for more than {}",
                pitcrew_core::duration::display(config.ready_sink_failure)
            ),
            (Some(file), None) => tracing::warn!(
                "not ready: {file} grows but nothing was read from it for more than {}",
                pitcrew_core::duration::display(config.ready_stall)
            ),
            (None, None) => tracing::info!("ready again"),
        }
        admin.set_ready(ready);
    }
}

fn is_glob(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_std(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What each sink has acknowledged, per file, and the checkpoint that follows from it.
struct Tracker {
    sinks: usize,
    files: HashMap<u64, Tracked>,
    /// Entries of the loaded checkpoint for files not opened (yet) in this run: kept while
    /// their file is still there, so a file the follower opens late does not start over.
    carried: Vec<CheckpointEntry>,
    saved_at: Option<Instant>,
}

struct Tracked {
    info: Arc<FileInfo>,
    /// Per sink, the last (hence furthest: virtual offsets only grow) acknowledged offset.
    acked: Vec<u64>,
    /// The virtual offset of the file's byte 0 now (grows at each truncation).
    base: u64,
    /// Read to its end and let go at this virtual offset.
    released_at: Option<u64>,
}

impl Tracker {
    fn new(sinks: usize, resume: Option<Checkpoint>) -> Self {
        Tracker {
            // The raw stdout path has no workers but acknowledges as sink 0.
            sinks: sinks.max(1),
            files: HashMap::new(),
            carried: resume.map(|checkpoint| checkpoint.entries).unwrap_or_default(),
            saved_at: None,
        }
    }

    fn open(&mut self, file: &Arc<FileInfo>, offset: u64) {
        self.carried
            .retain(|entry| (entry.key.dev, entry.key.ino) != (file.key.dev, file.key.ino));
        let tracked = self.files.entry(file.id).or_insert_with(|| Tracked {
            info: Arc::clone(file),
            acked: vec![offset; self.sinks],
            base: 0,
            released_at: None,
        });
        tracked.info = Arc::clone(file);
        tracked.released_at = None;
        for acked in &mut tracked.acked {
            *acked = (*acked).max(offset);
        }
    }

    fn refresh_key(&mut self, file: &Arc<FileInfo>) {
        if let Some(tracked) = self.files.get_mut(&file.id)
            && tracked.info.key != file.key
        {
            tracked.info = Arc::clone(file);
        }
    }

    fn truncated(&mut self, file: &Arc<FileInfo>, base: u64) {
        if let Some(tracked) = self.files.get_mut(&file.id) {
            tracked.base = base;
            tracked.info = Arc::clone(file);
        }
    }

    fn release(&mut self, file: &Arc<FileInfo>, offset: u64) {
        if let Some(tracked) = self.files.get_mut(&file.id) {
            tracked.released_at = Some(offset);
        }
        self.prune();
    }

    fn ack(&mut self, ack: &Ack) {
        for (file, offset) in &ack.offsets {
            self.ack_one(ack.sink, file, *offset);
        }
        self.prune();
    }

    fn ack_one(&mut self, sink: usize, file: &Arc<FileInfo>, offset: u64) {
        if let Some(tracked) = self.files.get_mut(&file.id)
            && let Some(acked) = tracked.acked.get_mut(sink)
        {
            *acked = (*acked).max(offset);
        }
    }

    /// Files let go and delivered everywhere leave the checkpoint.
    fn prune(&mut self) {
        self.files.retain(|_, tracked| match tracked.released_at {
            Some(end) => tracked.acked.iter().any(|&acked| acked < end),
            None => true,
        });
    }

    fn checkpoint(&mut self) -> Checkpoint {
        self.carried.retain(still_there);
        let mut entries = self.carried.clone();
        for tracked in self.files.values() {
            let delivered = tracked.acked.iter().copied().min().unwrap_or(0);
            entries.push(CheckpointEntry {
                key: tracked.info.key,
                path: tracked.info.path.clone(),
                offset: delivered.saturating_sub(tracked.base),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Checkpoint { entries }
    }
}

/// Whether a carried checkpoint entry's file still exists under its path.
fn still_there(entry: &CheckpointEntry) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(&entry.path)
        .is_ok_and(|meta| meta.dev() == entry.key.dev && meta.ino() == entry.key.ino)
}
