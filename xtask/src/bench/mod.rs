//! `cargo xtask bench <tool>`: each tool against what pod specs use today, measured in the
//! same run on this machine. Each benchmark prints its table and rewrites its own section of
//! BENCHMARKS.md (between `<!-- bench:TOOL -->` markers), leaving the other tools' sections as
//! they were.

mod fetch;
mod images;
mod metrics;
mod migrate;
mod proxy;
mod reload;
mod render;
mod tail;
mod wait;

use std::process::{Command, Stdio};

use crate::util::{self, Result};

pub use fetch::fetch;
pub use images::images;
pub use metrics::metrics;
pub use migrate::migrate;
pub use proxy::{Options as ProxyOptions, proxy};
pub use reload::reload;
pub use render::render;
pub use tail::tail;
pub use wait::wait;

const HEADER: &str = "# Benchmarks\n\n\
    Each section is written by its `cargo xtask bench TOOL` and says how to refresh it. Timings on a \
    shared machine are noisy: compare the columns of one table with each other, not with other machines.\n";

/// Replaces (or appends) the section of BENCHMARKS.md for `tool`.
pub fn write_section(tool: &str, title: &str, intro: &str, table: &str, notes: &str) -> Result {
    let rustc = util::stdout_of(Command::new("rustc").arg("--version")).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|name| name.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let (start, end) = (
        format!("<!-- bench:{tool} -->"),
        format!("<!-- /bench:{tool} -->"),
    );
    let section = format!(
        "{start}\n## {title}\n\n{intro}\n\n{table}\n\
         How each figure was taken:\n\n{notes}\n\
         Machine: a shared 2-core box ({cores} cores seen, {cpu}), {rustc}.\n{end}\n"
    );
    let path = util::root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = match (old.find(&start), old.find(&end)) {
        (Some(from), Some(to)) if from < to => {
            let after = old[to + end.len()..].trim_start_matches('\n');
            format!(
                "{}{section}{}{after}",
                &old[..from],
                if after.is_empty() { "" } else { "\n" }
            )
        }
        // No section yet (or a file from before sections): keep what has markers, add ours.
        _ => {
            let kept = if old.contains("<!-- bench:") {
                old.trim_end().to_owned() + "\n\n"
            } else {
                HEADER.to_owned() + "\n"
            };
            kept + &section
        }
    };
    std::fs::write(&path, new).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    println!("wrote its section of BENCHMARKS.md");
    Ok(())
}

/// The image as `docker save` writes it, gzipped: close to what a node downloads.
pub fn gzipped_size(image: &str) -> Result<u64> {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run docker save {image}: {err}"))?;
    let tar = save.stdout.take().ok_or("docker save has no stdout")?;
    let output = Command::new("gzip")
        .arg("-6")
        .stdin(tar)
        .output()
        .map_err(|err| format!("cannot run gzip: {err}"))?;
    let status = save.wait().map_err(|err| format!("docker save {image}: {err}"))?;
    if !status.success() || !output.status.success() {
        return Err(format!("docker save {image} | gzip failed"));
    }
    Ok(output.stdout.len() as u64)
}

/// One timed run: wall time and peak RSS (GNU time's %M, KiB: the largest of the process and
/// every child it waited for, so `sh -c 'curl … && sha256sum …'` reports its biggest step).
pub struct Run {
    pub elapsed: std::time::Duration,
    pub rss_kib: u64,
}

/// Runs `argv` under `/usr/bin/time -f %M` (its report in `scratch`), stderr discarded, with
/// `setup` applied to the command first (env, stdin, stdout: GNU time passes them on). An
/// unsuccessful exit is an error.
pub fn timed(argv: &[String], scratch: &std::path::Path, setup: impl FnOnce(&mut Command)) -> Result<Run> {
    let report = scratch.join("time.txt");
    let mut command = Command::new("/usr/bin/time");
    command.args(["-f", "%M", "-o"]).arg(&report).args(argv);
    setup(&mut command);
    let start = std::time::Instant::now();
    let status = command
        .stderr(Stdio::null())
        .status()
        .map_err(|err| format!("cannot run {}: {err}", argv[0]))?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{} failed: {status}", argv.join(" ")));
    }
    let rss =
        std::fs::read_to_string(&report).map_err(|err| format!("cannot read {}: {err}", report.display()))?;
    let rss_kib = rss
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| format!("GNU time wrote {rss:?}"))?;
    Ok(Run { elapsed, rss_kib })
}

/// Throughput in MB/s (10^6 bytes per second).
pub fn megabytes_per_second(bytes: u64, elapsed: std::time::Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let megabytes = bytes as f64 / 1e6;
    megabytes / elapsed.as_secs_f64()
}

/// The median of `values` (sorted in place).
pub fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

/// The peak resident set of a running process (the kernel's VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|err| format!("process {pid}: {err}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmHWM for process {pid}"))
}

/// The `p` quantile (0 to 1) of `sorted` by nearest rank: no interpolation between two
/// samples that never happened.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `binaries` as the smallest image that could hold them: each binary and the shared libraries
/// `ldd` lists, FROM scratch (`docker import`, tagged `image`). Returns the tag and its size.
pub fn ldd_image(binaries: &[&str], image: &str, scratch: &std::path::Path) -> Result<(String, u64)> {
    use std::path::PathBuf;
    let mut files: Vec<PathBuf> = Vec::new();
    for binary in binaries {
        files.push(PathBuf::from(binary));
        let ldd = util::stdout_of(Command::new("ldd").arg(binary))?;
        for line in ldd.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
            let path = line
                .split("=>")
                .last()
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|path| path.starts_with('/'));
            if let Some(path) = path {
                files.push(PathBuf::from(path));
            }
        }
    }
    let rootfs = scratch.join(format!("{}-rootfs", image.replace(['/', ':'], "-")));
    for file in &files {
        let real = file
            .canonicalize()
            .map_err(|err| format!("cannot resolve {}: {err}", file.display()))?;
        let target = rootfs.join(file.strip_prefix("/").unwrap_or(file));
        std::fs::create_dir_all(target.parent().unwrap_or(&rootfs))
            .map_err(|err| format!("cannot create {}: {err}", target.display()))?;
        std::fs::copy(&real, &target).map_err(|err| format!("cannot copy {}: {err}", real.display()))?;
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run tar: {err}"))?;
    util::run(
        Command::new("docker")
            .args(["import", "-", image])
            .stdin(tar.stdout.ok_or("tar has no stdout")?)
            .stdout(Stdio::null()),
    )?;
    Ok((image.to_owned(), crate::images::image_size(image)?))
}
