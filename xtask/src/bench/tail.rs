//! `cargo xtask bench tail`: pitcrew-tail against GNU `tail -F` and busybox `tail -F`, all
//! following the same file while it is written as fast as possible, in the same run.
//!
//! How "done" is seen without trusting any tool's output: every contender's stdout goes to
//! /dev/null, and the benchmark reads the file position of the contender's descriptor for the
//! log from `/proc/PID/fdinfo` — the follower has read everything when that position reaches
//! the file's size. The HTTP case waits instead for pitcrew-tail's own
//! `pitcrew_tail_delivered_records` to reach the number of lines (nginx on loopback answers
//! every POST with 204 after reading the body). Peak RSS is the kernel's `VmHWM`, CPU the
//! process's user + system ticks, both from /proc at the end of the run.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{gzipped_size, median, peak_rss_kib};
use crate::images;
use crate::util::{self, Result};

/// Goal: raw following at least as fast as GNU tail.
const GOAL_RAW_FACTOR: f64 = 1.0;
/// Goal: JSON records to stdout.
const GOAL_JSON_LINES_PER_SECOND: f64 = 5_000_000.0;
/// Goal: file → HTTP ndjson, MiB/s of log read and delivered.
const GOAL_HTTP_MIB_PER_SECOND: f64 = 100.0;
/// Goal: peak RSS while sustaining 100k lines/s.
const GOAL_RSS_KIB: u64 = 8 * 1024;
/// Goal: image size.
const GOAL_IMAGE_BYTES: u64 = 4_000_000;
/// A contender that has not caught up this long after the writer finished has failed.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(300);

/// One access-log-like line, 100 bytes with its newline.
const LINE: &[u8] = b"10.1.2.3 - - [03/Dec/2026:07:41:02 +0000] \"GET /api/v1/orders?page=2 HTTP/1.1\" 200 5120 \"-\" \"k6\"\n";

/// What one contender did in one run.
struct Measured {
    elapsed: Duration,
    cpu: Duration,
    rss_kib: u64,
}

