//! `cargo xtask bench fetch`: pitcrew-fetch against `curl -o` followed by `sha256sum`, the same
//! file from the same local nginx in the same run: end-to-end throughput and peak RSS, and the
//! image sizes.
//!
//! The file is generated (pseudo-random bytes, so nothing compresses or dedups) on disk under
//! target/, served by the testkit's nginx on loopback. pitcrew-fetch computes the sha256 while
//! the bytes stream in and writes through a temporary file, fsync and rename; the anchor is what
//! a careful pod spec does today: `curl -fsS -o FILE URL && echo "HEX  FILE" | sha256sum -c`.
//! Both check the same expected hash; the destination is removed before every run (else
//! pitcrew-fetch would rightly skip a file that already matches).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Run, gzipped_size, median, megabytes_per_second, timed};
use crate::images;
use crate::util::{self, Result};

/// The goal: at least curl + sha256sum's end-to-end throughput.
const GOAL_FACTOR: f64 = 1.0;
/// The goal for pitcrew-fetch's peak RSS.
const GOAL_RSS_KIB: u64 = 8 * 1024;

/// Writes `bytes` of pseudo-random data to `path` (xorshift: fast, incompressible enough).
fn write_data(path: &Path, bytes: u64) -> Result {
    let file = File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < bytes {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let take = usize::try_from((bytes - written).min(block.len() as u64)).unwrap_or(block.len());
        out.write_all(&block[..take])
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        written += take as u64;
    }
    out.flush()
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    Ok(())
}

