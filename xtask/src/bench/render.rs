//! `cargo xtask bench render`: pitcrew-render against GNU `envsubst` (Debian gettext-base) on
//! the same large template, in the same run: throughput, peak RSS and image size.
//!
//! The template is generated: 100 MB of config-like lines, each with several `$VAR` and
//! `${VAR}` references (only the forms GNU supports, so both outputs must be byte-identical,
//! which the benchmark checks before timing anything). Both tools filter stdin to stdout, as
//! `envsubst < in > out` does in a pod spec; pitcrew-render's file-to-file mode (temporary
//! file, fsync, rename) is timed too, as an extra row.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Run, gzipped_size, median, megabytes_per_second};
use crate::images;
use crate::util::{self, Result};

/// The goal: at least this many times GNU envsubst's throughput, at no more than its peak RSS.
const GOAL_FACTOR: f64 = 1.5;
/// The template's size: the 100 MB.
const TEMPLATE_BYTES: u64 = 100_000_000;
const GNU_ENVSUBST: &str = "/usr/bin/envsubst";

/// The variables the template uses, with values of assorted lengths (and characters a value
/// may hold: nothing in a value is expanded again).
const VARIABLES: &[(&str, &str)] = &[
    ("DB_HOST", "postgres.database.svc.cluster.local"),
    ("DB_PORT", "5432"),
    ("DB_NAME", "webapp"),
    ("DB_USER", "app_user"),
    ("APP_ENV", "production"),
    ("LOG_LEVEL", "info"),
    ("REGION", "eu-west-1"),
    ("CACHE_URL", "redis://cache.default.svc:6379/0"),
    ("FEATURE_FLAGS", "a,b,c,$not_expanded,${nor_this}"),
    ("REPLICAS", "3"),
];

/// Writes the template: config-like lines with references between plain text.
fn write_template(path: &Path) -> Result<u64> {
    let file = File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let mut line = 0usize;
    let mut text = String::new();
    while written < TEMPLATE_BYTES {
        text.clear();
        let (a, b, c) = (
            VARIABLES[line % VARIABLES.len()].0,
            VARIABLES[(line * 7 + 3) % VARIABLES.len()].0,
            VARIABLES[(line * 3 + 1) % VARIABLES.len()].0,
        );
        let _ = writeln!(
            text,
            "service_{line}:\n  endpoint: \"https://${{{a}}}:$DB_PORT/api/v1\"  # plain text, costs $ 5 and 100%\n  \
             labels: {{ env: ${b}, region: ${{{c}}}, tier: backend }}\n  unset: \"$UNSET_VARIABLE\" raw: $1 ${{1}} \\$HOME"
        );
        out.write_all(text.as_bytes())
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        written += text.len() as u64;
        line += 1;
    }
    out.flush()
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    Ok(written)
}

/// Runs `argv` with stdin from `input` and stdout to `output`, under GNU time.
fn timed(argv: &[String], input: &Path, output: &Path, scratch: &Path) -> Result<Run> {
    let stdin = File::open(input).map_err(|err| format!("cannot open {}: {err}", input.display()))?;
    let stdout = File::create(output).map_err(|err| format!("cannot create {}: {err}", output.display()))?;
    super::timed(argv, scratch, |command| {
        command
            .env_clear()
            .envs(VARIABLES.iter().copied())
            .stdin(stdin)
            .stdout(stdout);
    })
}