/// A follower under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    PitcrewRaw,
    Gnu,
    Busybox,
    PitcrewJson,
    PitcrewHttp,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::PitcrewRaw => "pitcrew-tail -n+1 -F",
            Contender::Gnu => "GNU tail -n+1 -F",
            Contender::Busybox => "busybox tail -n+1 -F",
            Contender::PitcrewJson => "pitcrew-tail --output json",
            Contender::PitcrewHttp => "pitcrew-tail --sink http://…",
        }
    }
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)]
pub fn tail(size_mib: u64, runs: u32) -> Result {
    util::ensure_packages(&["coreutils", "busybox-static", "nginx-light"], true)?;
    let started = Instant::now();
    println!("building the images first (cargo xtask images)");
    let built = images::build_all()?;
    let tools = images::tools()?;
    let tool = tools
        .iter()
        .find(|tool| tool.name == "tail")
        .ok_or("no crates/tail")?;
    let binary = images::binary_path(tool);
    let image_bytes = built
        .iter()
        .find(|b| b.image == tool.image())
        .map(|b| b.image_bytes)
        .ok_or_else(|| format!("{} was not built", tool.image()))?;
    let image_gzipped = gzipped_size(&tool.image())?;
    let binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());

    // On disk under target/, not /tmp (often tmpfs); the page cache serves the reads anyway.
    let scratch_root = util::target_dir().join("bench-tail");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch.path();
    let nginx = pitcrew_testkit::nginx::NginxPeer::start()
        .ok_or("nginx is not installed (apt-get install nginx-light)")?;
    let ingest = nginx.http_url("/ingest");

    let bytes = size_mib * 1024 * 1024 / LINE.len() as u64 * LINE.len() as u64;
    let lines = bytes / LINE.len() as u64;
    let contenders = [
        Contender::PitcrewRaw,
        Contender::Gnu,
        Contender::Busybox,
        Contender::PitcrewJson,
        Contender::PitcrewHttp,
    ];
    let mut results: Vec<Vec<Measured>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        // Alternate the order so that none always runs on a warmer (or busier) machine.
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let contender = contenders[index];
            let log = scratch.join("app.log");
            let _ = std::fs::remove_file(&log);
            File::create(&log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
            let admin = free_port()?;
            let child = spawn(contender, &binary, &log, &ingest, admin, scratch)?;
            let mut guard = Guard(child);
            let pid = guard.0.id();
            let fd = wait_for_open(pid, &log)?;
            let start = Instant::now();
            write_as_fast_as_possible(&log, bytes, None)?;
            let done = |_: &Instant| -> Result<bool> {
                if contender == Contender::PitcrewHttp {
                    Ok(delivered_records(admin)? >= lines)
                } else {
                    Ok(position(pid, fd)? >= bytes)
                }
            };
            wait_until(&done, contender.name())?;
            let elapsed = start.elapsed();
            let measured = Measured {
                elapsed,
                cpu: cpu_time(pid)?,
                rss_kib: peak_rss_kib(pid)?,
            };
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            println!(
                "  {}: {:.0} MiB/s, {:.2} M lines/s, CPU {:.2}s, peak RSS {} KiB",
                contender.name(),
                mib_per_second(bytes, elapsed),
                lines_per_second(lines, elapsed) / 1e6,
                measured.cpu.as_secs_f64(),
                measured.rss_kib
            );
            results[index].push(measured);
        }
        println!("  round {}/{runs} done", round + 1);
    }

    // Sustained 100k lines/s for 10 s: peak RSS of pitcrew-tail raw and shipping to HTTP.
    let mut sustained = Vec::new();
    for contender in [Contender::PitcrewRaw, Contender::PitcrewHttp, Contender::Gnu] {
        let log = scratch.join("app.log");
        let _ = std::fs::remove_file(&log);
        File::create(&log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let admin = free_port()?;
        let child = spawn(contender, &binary, &log, &ingest, admin, scratch)?;
        let mut guard = Guard(child);
        let pid = guard.0.id();
        let fd = wait_for_open(pid, &log)?;
        let rate_lines = 100_000u64;
        let seconds = 10u64;
        write_as_fast_as_possible(&log, rate_lines * seconds * LINE.len() as u64, Some(rate_lines))?;
        let total = rate_lines * seconds;
        let done = |_: &Instant| -> Result<bool> {
            if contender == Contender::PitcrewHttp {
                Ok(delivered_records(admin)? >= total)
            } else {
                Ok(position(pid, fd)? >= total * LINE.len() as u64)
            }
        };
        wait_until(&done, contender.name())?;
        let rss = peak_rss_kib(pid)?;
        let cpu = cpu_time(pid)?;
        let _ = guard.0.kill();
        let _ = guard.0.wait();
        let share = cpu.as_secs_f64() * 100.0 / Duration::from_secs(seconds).as_secs_f64();
        println!(
            "  sustained 100k lines/s, {}: peak RSS {rss} KiB, CPU {share:.1}%",
            contender.name()
        );
        sustained.push((contender, rss, share));
    }

    let summary: Vec<(f64, f64, f64, u64)> = results
        .iter_mut()
        .map(|list| {
            let mut elapsed: Vec<Duration> = list.iter().map(|m| m.elapsed).collect();
            let mut cpu: Vec<Duration> = list.iter().map(|m| m.cpu).collect();
            let mut rss: Vec<u64> = list.iter().map(|m| m.rss_kib).collect();
            let elapsed = median(&mut elapsed);
            (
                mib_per_second(bytes, elapsed),
                lines_per_second(lines, elapsed),
                median(&mut cpu).as_secs_f64(),
                median(&mut rss),
            )
        })
        .collect();
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };
    let raw_factor = summary[0].0 / summary[1].0;
    let pass_raw = raw_factor >= GOAL_RAW_FACTOR;
    let pass_json = summary[3].1 >= GOAL_JSON_LINES_PER_SECOND;
    let pass_http = summary[4].0 >= GOAL_HTTP_MIB_PER_SECOND;
    let rss_ok = sustained
        .iter()
        .filter(|(contender, _, _)| *contender != Contender::Gnu)
        .all(|(_, rss, _)| *rss <= GOAL_RSS_KIB);
    let pass_image = image_bytes <= GOAL_IMAGE_BYTES;

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| following {size_mib} MiB of 100-byte lines written as fast as possible, median of {runs} | MiB/s | M lines/s | CPU s | peak RSS | goal | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|");
    for (index, contender) in contenders.iter().enumerate() {
        let (mib, lps, cpu, rss) = summary[index];
        let (goal, result) = match contender {
            Contender::PitcrewRaw => (
                format!("≥ {GOAL_RAW_FACTOR}× GNU tail"),
                format!("{} ({raw_factor:.2}×)", verdict(pass_raw)),
            ),
            Contender::PitcrewJson => ("≥ 5 M lines/s".to_owned(), verdict(pass_json).to_owned()),
            Contender::PitcrewHttp => (
                format!("≥ {GOAL_HTTP_MIB_PER_SECOND:.0} MiB/s"),
                verdict(pass_http).to_owned(),
            ),
            Contender::Gnu | Contender::Busybox => ("anchor".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(
            table,
            "| {} → /dev/null{} | {mib:.0} | {:.2} | {cpu:.2} | {rss} KiB | {goal} | {result} |",
            contender.name(),
            if *contender == Contender::PitcrewHttp {
                " (nginx on loopback)"
            } else {
                ""
            },
            lps / 1e6
        );
    }
    for (contender, rss, cpu) in &sustained {
        let goal = if *contender == Contender::Gnu {
            "anchor"
        } else {
            "≤ 8 MB"
        };
        let result = if *contender == Contender::Gnu {
            "–"
        } else {
            verdict(*rss <= GOAL_RSS_KIB)
        };
        let _ = writeln!(
            table,
            "| sustained 100k lines/s for 10 s: {} | – | 0.10 | {cpu:.0}% of a core | {rss} KiB | {goal} | {result} |",
            contender.name()
        );
    }
    let _ = writeln!(
        table,
        "| image size | {} (binary {}; gzipped {}) | | | | ≤ 4 MB | {} |",
        util::megabytes(image_bytes),
        util::megabytes(binary_bytes),
        util::megabytes(image_gzipped),
        verdict(pass_image)
    );
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- Each follower starts on an empty file; the benchmark then appends the lines in 1 MiB writes as fast as \
         it can and stops the clock when the follower's read position (`/proc/PID/fdinfo`) reaches the end — or, \
         for the HTTP sink, when pitcrew-tail's `delivered_records` counter reaches the line count (ndjson records, \
         512 KiB batches (the default), to nginx answering 204)."
    );
    let _ = writeln!(
        notes,
        "- CPU is user + system time of the follower for the whole run; peak RSS is the kernel's VmHWM."
    );
    let _ = writeln!(
        notes,
        "- Sustained rows: 10,000 lines every 100 ms for 10 s; CPU as a share of one core over those 10 s. {}",
        if rss_ok { "" } else { "The RSS goal is MISSED." }
    );
    let _ = writeln!(
        notes,
        "- Reproduce: `cargo xtask bench tail --size-mib {size_mib} --runs {runs}` ({:.0} s here).",
        started.elapsed().as_secs_f64()
    );
    println!("\n{table}\n{notes}");
    super::write_section(
        "tail",
        "pitcrew-tail vs GNU and busybox `tail -F`",
        "Following a log file written as fast as possible, output to /dev/null, on the same machine in the same run; \
         then pitcrew-tail's JSON records and its HTTP sink, and memory at a steady 100k lines/s.",
        &table,
        &notes,
    )
}

