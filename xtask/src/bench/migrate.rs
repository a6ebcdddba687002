//! `cargo xtask bench migrate`: pitcrew-migrate on a local PostgreSQL, in the same run as the
//! floor it is compared with: `psql -f` of the same 200 files in one session (no transactions,
//! no state table, no lock: what no migration tool can beat). Measured: the time to apply the
//! 200 small migrations to an empty database, the time of a no-op `up` (already at the latest
//! version: what every pod restart pays), peak RSS and the image size.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{gzipped_size, median, timed};
use crate::images;
use crate::util::{self, Result};

/// How many migrations the issue asks for.
const MIGRATIONS: u32 = 200;
/// Goals: apply within this factor of psql's time; a no-op `up` under this.
const GOAL_FACTOR: f64 = 1.5;
const GOAL_NOOP: Duration = Duration::from_millis(50);

/// Writes `{version}_create_t{n}.up.sql` / `.down.sql` pairs: a table, an index and a row each.
fn write_migrations(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let mut ups = Vec::new();
    for n in 1..=MIGRATIONS {
        let up = dir.join(format!("{n:06}_create_t{n}.up.sql"));
        let down = dir.join(format!("{n:06}_create_t{n}.down.sql"));
        let sql = format!(
            "CREATE TABLE t{n} (id bigserial PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL DEFAULT now());\n\
             CREATE INDEX t{n}_name ON t{n} (name);\n\
             INSERT INTO t{n} (name) VALUES ('row {n}');\n"
        );
        std::fs::write(&up, sql).map_err(|err| format!("cannot write {}: {err}", up.display()))?;
        std::fs::write(&down, format!("DROP TABLE t{n};\n"))
            .map_err(|err| format!("cannot write {}: {err}", down.display()))?;
        ups.push(up);
    }
    Ok(ups)
}

