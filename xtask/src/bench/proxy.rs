//! `cargo xtask bench proxy`: pitcrew-proxy against the proxies pod specs use today (nginx
//! `proxy_pass` and haproxy, Debian's packages), in front of the same nginx upstream in the same
//! run, loaded by wrk: requests per second, p50 and p99 latency, peak RSS, CPU per request; and
//! pitcrew-proxy again with JWT authentication on (an HS256 token on every request).
//!
//! The set-up, on the 2 cores of the machine:
//! - core 1: the proxy under test, alone (`taskset -c 1`), with one worker each: nginx
//!   `worker_processes 1` (single-process mode, so the process measured is the one serving),
//!   haproxy `nbthread 1`, pitcrew-proxy with its default single-threaded runtime (`--workers`
//!   is left at 1);
//! - core 0: wrk (one thread, a fixed number of keep-alive connections) and the upstream, an
//!   nginx with one worker answering `200` with a 24-byte body from `return` (no file read), no
//!   access log.
//!
//! Every contender is as a pod spec would configure it for this job, without tuning beyond
//! what makes the comparison fair: no access log anywhere (nginx `access_log off`, haproxy
//! without `log`, pitcrew-proxy `--access-log off`), keep-alive to the upstream (nginx
//! `keepalive` in its `upstream` block with `proxy_http_version 1.1`; haproxy and pitcrew-proxy
//! do it by default), and `keepalive_requests` raised on both nginx servers so that no side
//! closes a connection every 1000 requests, which haproxy and pitcrew-proxy never do.
//!
//! Each contender is started fresh for each run, checked (a GET through it must return the
//! upstream's body; with JWT, no token must give 401 and the token 200 with the identity seen by
//! the upstream), warmed up for 2 s, then measured. A run with any non-2xx answer or socket
//! error fails the benchmark: a fast wrong answer is not a result. Runs alternate their order;
//! the table shows medians. A row "direct" (wrk straight to the upstream) shows the ceiling of
//! core 0: a proxy close to it is limited by the load generator, not by itself, which the CPU
//! per request then shows.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::Digest as _;

use super::tail::{cpu_time, free_port};
use super::{median, peak_rss_kib};
use crate::util::{self, Result};
use crate::{images, platform};

/// Goal: pitcrew-proxy's requests/s as a multiple of haproxy's.
const GOAL_RPS_VS_HAPROXY: f64 = 1.2;
/// Goal: pitcrew-proxy's peak RSS, KiB (5 MiB).
const GOAL_RSS_KIB: u64 = 5 * 1024;
/// Goal: requests/s with JWT authentication on, as a fraction of the same proxy without.
const GOAL_JWT_FACTOR: f64 = 0.9;
/// wrk's warm-up before each measured run (connections opened, caches and pools filled).
const WARM_UP_SECONDS: u64 = 2;
/// The core the proxy under test runs on, alone.
const PROXY_CORE: &str = "1";
/// The core wrk and the upstream share.
const LOAD_CORE: &str = "0";
/// What the upstream answers to every request.
const UPSTREAM_BODY: &str = "hello from the upstream\n";
/// The upstream copies the identity header the proxy sets into this response header, so the
/// check before a JWT run sees that the token's subject reached the app.
const SEEN_USER_HEADER: &str = "x-seen-user";
/// The `sub` of the benchmark's token.
const JWT_SUBJECT: &str = "bench";
/// The HS256 secret (what `--jwt-secret-file` holds; no newline).
const JWT_SECRET: &str = "pitcrew-bench-hs256-secret-0123456789abcdef";
/// How long a contender may take to answer its first request.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Pitcrew,
    PitcrewJwt,
    Nginx,
    Haproxy,
    /// wrk straight to the upstream: the ceiling of the load core.
    Direct,
}

const ALL: [Contender; 5] = [
    Contender::Pitcrew,
    Contender::PitcrewJwt,
    Contender::Nginx,
    Contender::Haproxy,
    Contender::Direct,
];

impl Contender {
    /// The name `--only` takes.
    fn key(self) -> &'static str {
        match self {
            Contender::Pitcrew => "pitcrew",
            Contender::PitcrewJwt => "pitcrew-jwt",
            Contender::Nginx => "nginx",
            Contender::Haproxy => "haproxy",
            Contender::Direct => "direct",
        }
    }

    fn is_pitcrew(self) -> bool {
        matches!(self, Contender::Pitcrew | Contender::PitcrewJwt)
    }
}

/// What `cargo xtask bench proxy` is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds wrk measures each contender, after the warm-up.
    pub seconds: u64,
    /// Connections wrk keeps open.
    pub connections: u32,
    /// Measured runs per contender.
    pub runs: u32,
    /// Only these contenders (`--only`), by [`Contender::key`].
    pub only: Option<Vec<String>>,
}