/// `sha256sum FILE`'s hex digest.
fn sha256_of(path: &Path) -> Result<String> {
    let out = util::stdout_of(Command::new("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| format!("sha256sum printed {out:?}"))
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)]
pub fn fetch(size_mib: u64, runs: u32) -> Result {
    util::ensure_packages(&["time", "curl", "nginx-light"], true)?;
    let started = Instant::now();
    println!("building the images first (cargo xtask images)");
    let built = images::build_all()?;
    let tools = images::tools()?;
    let image_of = |name: &str| -> Result<(String, u64, u64)> {
        let tool = tools
            .iter()
            .find(|tool| tool.name == name)
            .ok_or_else(|| format!("no crates/{name}"))?;
        let bytes = built
            .iter()
            .find(|b| b.image == tool.image())
            .map(|b| b.image_bytes)
            .ok_or_else(|| format!("{} was not built", tool.image()))?;
        let binary = std::fs::metadata(images::binary_path(tool)).map_or(0, |meta| meta.len());
        Ok((tool.image(), bytes, binary))
    };
    let fetch_tool = tools
        .iter()
        .find(|tool| tool.name == "fetch")
        .ok_or("no crates/fetch")?;
    let binary = images::binary_path(fetch_tool);
    let (fetch_image, fetch_bytes, fetch_binary) = image_of("fetch")?;
    let (validate_image, validate_bytes, validate_binary) = image_of("validate")?;

    // On disk, not in /tmp (often tmpfs): fsync costs what it costs on a node's disk.
    let scratch_root = util::target_dir().join("bench-fetch");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch.path();
    let (anchor_image, anchor_bytes) = super::ldd_image(
        &["/usr/bin/curl", "/usr/bin/sha256sum", "/bin/dash"],
        "pitcrew/curl-anchor:dev",
        scratch,
    )?;
    let fetch_gzipped = gzipped_size(&fetch_image)?;
    let validate_gzipped = gzipped_size(&validate_image)?;
    let anchor_gzipped = gzipped_size(&anchor_image)?;

    let nginx = pitcrew_testkit::nginx::NginxPeer::start()
        .ok_or("nginx is not installed (apt-get install nginx-light)")?;
    let bytes = size_mib * 1024 * 1024;
    let data = nginx.files_dir().join("data.bin");
    write_data(&data, bytes)?;
    let hex = sha256_of(&data)?;
    println!("data: {size_mib} MiB, sha256 {hex}");
    let url = nginx.http_url("/files/data.bin");
    let destination = scratch.join("downloaded.bin");

    let pitcrew: Vec<String> = vec![
        binary.display().to_string(),
        "--quiet".into(),
        "--sha256".into(),
        hex.clone(),
        url.clone(),
        destination.display().to_string(),
    ];
    let anchor: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        r#"curl -fsS -o "$1" "$2" && echo "$3  $1" | sha256sum -c --quiet"#.into(),
        "sh".into(),
        destination.display().to_string(),
        url.clone(),
        hex.clone(),
    ];
    let quiet = |command: &mut Command| {
        command.stdin(Stdio::null()).stdout(Stdio::null());
    };
    let (mut times, mut rss): ([Vec<Duration>; 2], [Vec<u64>; 2]) = Default::default();
    for round in 0..runs {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let _ = std::fs::remove_file(&destination);
            let argv = if which == 0 { &pitcrew } else { &anchor };
            let run: Run = timed(argv, scratch, quiet)?;
            if std::fs::metadata(&destination).map_or(0, |meta| meta.len()) != bytes {
                return Err(format!("{} did not leave the whole file", argv[0]));
            }
            times[which].push(run.elapsed);
            rss[which].push(run.rss_kib);
        }
        println!("  round {}/{runs} done", round + 1);
    }
    let _ = std::fs::remove_file(&destination);
    let throughput: Vec<f64> = times
        .iter_mut()
        .map(|list| megabytes_per_second(bytes, median(list)))
        .collect();
    let peak: Vec<u64> = rss.iter_mut().map(|list| median(list)).collect();
    let pass_speed = throughput[0] >= GOAL_FACTOR * throughput[1];
    let pass_rss = peak[0] <= GOAL_RSS_KIB;
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | pitcrew-fetch `--sha256` | `curl -o` + `sha256sum -c` | goal (pitcrew-fetch) | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| end-to-end throughput, {size_mib} MiB over http from local nginx, median of {runs} | {:.0} MB/s | {:.0} MB/s | ≥ {GOAL_FACTOR}× curl + sha256sum | {} ({:.2}×) |",
        throughput[0],
        throughput[1],
        verdict(pass_speed),
        throughput[0] / throughput[1]
    );
    let _ = writeln!(
        table,
        "| peak RSS, median of {runs} | {} KiB | {} KiB (the larger of curl and sha256sum) | ≤ 8 MB | {} |",
        peak[0],
        peak[1],
        verdict(pass_rss)
    );
    let _ = writeln!(
        table,
        "| image size | fetch {} (binary {}; gzipped {}); validate {} (binary {}; gzipped {}) | {} (gzipped {}) | – | – |",
        util::megabytes(fetch_bytes),
        util::megabytes(fetch_binary),
        util::megabytes(fetch_gzipped),
        util::megabytes(validate_bytes),
        util::megabytes(validate_binary),
        util::megabytes(validate_gzipped),
        util::megabytes(anchor_bytes),
        util::megabytes(anchor_gzipped),
    );
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- Wall time of the whole command, start to exit: pitcrew-fetch hashes while streaming and writes a \
         temporary file that it fsyncs and renames; curl writes the file (no fsync), then sha256sum reads it back. \
         The destination is on disk under target/ and removed before each run; the served file is in the page cache \
         after the first run, for both. The two alternate order each round. Peak RSS: GNU time's `%M`."
    );
    let _ = writeln!(
        notes,
        "- The anchor's image: curl, sha256sum and dash with the shared libraries `ldd` lists, FROM scratch \
         (`docker import`), the smallest image that could run that line. MB = 10^6 bytes; gzipped: `docker save | gzip -6`."
    );
    println!("\n{table}\n{notes}");
    println!("bench took {:.0}s", started.elapsed().as_secs_f64());
    let intro = format!(
        "Written by `cargo xtask bench fetch --size-mib {size_mib} --runs {runs}`; rerun it to refresh (a few minutes, \
         most of it building the images). curl is Debian's; pitcrew-fetch is the release musl binary."
    );
    drop(nginx);
    super::write_section(
        "fetch",
        "pitcrew-fetch vs curl + sha256sum",
        &intro,
        &table,
        &notes,
    )
}