/// Kills the contender if the benchmark fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(
    contender: Contender,
    binary: &Path,
    log: &Path,
    ingest: &str,
    admin: u16,
    scratch: &Path,
) -> Result<Child> {
    let log = log.display().to_string();
    let admin_addr = format!("--admin-addr=127.0.0.1:{admin}");
    let mut command = match contender {
        Contender::Gnu => {
            let mut command = Command::new("/usr/bin/tail");
            command.args(["-n+1", "-F", &log]);
            command
        }
        Contender::Busybox => {
            let mut command = Command::new("/bin/busybox");
            command.args(["tail", "-n+1", "-F", &log]);
            command
        }
        Contender::PitcrewRaw => {
            let mut command = Command::new(binary);
            command.args(["-n+1", "-F", &log, "--log-level=warn"]);
            command
        }
        Contender::PitcrewJson => {
            let mut command = Command::new(binary);
            command.args(["-n+1", "-F", &log, "--output=json", "--log-level=warn"]);
            command
        }
        Contender::PitcrewHttp => {
            let mut command = Command::new(binary);
            command.args([
                "-n+1",
                "-F",
                &log,
                &format!("--sink={ingest}"),
                &admin_addr,
                "--log-level=warn",
            ]);
            command
        }
    };
    command
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", contender.name()))
}

