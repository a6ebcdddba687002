//! `cargo xtask bench metrics`: pitcrew-metrics against mtail (Debian's package) counting the
//! lines of the same nginx-like access log by status, on the same machine in the same run.
//!
//! The fair start: mtail reads a log file it finds at start-up from its end, and (this version,
//! 3.0.0~rc50, tried) also a file that appears later under its glob, so "read an existing file
//! from the start" is not something it does outside its debugging `-one_shot` mode. So both
//! contenders are started on the same EMPTY file, the benchmark waits until each has it open
//! (`/proc/PID/fd`) and serves `/metrics`, then appends the whole pre-generated log in 1 MiB
//! writes as fast as it can; the clock runs from the first write until the contender's
//! `http_requests_total` samples (summed over `status`) reach the number of lines, polled on
//! its `/metrics` every 20 ms. Both read the file as a tail follower would, in production
//! mode. pitcrew-metrics runs with `--from start` (the same thing on an empty file).
//!
//! Peak RSS is the kernel's VmHWM and CPU the process's user + system time, both read from
//! /proc at the end of each run. At the end, both contenders' per-status counts must agree
//! with the counts the generator wrote: a fast wrong answer is a failure, not a result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tail::{cpu_time, free_port, wait_for_open};
use super::{median, peak_rss_kib};
use crate::images;
use crate::util::{self, Result};

/// Goal: lines per second, as a multiple of mtail's.
const GOAL_SPEED_FACTOR: f64 = 3.0;
/// Goal: peak RSS, as a fraction of mtail's.
const GOAL_RSS_FRACTION: f64 = 1.0 / 3.0;
/// A contender that has not counted every line this long after the writes began has failed.
const DEADLINE: Duration = Duration::from_secs(600);

/// The one regex both contenders apply (RE2 syntax and Rust's agree on it): the status of a
/// combined-log-format line.
const REGEX: &str = r#"^\S+ \S+ \S+ \[[^\]]+\] "\S+ \S+ \S+" (?P<status>\d{3}) "#;

/// The statuses the generator writes, with their weights (out of 100).
const STATUSES: &[(&str, u32)] = &[
    ("200", 70),
    ("304", 8),
    ("301", 4),
    ("404", 10),
    ("499", 2),
    ("500", 4),
    ("502", 2),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    Pitcrew,
    Mtail,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Pitcrew => "pitcrew-metrics",
            Contender::Mtail => "mtail",
        }
    }
}