/// What wrk reported for one run.
#[derive(Debug, Clone, PartialEq)]
struct Wrk {
    requests_per_second: f64,
    requests: u64,
    p50: Duration,
    p99: Duration,
    non_2xx: u64,
    socket_errors: u64,
}

/// One measured run of one contender.
#[derive(Debug, Clone)]
struct Measured {
    wrk: Wrk,
    /// The proxy's VmHWM at the end of the run (none for "direct").
    rss_kib: Option<u64>,
    /// The proxy's user + system CPU time during the measured part, per request.
    cpu_per_request: Option<Duration>,
}

/// Everything the contenders share in one benchmark.
struct Setup {
    scratch: PathBuf,
    upstream_port: u16,
    pitcrew_binary: Option<PathBuf>,
    secret_file: PathBuf,
    token: String,
    options: Options,
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)] // one straight script from the set-up to the table
pub fn proxy(options: Options) -> Result {
    util::ensure_packages(&["nginx-light", "haproxy", "wrk", "util-linux"], true)?;
    let started = Instant::now();
    let load_before = load_average();
    let contenders = chosen(options.only.as_deref())?;
    check_cores()?;

    let mut pitcrew_binary = None;
    let mut binary_bytes = 0;
    if contenders.iter().any(|contender| contender.is_pitcrew()) {
        let tool = images::tools()?
            .into_iter()
            .find(|tool| tool.name == "proxy")
            .ok_or("no crates/proxy with a binary")?;
        println!("building the release binary of pitcrew-proxy (musl, as its image ships it)");
        images::build_binaries(std::slice::from_ref(&tool), &[platform::AMD64])?;
        let binary = images::cargo_binary_path(&tool, platform::AMD64);
        binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());
        pitcrew_binary = Some(binary);
    }
    let versions = Versions::read();

    // On disk under target/, not /tmp: the configuration and logs of every contender.
    let scratch_root = util::target_dir().join("bench-proxy");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch_dir =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch_dir.path().to_path_buf();
    for dir in ["tmp", "upstream", "nginx", "haproxy", "pitcrew"] {
        std::fs::create_dir_all(scratch.join(dir))
            .map_err(|err| format!("cannot create {dir} in {}: {err}", scratch.display()))?;
    }
    let secret_file = scratch.join("pitcrew").join("jwt-secret");
    std::fs::write(&secret_file, JWT_SECRET)
        .map_err(|err| format!("cannot write {}: {err}", secret_file.display()))?;
    let token = hs256_token(JWT_SECRET.as_bytes(), JWT_SUBJECT, unix_now() + 86_400);

    let (upstream, upstream_port) = start_upstream(&scratch)?;
    println!(
        "upstream: nginx (one worker, core {LOAD_CORE}) on 127.0.0.1:{upstream_port}, pid {}",
        upstream.0.id()
    );
    let setup = Setup {
        scratch: scratch.clone(),
        upstream_port,
        pitcrew_binary,
        secret_file,
        token,
        options,
    };
    let options = &setup.options;

    let mut results: Vec<Vec<Measured>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..options.runs {
        // Alternate the order so that no contender always runs on a warmer (or busier) machine.
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let contender = contenders[index];
            let measured = measure(contender, &setup)?;
            println!(
                "  {}: {:.1}k requests/s, p50 {}, p99 {}{}{}",
                versions.label(contender),
                measured.wrk.requests_per_second / 1e3,
                show_latency(measured.wrk.p50),
                show_latency(measured.wrk.p99),
                measured
                    .rss_kib
                    .map(|kib| format!(", peak RSS {kib} KiB"))
                    .unwrap_or_default(),
                measured
                    .cpu_per_request
                    .map(|cpu| format!(", CPU {:.1} µs/request", micros(cpu)))
                    .unwrap_or_default(),
            );
            results[index].push(measured);
        }
        println!("  round {}/{} done", round + 1, options.runs);
    }
    drop(upstream);

    let summary: Vec<(Contender, Summary)> = contenders
        .iter()
        .zip(&results)
        .map(|(&contender, list)| (contender, Summary::of(list)))
        .collect();
    let find = |wanted: Contender| summary.iter().find(|(c, _)| *c == wanted).map(|(_, s)| s);
    let goals = match (
        find(Contender::Pitcrew),
        find(Contender::PitcrewJwt),
        find(Contender::Nginx),
        find(Contender::Haproxy),
    ) {
        (Some(pitcrew), Some(jwt), Some(nginx), Some(haproxy)) => {
            Some(Goals::judge(pitcrew, jwt, nginx, haproxy))
        }
        _ => None,
    };

    let table = table(&summary, goals.as_ref(), &versions, binary_bytes, options);
    let mut notes = notes(options, &versions, goals.as_ref(), started.elapsed());
    // Other work on the machine shares the pinned cores: the load says how quiet it was.
    let _ = writeln!(
        notes,
        "- Load average (1 min) before and after: {load_before} and {}.",
        load_average()
    );
    println!("\n{table}\n{notes}");
    let Some(goals) = goals else {
        println!(
            "BENCHMARKS.md not written: the goals compare pitcrew-proxy (with and without JWT), nginx and \
             haproxy, and --only left some out"
        );
        return Ok(());
    };
    println!("{}", goals.summary());
    super::write_section(
        "proxy",
        "pitcrew-proxy vs nginx proxy_pass and haproxy",
        "HTTP/1.1 keep-alive requests through each proxy to the same nginx upstream on loopback, loaded by wrk, one \
         worker per proxy pinned to a core of its own; the same machine in the same run.",
        &table,
        &notes,
    )
}