/// Whether two files hold the same bytes.
fn same_files(a: &Path, b: &Path) -> Result<bool> {
    let open = |path: &Path| File::open(path).map_err(|err| format!("cannot open {}: {err}", path.display()));
    let (mut a, mut b) = (open(a)?, open(b)?);
    let (mut buffer_a, mut buffer_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let read = a.read(&mut buffer_a).map_err(|err| err.to_string())?;
        if read == 0 {
            return Ok(b.read(&mut buffer_b[..1]).map_err(|err| err.to_string())? == 0);
        }
        b.read_exact(&mut buffer_b[..read])
            .map_err(|err| err.to_string())?;
        if buffer_a[..read] != buffer_b[..read] {
            return Ok(false);
        }
    }
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)]
pub fn render(runs: u32) -> Result {
    util::ensure_packages(&["time", "gettext-base"], true)?;
    let started = Instant::now();
    println!("building the images first (cargo xtask images)");
    let built = images::build_all()?;
    let tool = images::tools()?
        .into_iter()
        .find(|tool| tool.name == "render")
        .ok_or("no crates/render")?;
    let binary = images::binary_path(&tool);
    let render_image = built
        .iter()
        .find(|b| b.image == tool.image())
        .map(|b| b.image_bytes)
        .ok_or("pitcrew/render:dev was not built")?;
    let binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());
    // On disk, not in /tmp (often tmpfs): the file mode's fsync should cost what it costs.
    let scratch_root = util::target_dir().join("bench-render");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch.path();
    let (anchor_image, anchor_bytes) =
        super::ldd_image(&[GNU_ENVSUBST], "pitcrew/envsubst-anchor:dev", scratch)?;
    let render_gzipped = gzipped_size(&tool.image())?;
    let anchor_gzipped = gzipped_size(&anchor_image)?;

    let template = scratch.join("template.yaml");
    let bytes = write_template(&template)?;
    println!(
        "template: {} of config lines with references",
        util::megabytes(bytes)
    );

    let pitcrew = vec![binary.display().to_string()];
    let gnu = vec![GNU_ENVSUBST.to_owned()];
    let (out_pitcrew, out_gnu) = (scratch.join("out-pitcrew"), scratch.join("out-gnu"));
    timed(&pitcrew, &template, &out_pitcrew, scratch)?;
    timed(&gnu, &template, &out_gnu, scratch)?;
    if !same_files(&out_pitcrew, &out_gnu)? {
        return Err("pitcrew-render and GNU envsubst wrote different output for the same template".into());
    }
    println!(
        "outputs are byte-identical ({} each)",
        util::megabytes(std::fs::metadata(&out_gnu).map_or(0, |m| m.len()))
    );

    let file_out = scratch.join("rendered.yaml");
    let file_mode = vec![
        binary.display().to_string(),
        "--in".into(),
        template.display().to_string(),
        "--out".into(),
        file_out.display().to_string(),
    ];
    let (mut times, mut rss): ([Vec<Duration>; 3], [Vec<u64>; 3]) = Default::default();
    for round in 0..runs {
        // Alternate the order so neither tool always runs on a warmer page cache.
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
        for which in order {
            let run = match which {
                0 => timed(&pitcrew, &template, &out_pitcrew, scratch)?,
                1 => timed(&gnu, &template, &out_gnu, scratch)?,
                _ => {
                    // A changed output each time, or it would be left alone as identical.
                    let _ = std::fs::remove_file(&file_out);
                    timed(
                        &file_mode,
                        Path::new("/dev/null"),
                        &scratch.join("stdout"),
                        scratch,
                    )?
                }
            };
            times[which].push(run.elapsed);
            rss[which].push(run.rss_kib);
        }
        println!("  round {}/{runs} done", round + 1);
    }
    let throughput: Vec<f64> = times
        .iter_mut()
        .map(|list| megabytes_per_second(bytes, median(list)))
        .collect();
    let peak: Vec<u64> = rss.iter_mut().map(|list| median(list)).collect();
    let pass_speed = throughput[0] >= GOAL_FACTOR * throughput[1];
    let pass_rss = peak[0] <= peak[1];
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | pitcrew-render | GNU envsubst | goal (pitcrew-render) | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| throughput, stdin → stdout, median of {runs} | {:.0} MB/s | {:.0} MB/s | ≥ {GOAL_FACTOR}× GNU's: ≥ {:.0} MB/s | {} |",
        throughput[0],
        throughput[1],
        GOAL_FACTOR * throughput[1],
        verdict(pass_speed)
    );
    let _ = writeln!(
        table,
        "| peak RSS, median of {runs} | {} KiB | {} KiB | ≤ GNU's | {} |",
        peak[0],
        peak[1],
        verdict(pass_rss)
    );
    let _ = writeln!(
        table,
        "| throughput, file → file (`--in`/`--out`: temp file, fsync, rename) | {:.0} MB/s ({} KiB) | n/a | – | – |",
        throughput[2], peak[2]
    );
    let _ = writeln!(
        table,
        "| image size | {} (binary {}; gzipped {}) | {} (gzipped {}) | – | – |",
        util::megabytes(render_image),
        util::megabytes(binary_bytes),
        util::megabytes(render_gzipped),
        util::megabytes(anchor_bytes),
        util::megabytes(anchor_gzipped),
    );
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- The template: {} of generated config lines, each with four references among `$V` and `${{V}}` \
         (ten variables set, one unset) and text GNU leaves alone (`$1`, `${{1}}`, `\\$HOME`, `$ 5`; no `$$`, which pitcrew-render makes one `$`); values hold `$` \
         and `${{…}}`, which neither tool expands again. Both outputs were compared byte for byte before timing.",
        util::megabytes(bytes)
    );
    let _ = writeln!(
        notes,
        "- Wall time of the whole process (start to exit, stdin from the file, stdout to a file on the same disk); \
         the two tools alternate order each round. Peak RSS: GNU time's `%M`."
    );
    let _ = writeln!(
        notes,
        "- GNU envsubst's image: the binary and the shared libraries `ldd` lists, FROM scratch (`docker import`): \
         the smallest image that could run it. MB = 10^6 bytes; gzipped: `docker save | gzip -6`."
    );
    println!("\n{table}\n{notes}");
    println!("bench took {:.0}s", started.elapsed().as_secs_f64());
    let intro = format!(
        "Written by `cargo xtask bench render --runs {runs}`; rerun it to refresh (about 2 minutes, most of it \
         building the images). GNU envsubst is Debian's gettext-base; pitcrew-render is the release musl binary."
    );
    super::write_section("render", "pitcrew-render vs GNU envsubst", &intro, &table, &notes)
}
