//! `cargo xtask bench wait`: pitcrew-wait against what pod specs use today, all measured in
//! the same run on this machine, printed as one table and written to its section of
//! BENCHMARKS.md.
//!
//! Contenders: the release musl `pitcrew-wait`; a busybox shell loop
//! (`until nc …; do sleep 1; done`, the usual init-container one-liner) run by Debian's
//! busybox-static; and Debian's `wait-for-it` (bash, `/dev/tcp`, one try per second).
//! Every dependency is a `TcpListener` this process binds on 127.0.0.1; nothing else is
//! contacted. Every loop and wait here is bounded.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{gzipped_size, percentile};
use crate::images;
use crate::util::{self, Result};

/// The goals, stated once so the table and the verdicts agree.
const GOAL_IMAGE_BYTES: u64 = 1_500_000;
const GOAL_RSS_KIB: u64 = 3_000_000 / 1024;
const GOAL_DELAY_FACTOR: f64 = 5.0;

/// The window for attempts per second: after the first 10 s, when a "fast at first" tool
/// should have backed off to a steady rate.
const WINDOW: (f64, f64) = (10.0, 20.0);
/// Where the steady-state rate (an extra figure, not a goal) is measured from.
const STEADY_FROM: f64 = 12.0;

/// The three ways of waiting for a TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Pitcrew,
    Busybox,
    WaitForIt,
}

const WAITERS: [Waiter; 3] = [Waiter::Pitcrew, Waiter::Busybox, Waiter::WaitForIt];

impl Waiter {
    fn label(self) -> &'static str {
        match self {
            Waiter::Pitcrew => "pitcrew-wait",
            Waiter::Busybox => "busybox loop",
            Waiter::WaitForIt => "wait-for-it",
        }
    }

    /// The command line, waiting for 127.0.0.1:`port` with no deadline of its own.
    fn argv(self, binary: &Path, port: u16) -> Vec<String> {
        match self {
            Waiter::Pitcrew => vec![
                binary.display().to_string(),
                format!("tcp://127.0.0.1:{port}"),
                "--timeout".into(),
                "0".into(),
                "--log-format".into(),
                "json".into(),
                // Every attempt logged: the run's attempt count is read back from the log.
                "--verbose".into(),
            ],
            // Busybox nc has no -z: with stdin from /dev/null it connects, sends nothing and
            // exits 0 once the peer closes (the listener here closes every connection at
            // once); a refused connection exits 1. -w 1 bounds a connect that hangs.
            Waiter::Busybox => vec![
                "/bin/busybox".into(),
                "sh".into(),
                "-c".into(),
                format!(
                    "until /bin/busybox nc -w 1 127.0.0.1 {port} </dev/null; do /bin/busybox sleep 1; done"
                ),
            ],
            Waiter::WaitForIt => vec![
                "wait-for-it".into(),
                "-q".into(),
                "-t".into(),
                "0".into(),
                format!("127.0.0.1:{port}"),
            ],
        }
    }
}

fn spawn(argv: &[String], stderr: Stdio) -> Result<Child> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", argv[0]))
}

/// Accepts and closes every pending connection (busybox nc only exits once the peer closes).
fn drain(listener: &TcpListener) {
    while let Ok((stream, _)) = listener.accept() {
        drop(stream);
    }
}

/// Opens 127.0.0.1:`port` and returns how long `child` takes to exit after that, polling
/// every millisecond. Fails when it does not exit within `limit`.
fn time_to_exit(child: &mut Child, port: u16, limit: Duration, what: &str) -> Result<Duration> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|err| format!("cannot listen on 127.0.0.1:{port}: {err}"))?;
    let opened = Instant::now();
    listener
        .set_nonblocking(true)
        .map_err(|err| format!("cannot make the listener non-blocking: {err}"))?;
    while opened.elapsed() < limit {
        drain(&listener);
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(opened.elapsed()),
            Ok(Some(status)) => return Err(format!("{what} exited with {status} after the port opened")),
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(err) => return Err(format!("cannot wait for {what}: {err}")),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("{what} did not notice the open port within {limit:?}"))
}

/// Sleeps `delay`, failing if `child` exits meanwhile (it must still be waiting).
fn still_waiting_after(child: &mut Child, delay: Duration, what: &str) -> Result {
    let start = Instant::now();
    while start.elapsed() < delay {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}) before its port was opened"));
        }
        std::thread::sleep(Duration::from_millis(20).min(delay.saturating_sub(start.elapsed())));
    }
    Ok(())
}