pub(super) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|err| format!("cannot find a free port: {err}"))
}

/// The descriptor number `pid` has `log` open as, once it has (up to 30 s).
pub(super) fn wait_for_open(pid: u32, log: &Path) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let target: PathBuf = log
        .canonicalize()
        .map_err(|err| format!("{}: {err}", log.display()))?;
    loop {
        if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for entry in entries.flatten() {
                if std::fs::read_link(entry.path()).is_ok_and(|path| path == target)
                    && let Ok(fd) = entry.file_name().to_string_lossy().parse()
                {
                    return Ok(fd);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "process {pid} did not open {} within 30 s",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The file position of descriptor `fd` of `pid`.
fn position(pid: u32, fd: u32) -> Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .map_err(|err| format!("process {pid} fd {fd}: {err} (did it exit?)"))?;
    info.lines()
        .find_map(|line| line.strip_prefix("pos:"))
        .and_then(|pos| pos.trim().parse().ok())
        .ok_or_else(|| format!("no pos in /proc/{pid}/fdinfo/{fd}"))
}

/// pitcrew-tail's `pitcrew_tail_delivered_records` total, from its admin server.
/// (0 while the admin server does not answer yet.)
fn delivered_records(admin: u16) -> Result<u64> {
    let Ok(text) =
        util::stdout_of(Command::new("curl").args(["-fsS", &format!("http://127.0.0.1:{admin}/metrics")]))
    else {
        return Ok(0);
    };
    // Counters print as integers (`…_total{sink="…"} 12345`).
    text.lines()
        .filter(|line| line.starts_with("pitcrew_tail_delivered_records"))
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|value| value.parse::<u64>().ok())
                .ok_or_else(|| format!("unexpected metrics line {line:?}"))
        })
        .sum()
}

fn wait_until(done: &impl Fn(&Instant) -> Result<bool>, what: &str) -> Result {
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    loop {
        if done(&Instant::now())? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not catch up within {CATCH_UP_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Appends `bytes` of [`LINE`]s to `log` in 1 MiB writes; `lines_per_second` paces it (in
/// steps of 100 ms), `None` writes as fast as possible.
fn write_as_fast_as_possible(log: &Path, bytes: u64, lines_per_second: Option<u64>) -> Result {
    let mut file = OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|err| format!("cannot open {}: {err}", log.display()))?;
    let per_block = (1024 * 1024) / LINE.len();
    let block: Vec<u8> = LINE.repeat(per_block);
    let start = Instant::now();
    let mut written = 0u64;
    let mut step = 0u64;
    while written < bytes {
        let mut take = (bytes - written).min(block.len() as u64);
        if let Some(rate) = lines_per_second {
            // 1/10 of a second's lines per step, at its time.
            take = take.min(rate / 10 * LINE.len() as u64);
            let due = start + Duration::from_millis(100 * step);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            step += 1;
        }
        let take = usize::try_from(take).unwrap_or(block.len());
        file.write_all(&block[..take])
            .map_err(|err| format!("cannot write {}: {err}", log.display()))?;
        written += take as u64;
    }
    Ok(())
}

pub(super) fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|err| format!("process {pid}: {err}"))?;
    // Fields after the command name (which may hold spaces, so split after its ')').
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; after the ')' field 3 (state) is [0].
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // Linux's USER_HZ is 100 on every architecture we run on.
    Ok(Duration::from_millis(ticks * 10))
}

#[allow(clippy::cast_precision_loss)]
fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

#[allow(clippy::cast_precision_loss)]
fn lines_per_second(lines: u64, elapsed: Duration) -> f64 {
    lines as f64 / elapsed.as_secs_f64()
}