/// The contenders `--only` names (all when `None`), in the table's order.
fn chosen(only: Option<&[String]>) -> Result<Vec<Contender>> {
    let Some(only) = only else {
        return Ok(ALL.to_vec());
    };
    for name in only {
        if !ALL.iter().any(|contender| contender.key() == name.as_str()) {
            return Err(format!(
                "--only: no contender {name:?}; expected some of {}",
                ALL.map(Contender::key).join(", ")
            ));
        }
    }
    Ok(ALL
        .iter()
        .copied()
        .filter(|contender| only.iter().any(|name| name == contender.key()))
        .collect())
}

/// The benchmark pins the proxy to core 1 and the load to core 0: both must be ours.
fn check_cores() -> Result {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cores < 2 || !util::succeeds(Command::new("taskset").args(["-c", "0,1", "true"])) {
        return Err(format!(
            "the proxy benchmark needs cores 0 and 1 (the proxy on one, wrk and the upstream on the other); \
             this process may use {cores}"
        ));
    }
    Ok(())
}

/// The versions of the anchors, for the table.
struct Versions {
    nginx: String,
    haproxy: String,
    wrk: String,
}

impl Versions {
    fn read() -> Self {
        // `nginx -v` prints to stderr: "nginx version: nginx/1.22.1".
        let nginx = Command::new("nginx")
            .arg("-v")
            .output()
            .ok()
            .and_then(|out| {
                let text = String::from_utf8_lossy(&out.stderr).into_owned();
                text.split('/').nth(1).map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        // "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
        let haproxy = util::stdout_of(Command::new("haproxy").arg("-v"))
            .ok()
            .and_then(|text| text.split_whitespace().nth(2).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        // `wrk -v` prints "wrk 4.1.0 [epoll] Copyright …" and exits 1.
        let wrk = Command::new("wrk")
            .arg("-v")
            .output()
            .ok()
            .and_then(|out| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                text.split_whitespace().nth(1).map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into());
        Self { nginx, haproxy, wrk }
    }

    fn label(&self, contender: Contender) -> String {
        match contender {
            Contender::Pitcrew => "pitcrew-proxy".into(),
            Contender::PitcrewJwt => "pitcrew-proxy, JWT (HS256) on".into(),
            Contender::Nginx => format!("nginx {} proxy_pass", self.nginx),
            Contender::Haproxy => format!("haproxy {}", self.haproxy),
            Contender::Direct => "direct to the upstream (no proxy)".into(),
        }
    }
}

/// Stops a process when it is dropped (a run ends or the benchmark fails half-way).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `taskset -c CORE PROGRAM ARGS…`: taskset execs the program, so the child's pid is the
/// program's (what VmHWM and the CPU time are read from).
fn pinned(core: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", core]).arg(program);
    command
}

/// Starts `command` with stdout and stderr to `log`.
fn spawn(mut command: Command, log: &Path, what: &str) -> Result<Guard> {
    let file = File::create(log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
    let errors = file
        .try_clone()
        .map_err(|err| format!("cannot reopen {}: {err}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(errors)
        .spawn()
        .map(Guard)
        .map_err(|err| format!("cannot start {what} (`{}`): {err}", util::show(&command)))
}

/// The temp paths every nginx of the benchmark uses (the package's defaults need its own
/// directories under /var/lib/nginx).
fn nginx_temp_paths(scratch: &Path) -> String {
    let tmp = scratch.join("tmp");
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .fold(String::new(), |mut lines, kind| {
            let _ = writeln!(lines, "    {kind}_temp_path {};", tmp.join(kind).display());
            lines
        })
}

/// The upstream: nginx, one process, answering [`UPSTREAM_BODY`] to everything.
fn upstream_config(scratch: &Path, port: u16) -> String {
    format!(
        "# The benchmark's upstream: one process, no access log, a fixed answer from memory.\n\
         worker_processes 1;\n\
         master_process off;\n\
         daemon off;\n\
         pid {pid};\n\
         events {{}}\n\
         http {{\n\
         {temp}    access_log off;\n\
         \x20   # The proxies keep their connections: none is closed every 1000 requests.\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   keepalive_timeout 300s;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{\n\
         \x20           default_type text/plain;\n\
         \x20           # What the proxy said the user is, back to the client (empty: no header).\n\
         \x20           add_header X-Seen-User $http_x_forwarded_user;\n\
         \x20           return 200 \"{body}\";\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        pid = scratch.join("upstream").join("nginx.pid").display(),
        temp = nginx_temp_paths(scratch),
        body = UPSTREAM_BODY.replace('\n', "\\n"),
    )
}

/// nginx as the proxy: one process, keep-alive to the upstream.
fn nginx_proxy_config(scratch: &Path, port: u16, upstream_port: u16, connections: u32) -> String {
    format!(
        "# nginx as an auth-less reverse proxy, as a pod spec's sidecar would run it: one worker.\n\
         worker_processes 1;\n\
         master_process off;\n\
         daemon off;\n\
         pid {pid};\n\
         events {{}}\n\
         http {{\n\
         {temp}    access_log off;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   keepalive_timeout 300s;\n\
         \x20   upstream app {{\n\
         \x20       server 127.0.0.1:{upstream_port};\n\
         \x20       # Idle keep-alive connections kept per worker: one per client connection.\n\
         \x20       keepalive {connections};\n\
         \x20       keepalive_requests 1000000;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://app;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        pid = scratch.join("nginx").join("nginx.pid").display(),
        temp = nginx_temp_paths(scratch),
    )
}

/// haproxy as the proxy: one thread, its defaults otherwise (keep-alive both ways).
fn haproxy_config(port: u16, upstream_port: u16) -> String {
    format!(
        "# haproxy as a reverse proxy: one thread, no log, keep-alive both ways (its default).\n\
         global\n\
         \x20   nbthread 1\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 3s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 60s\n\
         frontend bench\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend app\n\
         backend app\n\
         \x20   server upstream 127.0.0.1:{upstream_port}\n"
    )
}

/// Starts the upstream on the load core and waits until it answers.
fn start_upstream(scratch: &Path) -> Result<(Guard, u16)> {
    let port = free_port()?;
    let config = scratch.join("upstream").join("nginx.conf");
    std::fs::write(&config, upstream_config(scratch, port))
        .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
    let mut command = pinned(LOAD_CORE, Path::new("nginx"));
    command
        .arg("-p")
        .arg(scratch.join("upstream"))
        .arg("-c")
        .arg(&config)
        .arg("-e")
        .arg(scratch.join("upstream").join("error.log"));
    let log = scratch.join("upstream").join("stderr.log");
    let mut guard = spawn(command, &log, "the upstream nginx")?;
    wait_answering(&mut guard, port, None, "the upstream nginx", &log)?;
    Ok((guard, port))
}

/// Starts `contender` on the proxy core; returns its process and port.
fn start(contender: Contender, setup: &Setup) -> Result<(Guard, u16)> {
    let port = free_port()?;
    let upstream = setup.upstream_port;
    let (command, log) = match contender {
        Contender::Pitcrew | Contender::PitcrewJwt => {
            let binary = setup
                .pitcrew_binary
                .as_deref()
                .ok_or("pitcrew-proxy was not built")?;
            let admin = free_port()?;
            let mut command = pinned(PROXY_CORE, binary);
            command.args([
                format!("--listen=http://127.0.0.1:{port}"),
                format!("--upstream=http://127.0.0.1:{upstream}"),
                format!("--admin-addr=127.0.0.1:{admin}"),
                "--access-log=off".into(),
                "--log-level=warn".into(),
            ]);
            if contender == Contender::PitcrewJwt {
                command.arg("--jwt-secret-file").arg(&setup.secret_file);
            }
            // Only the flags above: an env twin left in the caller's environment would change
            // what is measured.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("PITCREW_") {
                    command.env_remove(name);
                }
            }
            (command, setup.scratch.join("pitcrew").join("stderr.log"))
        }
        Contender::Nginx => {
            let dir = setup.scratch.join("nginx");
            let config = dir.join("nginx.conf");
            std::fs::write(
                &config,
                nginx_proxy_config(&setup.scratch, port, upstream, setup.options.connections),
            )
            .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
            let mut command = pinned(PROXY_CORE, Path::new("nginx"));
            command
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&config)
                .arg("-e")
                .arg(dir.join("error.log"));
            (command, dir.join("stderr.log"))
        }
        Contender::Haproxy => {
            let dir = setup.scratch.join("haproxy");
            let config = dir.join("haproxy.cfg");
            std::fs::write(&config, haproxy_config(port, upstream))
                .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
            let mut command = pinned(PROXY_CORE, Path::new("haproxy"));
            // -db: foreground, one process (no master-worker).
            command.arg("-db").arg("-f").arg(&config);
            (command, dir.join("stderr.log"))
        }
        Contender::Direct => return Err("the direct run starts no proxy".into()),
    };
    let what = contender.key();
    let mut guard = spawn(command, &log, what)?;
    let token = (contender == Contender::PitcrewJwt).then_some(setup.token.as_str());
    wait_answering(&mut guard, port, token, what, &log)?;
    Ok((guard, port))
}

/// Waits until a GET / on `port` answers 200 with the upstream's body.
fn wait_answering(child: &mut Guard, port: u16, token: Option<&str>, what: &str, log: &Path) -> Result {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(answer) = get(port, token)
            && answer.status == 200
            && answer.body == UPSTREAM_BODY
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!(
                "{what} exited at start-up ({status}); its output:\n{}",
                tail_of(log)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not answer GET / with the upstream's body within {START_DEADLINE:?} (last answer: {:?}); \
                 its output:\n{}",
                get(port, token).map(|answer| (answer.status, answer.body)),
                tail_of(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks what the contender does before it is measured: it proxies (the upstream's body), and
/// with JWT on it refuses a request without the token and passes the token's subject on.
fn check(contender: Contender, port: u16, token: &str) -> Result {
    let what = contender.key();
    let answer = get(port, None).ok_or_else(|| format!("{what}: GET / got no answer"))?;
    if contender == Contender::PitcrewJwt {
        if answer.status != 401 {
            return Err(format!(
                "{what}: GET / without a token answered {} instead of 401: is authentication on?",
                answer.status
            ));
        }
        let answer =
            get(port, Some(token)).ok_or_else(|| format!("{what}: GET / with the token got no answer"))?;
        let seen = answer.header(SEEN_USER_HEADER);
        if answer.status != 200 || seen != Some(JWT_SUBJECT) {
            return Err(format!(
                "{what}: GET / with the token answered {} and the upstream saw the user {seen:?}, expected 200 and \
                 {JWT_SUBJECT:?}",
                answer.status
            ));
        }
    } else if answer.status != 200 || answer.body != UPSTREAM_BODY {
        return Err(format!(
            "{what}: GET / answered {} {:?}, not the upstream's 200 {UPSTREAM_BODY:?}",
            answer.status, answer.body
        ));
    }
    Ok(())
}

/// One run of `contender`: start, check, warm up, measure, read its peak RSS, stop.
fn measure(contender: Contender, setup: &Setup) -> Result<Measured> {
    let token = (contender == Contender::PitcrewJwt).then_some(setup.token.as_str());
    let (guard, port) = if contender == Contender::Direct {
        (None, setup.upstream_port)
    } else {
        let (guard, port) = start(contender, setup)?;
        (Some(guard), port)
    };
    check(contender, port, &setup.token)?;
    let what = contender.key();
    wrk(port, WARM_UP_SECONDS, setup.options.connections, token)
        .map_err(|err| format!("{what}: warm-up: {err}"))?;
    let pid = guard.as_ref().map(|guard| guard.0.id());
    let cpu_before = pid.map(cpu_time).transpose()?;
    let result = wrk(port, setup.options.seconds, setup.options.connections, token)
        .map_err(|err| format!("{what}: {err}"))?;
    let cpu_after = pid.map(cpu_time).transpose()?;
    if let Some(mut guard) = guard {
        if let Ok(Some(status)) = guard.0.try_wait() {
            return Err(format!("{what} exited during the run ({status})"));
        }
        let rss_kib = peak_rss_kib(guard.0.id())?;
        drop(guard);
        let cpu = cpu_after
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let requests = u32::try_from(result.requests.max(1)).unwrap_or(u32::MAX);
        return Ok(Measured {
            cpu_per_request: cpu.map(|cpu| cpu / requests),
            rss_kib: Some(rss_kib),
            wrk: result,
        });
    }
    Ok(Measured {
        wrk: result,
        rss_kib: None,
        cpu_per_request: None,
    })
}

/// Runs wrk on the load core: one thread, `connections` keep-alive connections, `seconds`.
fn wrk(port: u16, seconds: u64, connections: u32, token: Option<&str>) -> Result<Wrk> {
    let mut command = pinned(LOAD_CORE, Path::new("wrk"));
    command.args([
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ]);
    if let Some(token) = token {
        command.args(["-H".to_owned(), format!("Authorization: Bearer {token}")]);
    }
    command.arg(format!("http://127.0.0.1:{port}/"));
    let output = util::capture(&mut command)?;
    let text = String::from_utf8_lossy(&output.stdout);
    let result = parse_wrk(&text).map_err(|err| format!("{err}; wrk said:\n{text}"))?;
    if result.non_2xx > 0 || result.socket_errors > 0 {
        return Err(format!(
            "{} non-2xx answers and {} socket errors in {} requests; wrk said:\n{text}",
            result.non_2xx, result.socket_errors, result.requests
        ));
    }
    Ok(result)
}

/// Reads wrk's report (with `--latency`).
fn parse_wrk(text: &str) -> Result<Wrk> {
    let mut requests_per_second = None;
    let mut requests = None;
    let (mut p50, mut p99) = (None, None);
    let (mut non_2xx, mut socket_errors) = (0, 0);
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            requests_per_second = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("50%") {
            p50 = parse_wrk_duration(value.trim());
        } else if let Some(value) = line.strip_prefix("99%") {
            p99 = parse_wrk_duration(value.trim());
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = value.trim().parse().map_err(|_| format!("bad line {line:?}"))?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = value
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(Wrk {
        requests_per_second: requests_per_second.ok_or("no Requests/sec line")?,
        requests: requests.ok_or("no `N requests in` line")?,
        p50: p50.ok_or("no 50% line (was --latency given?)")?,
        p99: p99.ok_or("no 99% line (was --latency given?)")?,
        non_2xx,
        socket_errors,
    })
}

/// wrk's durations: `812.00us`, `1.20ms`, `2.00s`, `1.50m`.
fn parse_wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// An answer to [`get`].
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }
}

/// GET / on 127.0.0.1:`port` (HTTP/1.1, `Connection: close`), with a bearer token if given.
fn get(port: u16, token: Option<&str>) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_answer(&String::from_utf8_lossy(&raw))
}

fn parse_answer(text: &str) -> Option<Answer> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(body)? } else { body.to_owned() };
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// The body of a chunked message (the proxies may re-frame the upstream's answer).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// The 1-minute load average, as /proc/loadavg says.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = sha2::Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = sha2::Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A compact HS256 JWT for `subject`, valid until `expires` (Unix seconds).
fn hs256_token(secret: &[u8], subject: &str, expires: u64) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = encode(
        serde_json::json!({"sub": subject, "iat": expires.saturating_sub(86_400), "exp": expires})
            .to_string()
            .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let signature = encode(&hmac_sha256(secret, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// A contender's medians over its runs.
struct Summary {
    requests_per_second: f64,
    each: Vec<f64>,
    p50: Duration,
    p99: Duration,
    rss_kib: Option<u64>,
    cpu_per_request: Option<Duration>,
}

impl Summary {
    fn of(runs: &[Measured]) -> Self {
        let each: Vec<f64> = runs.iter().map(|m| m.wrk.requests_per_second).collect();
        let mut sorted = each.clone();
        sorted.sort_by(f64::total_cmp);
        let mut p50: Vec<Duration> = runs.iter().map(|m| m.wrk.p50).collect();
        let mut p99: Vec<Duration> = runs.iter().map(|m| m.wrk.p99).collect();
        let mut rss: Vec<u64> = runs.iter().filter_map(|m| m.rss_kib).collect();
        let mut cpu: Vec<Duration> = runs.iter().filter_map(|m| m.cpu_per_request).collect();
        Self {
            requests_per_second: sorted[sorted.len() / 2],
            each,
            p50: median(&mut p50),
            p99: median(&mut p99),
            rss_kib: (!rss.is_empty()).then(|| median(&mut rss)),
            cpu_per_request: (!cpu.is_empty()).then(|| median(&mut cpu)),
        }
    }
}

/// The issue's goals, judged on the medians.
struct Goals {
    /// pitcrew-proxy's requests/s over haproxy's.
    rps_factor: f64,
    pitcrew_p99: Duration,
    nginx_p99: Duration,
    rss_kib: u64,
    /// pitcrew-proxy's requests/s with JWT over without.
    jwt_factor: f64,
}

impl Goals {
    fn judge(pitcrew: &Summary, jwt: &Summary, nginx: &Summary, haproxy: &Summary) -> Self {
        Self {
            rps_factor: pitcrew.requests_per_second / haproxy.requests_per_second,
            pitcrew_p99: pitcrew.p99,
            nginx_p99: nginx.p99,
            rss_kib: pitcrew.rss_kib.unwrap_or(u64::MAX),
            jwt_factor: jwt.requests_per_second / pitcrew.requests_per_second,
        }
    }

    fn rps_met(&self) -> bool {
        self.rps_factor >= GOAL_RPS_VS_HAPROXY
    }

    fn p99_met(&self) -> bool {
        self.pitcrew_p99 <= self.nginx_p99
    }

    fn rss_met(&self) -> bool {
        self.rss_kib <= GOAL_RSS_KIB
    }

    fn jwt_met(&self) -> bool {
        self.jwt_factor >= GOAL_JWT_FACTOR
    }

    fn summary(&self) -> String {
        format!(
            "goals: ≥ {GOAL_RPS_VS_HAPROXY}× haproxy requests/s: {} ({:.2}×); p99 ≤ nginx's ({}): {}; peak RSS ≤ 5 MiB: \
             {} ({} KiB); JWT ≥ {GOAL_JWT_FACTOR}× no-auth requests/s: {} ({:.2}×)",
            met(self.rps_met()),
            self.rps_factor,
            show_latency(self.nginx_p99),
            met(self.p99_met()),
            met(self.rss_met()),
            self.rss_kib,
            met(self.jwt_met()),
            self.jwt_factor
        )
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn show_latency(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{:.0} µs", micros(duration))
    } else {
        format!("{:.2} ms", duration.as_secs_f64() * 1e3)
    }
}

fn table(
    summary: &[(Contender, Summary)],
    goals: Option<&Goals>,
    versions: &Versions,
    binary_bytes: u64,
    options: &Options,
) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| wrk -t1 -c{} for {} s, median of {} | requests/s | each run | p50 | p99 | peak RSS | proxy CPU per request | goal | result |",
        options.connections, options.seconds, options.runs
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|");
    for (contender, s) in summary {
        let mut label = versions.label(*contender);
        if *contender == Contender::Pitcrew && binary_bytes > 0 {
            let _ = write!(label, " ({} binary)", util::megabytes(binary_bytes));
        }
        let (goal, result) = match (contender, goals) {
            (Contender::Pitcrew, Some(g)) => (
                format!("≥ {GOAL_RPS_VS_HAPROXY}× haproxy requests/s; p99 ≤ nginx's; peak RSS ≤ 5 MiB"),
                format!(
                    "{} ({:.2}×); {}; {}",
                    met(g.rps_met()),
                    g.rps_factor,
                    met(g.p99_met()),
                    met(g.rss_met())
                ),
            ),
            (Contender::PitcrewJwt, Some(g)) => (
                format!("≥ {GOAL_JWT_FACTOR}× pitcrew-proxy's requests/s"),
                format!("{} ({:.2}×)", met(g.jwt_met()), g.jwt_factor),
            ),
            (Contender::Nginx | Contender::Haproxy, _) => ("anchor".into(), "–".into()),
            (Contender::Direct, _) => ("ceiling of the load core".into(), "–".into()),
            (Contender::Pitcrew | Contender::PitcrewJwt, None) => ("–".into(), "not judged (--only)".into()),
        };
        let _ = writeln!(
            table,
            "| {label} | {:.1}k | {} | {} | {} | {} | {} | {goal} | {result} |",
            s.requests_per_second / 1e3,
            s.each
                .iter()
                .map(|rps| format!("{:.1}k", rps / 1e3))
                .collect::<Vec<_>>()
                .join(", "),
            show_latency(s.p50),
            show_latency(s.p99),
            s.rss_kib.map_or_else(|| "–".into(), |kib| format!("{kib} KiB")),
            s.cpu_per_request
                .map_or_else(|| "–".into(), |cpu| format!("{:.1} µs", micros(cpu))),
        );
    }
    table
}

fn notes(options: &Options, versions: &Versions, goals: Option<&Goals>, took: Duration) -> String {
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- Load: wrk {} (`-t1 -c{} -d{}s --latency`, HTTP/1.1 keep-alive, `GET /`), after a {WARM_UP_SECONDS} s warm-up \
         on the same connections count; any non-2xx answer or socket error fails the run. Each contender is started \
         fresh for each run; runs alternate their order. wrk's percentiles are of the latencies it saw at the load \
         it could generate (closed loop), not at a fixed rate.",
        versions.wrk, options.connections, options.seconds
    );
    let _ = writeln!(
        notes,
        "- Cores: the proxy alone on core {PROXY_CORE} (`taskset -c {PROXY_CORE}`); wrk and the upstream share core \
         {LOAD_CORE}. The upstream is nginx {} (one process, `return 200` with a {}-byte body, no access log, \
         `keepalive_requests 1000000`), the same process for every run. The \"direct\" row is wrk straight to it: \
         the most core {LOAD_CORE} can give, so a proxy near it is held back by the load side, which its CPU per \
         request (user + system time of the proxy process during the measured seconds, over the requests) shows.",
        versions.nginx,
        UPSTREAM_BODY.len()
    );
    let _ = writeln!(
        notes,
        "- pitcrew-proxy: the release musl binary as its image ships it (`cargo xtask images` builds the same), \
         `--listen http://127.0.0.1:P --upstream http://127.0.0.1:U --access-log off`, otherwise its defaults (one \
         worker thread, least-loaded balancing, pooled keep-alive upstream connections, `X-Forwarded-*` and \
         `X-Request-Id` set). With JWT: `--jwt-secret-file` (HS256) and an `Authorization: Bearer` token on every \
         request (checked first: 401 without it, and the upstream sees `X-Forwarded-User: {JWT_SUBJECT}` with it)."
    );
    let _ = writeln!(
        notes,
        "- nginx: `worker_processes 1` in single-process mode, `proxy_pass` to an `upstream` block with `keepalive` \
         (one idle connection per client connection), `proxy_http_version 1.1`, `access_log off`, its default `worker_connections` (512). haproxy (Debian's \
         build): `nbthread 1`, `mode http`, no log, its default maxconn, keep-alive and connection reuse."
    );
    let _ = writeln!(
        notes,
        "- Peak RSS: the kernel's VmHWM of the proxy process at the end of its run (nginx's single process is the \
         one that serves; in production its master adds about 1 MiB)."
    );
    if goals.is_none() {
        let _ = writeln!(
            notes,
            "- Only some contenders ran (`--only`): the goals are not judged."
        );
    }
    let _ = writeln!(
        notes,
        "- Reproduce: `cargo xtask bench proxy --seconds {} --connections {} --runs {}` ({:.0} s here, the release \
         build included).",
        options.seconds,
        options.connections,
        options.runs,
        took.as_secs_f64()
    );
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  310.21us   9.87ms   91.02%
    Req/Sec    42.10k     1.02k   44.00k    78.00%
  Latency Distribution
     50%    1.48ms
     75%    1.60ms
     90%    1.77ms
     99%    2.90ms
  419012 requests in 10.00s, 70.33MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  41893.12
Transfer/sec:      7.03MB
";

    #[test]
    fn wrk_reports_are_read_with_their_errors() {
        let report = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(
            report,
            Wrk {
                requests_per_second: 41893.12,
                requests: 419_012,
                p50: Duration::from_micros(1480),
                p99: Duration::from_micros(2900),
                non_2xx: 7,
                socket_errors: 3,
            }
        );
        let clean = WRK_OUTPUT
            .lines()
            .filter(|line| !line.contains("errors") && !line.contains("Non-2xx"))
            .collect::<Vec<_>>()
            .join("\n");
        let report = parse_wrk(&clean).unwrap();
        assert_eq!((report.non_2xx, report.socket_errors), (0, 0));
        let without_latency = WRK_OUTPUT
            .lines()
            .filter(|line| !line.contains("99%"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_wrk(&without_latency).unwrap_err().contains("99%"));
        assert!(parse_wrk("").is_err());
    }

    #[test]
    fn wrk_durations_in_every_unit() {
        assert_eq!(parse_wrk_duration("812.00us"), Some(Duration::from_micros(812)));
        assert_eq!(parse_wrk_duration("1.20ms"), Some(Duration::from_micros(1200)));
        assert_eq!(parse_wrk_duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_wrk_duration("1.50m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_wrk_duration("3.0xs"), None);
        assert_eq!(parse_wrk_duration("ms"), None);
        assert_eq!(parse_wrk_duration("12"), None);
    }

    /// RFC 4231, test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let hex = |bytes: [u8; 32]| {
            bytes.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        };
        assert_eq!(
            hex(hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_token_is_a_compact_hs256_jwt_with_the_subject() {
        let token = hs256_token(b"secret", "bench", 2_000_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let decode = |part: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap()
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        assert_eq!(header["alg"], "HS256");
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(claims["sub"], "bench");
        assert_eq!(claims["exp"], 2_000_000_000);
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert_eq!(decode(parts[2]), hmac_sha256(b"secret", signed.as_bytes()));
        assert_ne!(hs256_token(b"other", "bench", 2_000_000_000), token);
    }

    #[test]
    fn answers_are_read_plain_and_chunked() {
        let plain =
            parse_answer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Seen-User: bench\r\n\r\nok\n").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok\n"));
        assert_eq!(plain.header("x-seen-user"), Some("bench"));
        let chunked = parse_answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "hello");
        assert!(parse_answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_none());
        assert!(parse_answer("garbage").is_none());
    }

    #[test]
    fn only_names_known_contenders_and_keeps_the_tables_order() {
        assert_eq!(chosen(None).unwrap(), ALL.to_vec());
        let only = ["haproxy".to_owned(), "nginx".to_owned()];
        assert_eq!(
            chosen(Some(&only)).unwrap(),
            [Contender::Nginx, Contender::Haproxy]
        );
        let bad = ["envoy".to_owned()];
        assert!(chosen(Some(&bad)).unwrap_err().contains("\"envoy\""));
    }

    #[test]
    fn the_goals_are_judged_on_the_medians() {
        let summary = |rps: f64, p99_us: u64, rss: Option<u64>| Summary {
            requests_per_second: rps,
            each: vec![rps],
            p50: Duration::from_micros(p99_us / 2),
            p99: Duration::from_micros(p99_us),
            rss_kib: rss,
            cpu_per_request: None,
        };
        let haproxy = summary(40_000.0, 1500, Some(7000));
        let nginx = summary(35_000.0, 1200, Some(5000));
        let good = Goals::judge(
            &summary(50_000.0, 1100, Some(4000)),
            &summary(46_000.0, 1200, Some(4100)),
            &nginx,
            &haproxy,
        );
        assert!(good.rps_met() && good.p99_met() && good.rss_met() && good.jwt_met());
        let bad = Goals::judge(
            &summary(47_000.0, 1300, Some(6000)),
            &summary(40_000.0, 1400, Some(6000)),
            &nginx,
            &haproxy,
        );
        assert!(!bad.rps_met() && !bad.p99_met() && !bad.rss_met() && !bad.jwt_met());
        assert!(bad.summary().contains("**not met**"));
    }
}