/// Runs the benchmark; see the module docs.
#[allow(clippy::too_many_lines)]
pub fn migrate(runs: u32) -> Result {
    util::ensure_packages(&["time", "postgresql"], true)?;
    let started = Instant::now();
    println!("building the images first (cargo xtask images)");
    let built = images::build_all()?;
    let tool = images::tools()?
        .into_iter()
        .find(|tool| tool.name == "migrate")
        .ok_or("no crates/migrate")?;
    let binary = images::binary_path(&tool);
    let image_bytes = built
        .iter()
        .find(|b| b.image == tool.image())
        .map(|b| b.image_bytes)
        .ok_or("pitcrew/migrate:dev was not built")?;
    let binary_bytes = std::fs::metadata(&binary).map_or(0, |meta| meta.len());
    let gzipped = gzipped_size(&tool.image())?;

    let scratch_root = util::target_dir().join("bench-migrate");
    std::fs::create_dir_all(&scratch_root)
        .map_err(|err| format!("cannot create {}: {err}", scratch_root.display()))?;
    let scratch =
        tempfile::tempdir_in(&scratch_root).map_err(|err| format!("cannot create a temp dir: {err}"))?;
    let scratch = scratch.path();
    let migrations = scratch.join("migrations");
    let ups = write_migrations(&migrations)?;

    let postgres = pitcrew_testkit::postgres::PostgresPeer::start()
        .ok_or("PostgreSQL is not installed (apt-get install postgresql)")?;
    let psql = util::which("psql").ok_or("psql is not installed")?;
    let quiet = |command: &mut Command| {
        command
            .env("PGPASSWORD", pitcrew_testkit::postgres::PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
    };

    let (mut apply, mut floor, mut noop) = (Vec::new(), Vec::new(), Vec::new());
    let (mut apply_rss, mut noop_rss) = (Vec::new(), Vec::new());
    for round in 0..runs {
        let (ours, theirs) = (format!("bench_pitcrew_{round}"), format!("bench_psql_{round}"));
        for database in [&ours, &theirs] {
            postgres.psql(&format!(
                "CREATE DATABASE {database} OWNER {}",
                pitcrew_testkit::postgres::USER
            ));
        }
        let url = postgres.url(
            pitcrew_testkit::postgres::USER,
            Some(pitcrew_testkit::postgres::PASSWORD),
            &ours,
        );
        let pitcrew: Vec<String> = vec![
            binary.display().to_string(),
            format!("-path={}", migrations.display()),
            format!("-database={url}"),
            "up".into(),
        ];
        let mut psql_argv: Vec<String> = vec![
            psql.display().to_string(),
            "-X".into(),
            "-q".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            postgres.port().to_string(),
            "-U".into(),
            pitcrew_testkit::postgres::USER.into(),
            "-d".into(),
            theirs.clone(),
        ];
        for up in &ups {
            psql_argv.push("-f".into());
            psql_argv.push(up.display().to_string());
        }
        // Alternate the order so neither always runs on a warmer server.
        let first_ours = round % 2 == 0;
        for which in if first_ours { [0, 1] } else { [1, 0] } {
            if which == 0 {
                let run = timed(&pitcrew, scratch, quiet)?;
                apply.push(run.elapsed);
                apply_rss.push(run.rss_kib);
            } else {
                floor.push(timed(&psql_argv, scratch, quiet)?.elapsed);
            }
        }
        // Already at the latest version: what each pod restart pays.
        for _ in 0..5 {
            let run = timed(&pitcrew, scratch, quiet)?;
            noop.push(run.elapsed);
            noop_rss.push(run.rss_kib);
        }
        println!("  round {}/{runs} done", round + 1);
    }
    let (apply_median, floor_median, noop_median) =
        (median(&mut apply), median(&mut floor), median(&mut noop));
    let (apply_rss, noop_rss) = (median(&mut apply_rss), median(&mut noop_rss));
    let factor = apply_median.as_secs_f64() / floor_median.as_secs_f64();
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measure | pitcrew-migrate | `psql -f` (the floor) | goal | result |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let _ = writeln!(
        table,
        "| apply {MIGRATIONS} migrations to an empty database, median of {runs} | {} | {} | ≤ {GOAL_FACTOR}× psql | {} ({factor:.2}×) |",
        ms(apply_median),
        ms(floor_median),
        verdict(factor <= GOAL_FACTOR)
    );
    let _ = writeln!(
        table,
        "| no-op `up` (already at the latest version), whole process incl. connecting, median of {} | {} | – | < 50 ms after the connection | {} |",
        noop.len(),
        ms(noop_median),
        verdict(noop_median < GOAL_NOOP)
    );
    let _ = writeln!(
        table,
        "| peak RSS (apply / no-op), median | {apply_rss} KiB / {noop_rss} KiB | – | – | – |"
    );
    let _ = writeln!(
        table,
        "| image size | {} (binary {}; gzipped {}) | – | – | – |",
        util::megabytes(image_bytes),
        util::megabytes(binary_bytes),
        util::megabytes(gzipped)
    );
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "- Each migration creates a table and an index and inserts a row. pitcrew-migrate applies each in its own \
         transaction with its state-table and checksum updates, under the advisory lock; psql runs the same {MIGRATIONS} \
         files with `-f` in one session, nothing else. Both over TCP to a local PostgreSQL with SCRAM, a fresh database per round. \
         The test server runs with `fsync=off` (the testkit's setting), so commits cost no disk wait \
         for either (psql in autocommit commits each statement, pitcrew-migrate each migration)."
    );
    let _ = writeln!(
        notes,
        "- The no-op time is the whole process (start, connect, lock, read the state and the checksums, unlock, exit): \
         it bounds the time after the connection from above. golang-migrate is not installed here."
    );
    println!("\n{table}\n{notes}");
    println!("bench took {:.0}s", started.elapsed().as_secs_f64());
    let intro = format!(
        "Written by `cargo xtask bench migrate --runs {runs}`; rerun it to refresh (a few minutes, most of it building \
         the images). PostgreSQL 15 from Debian, started by the bench on loopback."
    );
    drop(postgres);
    super::write_section("migrate", "pitcrew-migrate vs psql -f", &intro, &table, &notes)
}