/// One run of one contender.
struct Measured {
    elapsed: Duration,
    cpu: Duration,
    rss_kib: u64,
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)] // one straight script from measuring to the table
pub fn metrics(lines: u64, runs: u32) -> Result {
    util::ensure_packages(&["mtail"], true)?;
    let started = Instant::now();
    let tool = images::tools()?
        .into_iter()
        .find(|tool| tool.name == "metrics")
        .ok_or("no crates/metrics with a binary")?;
    println!("building the release binary of pitcrew-metrics (musl, as its image ships it)");
    images::build_binaries(std::slice::from_ref(&tool), &[crate::platform::AMD64])?;
    let binary = images::cargo_binary_path(&tool, crate::platform::AMD64);
    let binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());
    let mtail_version = util::stdout_of(Command::new("mtail").arg("--version"))
        .ok()
        .and_then(|text| text.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());

    // On disk under target/, not /tmp (often tmpfs); the page cache serves the reads anyway.
    let scratch_root = util::target_dir().join("bench-metrics");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch.path();
    let source = scratch.join("source.log");
    let (bytes, expected) = generate(&source, lines)?;
    #[allow(clippy::cast_precision_loss)]
    let line_bytes = bytes as f64 / lines as f64;
    println!(
        "generated {lines} lines ({}, {line_bytes:.0} bytes a line on average)",
        util::megabytes(bytes)
    );
    let rules = scratch.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "rules:\n  - name: access\n    regex: '{REGEX}'\n    metrics:\n      - {{ name: http_requests_total, type: counter, labels: [status] }}\n"
        ),
    )
    .map_err(|err| format!("cannot write {}: {err}", rules.display()))?;
    let progs = scratch.join("progs");
    std::fs::create_dir_all(&progs).map_err(|err| format!("cannot create {}: {err}", progs.display()))?;
    std::fs::write(
        progs.join("access.mtail"),
        format!(
            "counter http_requests_total by status\n/{REGEX}/ {{\n  http_requests_total[$status]++\n}}\n"
        ),
    )
    .map_err(|err| format!("cannot write the mtail program: {err}"))?;

    let contenders = [Contender::Pitcrew, Contender::Mtail];
    let mut results: Vec<Vec<Measured>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        // Alternate the order so that neither always runs on a warmer (or busier) machine.
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let contender = contenders[index];
            let log = scratch.join("access.log");
            let _ = std::fs::remove_file(&log);
            File::create(&log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
            let port = free_port()?;
            let mut child = Guard(spawn(contender, &binary, &log, &rules, &progs, port, scratch)?);
            let pid = child.0.id();
            wait_serving(port, contender, &mut child)?;
            wait_for_open(pid, &log)?;
            let start = Instant::now();
            append(&source, &log)?;
            let counts = loop {
                let counts = http_get(port, "/metrics")
                    .map(|body| counts_by_status(&body))
                    .unwrap_or_default();
                if counts.values().sum::<u64>() >= lines {
                    break counts;
                }
                if start.elapsed() > DEADLINE {
                    return Err(format!(
                        "{} counted {} of {lines} lines within {DEADLINE:?}",
                        contender.name(),
                        counts.values().sum::<u64>()
                    ));
                }
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(format!(
                        "{} exited ({status}); its log: {}",
                        contender.name(),
                        tail_of(&scratch.join(format!("{}.err", contender.name())))
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let elapsed = start.elapsed();
            let measured = Measured {
                elapsed,
                cpu: cpu_time(pid)?,
                rss_kib: peak_rss_kib(pid)?,
            };
            drop(child);
            if counts != expected {
                return Err(format!(
                    "{} counted {counts:?}, the log holds {expected:?}",
                    contender.name()
                ));
            }
            println!(
                "  {}: {:.0}k lines/s, CPU {:.2}s, peak RSS {} KiB",
                contender.name(),
                lines_per_second(lines, elapsed) / 1e3,
                measured.cpu.as_secs_f64(),
                measured.rss_kib
            );
            results[index].push(measured);
        }
        println!("  round {}/{runs} done", round + 1);
    }

    let summary: Vec<(f64, f64, u64, String)> = results
        .iter()
        .map(|list| {
            let mut elapsed: Vec<Duration> = list.iter().map(|m| m.elapsed).collect();
            let mut cpu: Vec<Duration> = list.iter().map(|m| m.cpu).collect();
            let mut rss: Vec<u64> = list.iter().map(|m| m.rss_kib).collect();
            let each = list
                .iter()
                .map(|m| format!("{:.0}k", lines_per_second(lines, m.elapsed) / 1e3))
                .collect::<Vec<_>>()
                .join(", ");
            (
                lines_per_second(lines, median(&mut elapsed)),
                median(&mut cpu).as_secs_f64(),
                median(&mut rss),
                each,
            )
        })
        .collect();
    let (pitcrew, mtail) = (&summary[0], &summary[1]);
    let speed = pitcrew.0 / mtail.0;
    #[allow(clippy::cast_precision_loss)]
    let rss = pitcrew.2 as f64 / mtail.2 as f64;
    let speed_met = speed >= GOAL_SPEED_FACTOR;
    let rss_met = rss <= GOAL_RSS_FRACTION;
    let met = |ok: bool| if ok { "met" } else { "**not met**" };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| {lines} access-log lines counted by status, median of {runs} | lines/s | each run | CPU s | peak RSS | goal | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| pitcrew-metrics ({}, `--from start`) | {:.0}k | {} | {:.2} | {} KiB | ≥ {GOAL_SPEED_FACTOR}× mtail lines/s; ≤ 1/3 of its RSS | {} ({speed:.2}×); {} ({:.0} %) |",
        util::megabytes(binary_bytes),
        pitcrew.0 / 1e3,
        pitcrew.3,
        pitcrew.1,
        pitcrew.2,
        met(speed_met),
        met(rss_met),
        rss * 100.0
    );
    let _ = writeln!(
        table,
        "| mtail {mtail_version} (Debian) | {:.0}k | {} | {:.2} | {} KiB | anchor | – |",
        mtail.0 / 1e3,
        mtail.3,
        mtail.1,
        mtail.2
    );
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- The log: {lines} nginx combined-format lines generated from a fixed seed ({}, statuses 200/304/301/404/499/500/502), \
         the same bytes for both. Rule and program: one regex, `{}`, and a counter `http_requests_total` by `status`; \
         both contenders' final counts per status are checked against the generator's.",
        util::megabytes(bytes),
        REGEX.replace('|', "\\|")
    );
    let _ = writeln!(
        notes,
        "- The fair start: mtail reads a file found at start-up from its end, and a file that appears later under its glob \
         was not read from its start either (tried here), so both are started on the same empty file and the log is then \
         appended in 1 MiB writes as fast as possible; the clock runs from the first write until the counter samples on \
         `/metrics` (polled every 20 ms) add up to {lines}. Both run alone, one after the other, in alternating order."
    );
    let _ = writeln!(
        notes,
        "- pitcrew-metrics: the release musl binary (`cargo xtask images` builds the same), `--config rules.yaml --log FILE --from start`. \
         mtail: `--progs DIR --logs FILE --port P --address 127.0.0.1` with its defaults (250 ms polling)."
    );
    let _ = writeln!(
        notes,
        "- CPU is user + system time for the whole run; peak RSS is the kernel's VmHWM. The result column: {} for speed, {} for memory.",
        if speed_met { "met" } else { "NOT met" },
        if rss_met { "met" } else { "NOT met" }
    );
    let _ = writeln!(
        notes,
        "- Reproduce: `cargo xtask bench metrics --lines {lines} --runs {runs}` ({:.0} s here, the release build included).",
        started.elapsed().as_secs_f64()
    );
    println!("\n{table}\n{notes}");
    println!(
        "goal ≥ {GOAL_SPEED_FACTOR}× mtail lines/s: {} ({speed:.2}×); goal ≤ 1/3 of mtail's RSS: {} ({:.0} %)",
        met(speed_met),
        met(rss_met),
        rss * 100.0
    );
    super::write_section(
        "metrics",
        "pitcrew-metrics vs mtail",
        "Counting the lines of an access log by status with one regex, on the same machine in the same run.",
        &table,
        &notes,
    )
}