/// (b) Peak RSS in KiB (GNU time's %M: the largest resident set of the process and the
/// children it waited for) while waiting ~3 s for a port that then opens.
fn peak_rss(waiter: Waiter, binary: &Path, scratch: &Path) -> Result<u64> {
    let port = pitcrew_testkit::free_port();
    let out = scratch.join(format!("rss-{}.txt", waiter.label().replace(' ', "-")));
    let mut argv = vec!["/usr/bin/time".to_owned(), "-f".into(), "%M".into(), "-o".into()];
    argv.push(out.display().to_string());
    argv.extend(waiter.argv(binary, port));
    let mut child = spawn(&argv, Stdio::null())?;
    still_waiting_after(&mut child, Duration::from_secs(3), waiter.label())?;
    time_to_exit(&mut child, port, Duration::from_secs(15), waiter.label())?;
    let text = std::fs::read_to_string(&out).map_err(|err| format!("{}: {err}", out.display()))?;
    text.lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| format!("GNU time wrote {text:?}, expected a number of KiB"))
}

/// (c) Detection delays: the port opens at a random moment 1–8 s after the waiter started.
/// The tools take turns within each round, in a shuffled order, so load affects them alike.
fn detection_delays(binary: &Path, runs: u32) -> Result<[Vec<Duration>; 3]> {
    let mut delays: [Vec<Duration>; 3] = Default::default();
    for round in 1..=runs {
        let mut order = WAITERS;
        fastrand::shuffle(&mut order);
        for waiter in order {
            let port = pitcrew_testkit::free_port();
            let open_after = Duration::from_millis(fastrand::u64(1_000..=8_000));
            let mut child = spawn(&waiter.argv(binary, port), Stdio::null())?;
            still_waiting_after(&mut child, open_after, waiter.label())?;
            let delay = time_to_exit(&mut child, port, Duration::from_secs(15), waiter.label())?;
            println!(
                "  round {round}/{runs}: {:<13} port opened after {:>4.1}s, noticed {:>6.1} ms later",
                waiter.label(),
                open_after.as_secs_f64(),
                delay.as_secs_f64() * 1e3
            );
            let index = WAITERS.iter().position(|w| *w == waiter).unwrap_or_default();
            delays[index].push(delay);
        }
    }
    Ok(delays)
}

/// What (d) found for one waiter.
struct Attempts {
    per_second: f64,
    in_window: usize,
    total: usize,
    /// Attempts/s from the mean gap between attempts after 12 s (past any ramp-up).
    steady: Option<f64>,
    /// pitcrew-wait's own count (JSON log lines with an attempt) over the whole run.
    logged: Option<usize>,
}