/// Writes `lines` combined-format lines to `path` from a fixed seed; returns the bytes written
/// and the count per status.
fn generate(path: &Path, lines: u64) -> Result<(u64, BTreeMap<String, u64>)> {
    const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"];
    const PATHS: &[&str] = &[
        "/",
        "/api/v1/orders",
        "/api/v1/orders/",
        "/api/v1/users/",
        "/static/app.js",
        "/static/style.css",
        "/healthz",
        "/login",
    ];
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "curl/8.5.0",
        "kube-probe/1.30",
        "Go-http-client/1.1",
    ];
    let mut rng = fastrand::Rng::with_seed(13);
    let file = File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut line = String::with_capacity(256);
    for index in 0..lines {
        let mut pick = rng.u32(0..100);
        let status = STATUSES
            .iter()
            .find(|(_, weight)| {
                if pick < *weight {
                    true
                } else {
                    pick -= weight;
                    false
                }
            })
            .map_or("200", |(status, _)| status);
        *counts.entry(status.to_owned()).or_default() += 1;
        line.clear();
        let second = index % 60;
        let minute = (index / 60) % 60;
        let _ = writeln!(
            line,
            "10.{}.{}.{} - - [03/Dec/2026:07:{minute:02}:{second:02} +0000] \"{} {}{} HTTP/1.1\" {status} {} \"-\" \"{}\"",
            rng.u8(..),
            rng.u8(..),
            rng.u8(..),
            METHODS[rng.usize(..METHODS.len())],
            PATHS[rng.usize(..PATHS.len())],
            rng.u32(0..10_000),
            rng.u32(0..100_000),
            AGENTS[rng.usize(..AGENTS.len())],
        );
        out.write_all(line.as_bytes())
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        bytes += line.len() as u64;
    }
    out.flush()
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    Ok((bytes, counts))
}

/// Appends `source` to `log` in 1 MiB writes, as fast as possible.
fn append(source: &Path, log: &Path) -> Result {
    let mut from = File::open(source).map_err(|err| format!("cannot open {}: {err}", source.display()))?;
    let mut to = OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|err| format!("cannot open {}: {err}", log.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = from
            .read(&mut buffer)
            .map_err(|err| format!("cannot read {}: {err}", source.display()))?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read])
            .map_err(|err| format!("cannot write {}: {err}", log.display()))?;
    }
}

/// Stops the contender when the run ends or the benchmark fails half-way.
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
    rules: &Path,
    progs: &Path,
    port: u16,
    scratch: &Path,
) -> Result<Child> {
    let mut command = match contender {
        Contender::Pitcrew => {
            let mut command = Command::new(binary);
            command.arg("--config").arg(rules).arg("--log").arg(log).args([
                "--from=start",
                &format!("--admin-addr=127.0.0.1:{port}"),
                "--log-level=warn",
            ]);
            command
        }
        Contender::Mtail => {
            let mut command = Command::new("mtail");
            command.arg("--progs").arg(progs).arg("--logs").arg(log).args([
                "--port",
                &port.to_string(),
                "--address",
                "127.0.0.1",
                "--logtostderr",
            ]);
            command
        }
    };
    let errors = scratch.join(format!("{}.err", contender.name()));
    let errors = File::create(&errors).map_err(|err| format!("cannot create {}: {err}", errors.display()))?;
    command
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errors)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", contender.name()))
}

/// Waits (up to 30 s) until `/metrics` answers on `port`.
fn wait_serving(port: u16, contender: Contender, child: &mut Guard) -> Result {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(port, "/metrics").is_none() {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!("{} exited at start-up ({status})", contender.name()));
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not serve /metrics within 30 s", contender.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn tail_of(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// The body of a GET on 127.0.0.1:`port` with status 200, or `None`.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    // HTTP/1.0: the body comes whole, never in chunks whose sizes could split a sample.
    Some(body.to_owned())
}

/// `http_requests_total{…status="NNN"…} VALUE` samples summed per status (both contenders
/// print the family under this name; mtail adds a `prog` label).
fn counts_by_status(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(status) = labels
            .split_once("status=\"")
            .and_then(|(_, after)| after.split_once('"'))
            .map(|(status, _)| status)
        else {
            continue;
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|value| value.parse::<f64>().ok())
        else {
            continue;
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = value as u64;
        *counts.entry(status.to_owned()).or_default() += value;
    }
    counts
}

#[allow(clippy::cast_precision_loss)]
fn lines_per_second(lines: u64, elapsed: Duration) -> f64 {
    lines as f64 / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_expositions_are_summed_by_status() {
        let pitcrew = "# TYPE http_requests counter\nhttp_requests_total{status=\"200\"} 12.0\nhttp_requests_total{status=\"404\"} 3.0\n# EOF\n";
        let mtail = "http_requests_total{prog=\"access.mtail\",status=\"200\"} 12\nhttp_requests_total{prog=\"access.mtail\",status=\"404\"} 3\nmtail_lines_total 15\n";
        let want: BTreeMap<String, u64> = [("200".to_owned(), 12), ("404".to_owned(), 3)].into();
        assert_eq!(counts_by_status(pitcrew), want);
        assert_eq!(counts_by_status(mtail), want);
    }

    #[test]
    fn the_generated_log_is_deterministic_and_matches_the_regex_shape() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let (bytes, counts) = generate(&a, 1000).unwrap();
        assert_eq!(generate(&b, 1000).unwrap(), (bytes, counts.clone()));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(counts.values().sum::<u64>(), 1000);
        let text = std::fs::read_to_string(&a).unwrap();
        for line in text.lines() {
            // `… "GET /x HTTP/1.1" 200 …`: the status follows the request's closing quote.
            let status = line.split("\" ").nth(1).and_then(|rest| rest.split(' ').next());
            assert!(status.is_some_and(|s| counts.contains_key(s)), "{line}");
        }
    }
}