/// (d) Connection attempts per second in the 10–20 s window, for a port that never opens.
/// Counted the same way for every tool: `strace -f` records each connect() to the port (the
/// busybox loop forks nc, wait-for-it uses bash's /dev/tcp, so no log of their own would
/// count every try). The three run side by side for 21 s.
fn attempts(binary: &Path, scratch: &Path) -> Result<Vec<Attempts>> {
    let run_for = WINDOW.1 + 1.0;
    let mut running = Vec::new();
    for waiter in WAITERS {
        let port = pitcrew_testkit::free_port();
        let trace = scratch.join(format!("strace-{}.txt", waiter.label().replace(' ', "-")));
        let log = scratch.join(format!("log-{}.txt", waiter.label().replace(' ', "-")));
        let mut argv = vec![
            "strace".to_owned(),
            "-f".into(),
            "-ttt".into(),
            "-e".into(),
            "trace=connect".into(),
            "-o".into(),
            trace.display().to_string(),
            // timeout(1) ends the waiter; strace then ends by itself, its trace complete.
            "timeout".into(),
            "-s".into(),
            "KILL".into(),
            format!("{run_for}"),
        ];
        argv.extend(waiter.argv(binary, port));
        let log_file = std::fs::File::create(&log).map_err(|err| format!("{}: {err}", log.display()))?;
        let started = SystemTime::now();
        let child = spawn(&argv, Stdio::from(log_file))?;
        running.push((waiter, port, trace, log, started, child));
    }
    let mut results = Vec::new();
    for (waiter, port, trace, log, started, mut child) in running {
        let deadline = Instant::now() + Duration::from_secs_f64(run_for + 15.0);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("strace of {} did not end in time", waiter.label()));
                }
            }
        }
        let start = started
            .duration_since(UNIX_EPOCH)
            .map_err(|err| format!("clock before 1970: {err}"))?
            .as_secs_f64();
        let text = std::fs::read_to_string(&trace).map_err(|err| format!("{}: {err}", trace.display()))?;
        let needle = format!("htons({port})");
        let times: Vec<f64> = text
            .lines()
            .filter(|line| line.contains("connect(") && line.contains(&needle))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map(|at| at - start)
            .collect();
        let in_window = times.iter().filter(|t| (WINDOW.0..WINDOW.1).contains(*t)).count();
        let late: Vec<f64> = times.iter().copied().filter(|t| *t >= STEADY_FROM).collect();
        #[allow(clippy::cast_precision_loss)] // counts are tiny
        let steady = match (late.first(), late.last()) {
            (Some(first), Some(last)) if late.len() >= 3 && last > first => {
                Some((late.len() - 1) as f64 / (last - first))
            }
            _ => None,
        };
        let logged = (waiter == Waiter::Pitcrew).then(|| {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains("\"attempt\"") && line.contains("\"reason\""))
                .count()
        });
        #[allow(clippy::cast_precision_loss)] // counts are tiny
        let per_second = in_window as f64 / (WINDOW.1 - WINDOW.0);
        results.push(Attempts {
            per_second,
            in_window,
            total: times.len(),
            steady,
            logged,
        });
    }
    Ok(results)
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1e3)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Runs the whole benchmark; see the module docs.
// One straight script from measuring to the table: splitting it would only scatter the story.
#[allow(clippy::too_many_lines)]
pub fn wait(runs: u32) -> Result {
    util::ensure_packages(&["time", "busybox-static", "wait-for-it", "strace"], true)?;
    let started = Instant::now();
    println!("building the images first (cargo xtask images)");
    let built = images::build_all()?;
    let tool = images::tools()?
        .into_iter()
        .find(|tool| tool.name == "wait")
        .ok_or("no crates/wait")?;
    let binary: PathBuf = images::binary_path(&tool);
    let size_of = |image: &str| {
        built
            .iter()
            .find(|b| b.image == image)
            .map(|b| b.image_bytes)
            .ok_or_else(|| format!("{image} was not built"))
    };
    let wait_image = size_of("pitcrew/wait:dev")?;
    let busybox_image = size_of("pitcrew/busybox:dev")?;
    let binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());
    let wait_gzipped = gzipped_size("pitcrew/wait:dev")?;
    let busybox_gzipped = gzipped_size("pitcrew/busybox:dev")?;
    let scratch = tempfile::tempdir().map_err(|err| format!("cannot create a temp dir: {err}"))?;

    println!("\n(b) peak RSS while waiting ~3 s for a port that then opens");
    let mut rss = Vec::new();
    for waiter in WAITERS {
        let kib = peak_rss(waiter, &binary, scratch.path())?;
        println!("  {:<13} {kib} KiB", waiter.label());
        rss.push(kib);
    }

    println!("\n(c) detection delay, {runs} rounds (port opens 1-8 s after the start)");
    let mut delays = detection_delays(&binary, runs)?;
    for list in &mut delays {
        list.sort();
    }
    let median: Vec<Duration> = delays.iter().map(|d| percentile(d, 0.5)).collect();
    let p90: Vec<Duration> = delays.iter().map(|d| percentile(d, 0.9)).collect();

    println!(
        "\n(d) connection attempts/s in the {}-{} s window, a port that never opens (the three side by side)",
        WINDOW.0, WINDOW.1
    );
    let attempts = attempts(&binary, scratch.path())?;

    let loop_index = 1;
    let pass_image = wait_image <= GOAL_IMAGE_BYTES;
    let pass_rss = rss[0] <= GOAL_RSS_KIB;
    let pass_delay = median[0].as_secs_f64() * GOAL_DELAY_FACTOR <= median[loop_index].as_secs_f64();
    let pass_attempts = attempts[0].per_second <= attempts[loop_index].per_second;

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | pitcrew-wait | busybox loop | wait-for-it | goal (pitcrew-wait) | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| (a) image size | {} (binary {}; gzipped {}) | {} (gzipped {}) | n/a (needs bash) | ≤ {} | {} |",
        util::megabytes(wait_image),
        util::megabytes(binary_bytes),
        util::megabytes(wait_gzipped),
        util::megabytes(busybox_image),
        util::megabytes(busybox_gzipped),
        util::megabytes(GOAL_IMAGE_BYTES),
        verdict(pass_image)
    );
    let _ = writeln!(
        table,
        "| (b) peak RSS, waiting ~3 s | {} KiB | {} KiB | {} KiB | ≤ 3 MB ({GOAL_RSS_KIB} KiB) | {} |",
        rss[0],
        rss[1],
        rss[2],
        verdict(pass_rss)
    );
    let _ = writeln!(
        table,
        "| (c) detection delay, median (p90), {runs} runs | {} ({}) | {} ({}) | {} ({}) | ≥ {GOAL_DELAY_FACTOR}× lower than the loop: ≤ {} | {} |",
        ms(median[0]),
        ms(p90[0]),
        ms(median[1]),
        ms(p90[1]),
        ms(median[2]),
        ms(p90[2]),
        ms(median[loop_index].div_f64(GOAL_DELAY_FACTOR)),
        verdict(pass_delay)
    );
    let _ = writeln!(
        table,
        "| (d) connection attempts/s, {}-{} s, port never opens | {:.1} | {:.1} | {:.1} | ≤ the loop's ({:.1}) | {} |",
        WINDOW.0,
        WINDOW.1,
        attempts[0].per_second,
        attempts[1].per_second,
        attempts[2].per_second,
        attempts[loop_index].per_second,
        verdict(pass_attempts)
    );

    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- (a) `docker image inspect` sizes (MB = 10^6 bytes), the goal's measure; gzipped: `docker save IMAGE | gzip -6`, about what a node pulls (not a goal). pitcrew/busybox:dev is Debian's busybox-static FROM scratch."
    );
    let _ = writeln!(
        notes,
        "- (b) GNU time `%M` (max RSS of the process and the children it waited for); 1 run each."
    );
    let _ = writeln!(
        notes,
        "- (c) time from this process's `listen()` on 127.0.0.1 to the waiter's exit, polled every 1 ms; \
         the tools take turns in shuffled order each round. Median and p90 by nearest rank."
    );
    let _ = writeln!(
        notes,
        "- (d) every connect() to the port counted with `strace -f -e trace=connect` for all three tools \
         (connects in the window / 10 s; whole 21 s run: pitcrew-wait {}, busybox loop {}, wait-for-it {}); \
         cross-check: pitcrew-wait logged {} failed attempts in its JSON log over the run.",
        attempts[0].total,
        attempts[1].total,
        attempts[2].total,
        attempts[0]
            .logged
            .map_or_else(|| "?".to_owned(), |count| count.to_string())
    );
    let steady = |a: &Attempts| {
        a.steady
            .map_or_else(|| "?".to_owned(), |rate| format!("{rate:.2}"))
    };
    let _ = writeln!(
        notes,
        "- (d) connects in the window: pitcrew-wait {}, busybox loop {}, wait-for-it {}. pitcrew-wait's \
         backoff retries every 100 ms during its 10 s warm-up, then every 1 s (--interval) plus up to 20 % \
         jitter. Steady rate from {STEADY_FROM} s on (mean gap between \
         connects, not a goal): pitcrew-wait {}/s, busybox loop {}/s, wait-for-it {}/s.",
        attempts[0].in_window,
        attempts[1].in_window,
        attempts[2].in_window,
        steady(&attempts[0]),
        steady(&attempts[1]),
        steady(&attempts[2])
    );

    println!("\n{table}\n{notes}");
    let elapsed = started.elapsed();
    println!("bench took {:.0}s", elapsed.as_secs_f64());
    let intro = format!(
        "Written by `cargo xtask bench wait --runs {runs}`; rerun it to refresh (about 3 minutes with \
         the default 9 runs, 8 with 25).\n\n\
         What pod specs do today: a busybox shell loop (`until nc 127.0.0.1 PORT </dev/null; do sleep 1; done`, \
         Debian busybox-static 1.35) or `wait-for-it -q -t 0 127.0.0.1:PORT` (Debian's, bash). \
         pitcrew-wait is the release musl binary (`tcp://127.0.0.1:PORT`, default backoff: 100 ms retries for \
         the first 10 s, then every `--interval 1s`). All dependencies are listeners bound on 127.0.0.1 \
         by the benchmark itself; all figures come from one run."
    );
    super::write_section(
        "wait",
        "pitcrew-wait vs the shell loops it replaces",
        &intro,
        &table,
        &notes,
    )?;
    Ok(())
}
