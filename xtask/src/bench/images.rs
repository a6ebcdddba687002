//! `cargo xtask bench images`: every image's size per platform, uncompressed (the goal's
//! measure) and gzipped (about what a node pulls), beside Debian's busybox-static image; the
//! all-in-one image against 1.5× the largest tool image; and what each binary spends its bytes
//! on, by crate (cargo-bloat on an unstripped build of the same profile).

use std::fmt::Write as _;
use std::process::Command;

use super::{gzipped_size, write_section};
use crate::images::{self, Built, Request};
use crate::platform::{self, Platform};
use crate::util::{self, Result};

/// cargo-bloat, pinned: it attributes an unstripped binary's code to crates.
const CARGO_BLOAT: (&str, &str) = ("cargo-bloat", "0.12.1");

/// Size goals from issue 11, in bytes (MB = 10^6 bytes, as docker reports sizes).
const INIT_GOAL: u64 = 3_000_000;
const SIDECAR_GOAL: u64 = 4_000_000;
/// The sidecars (long-running); every other tool is an init tool.
const SIDECARS: &[&str] = &["tail", "reload", "metrics", "proxy"];

struct Row {
    image: String,
    arch: &'static str,
    bytes: u64,
    gzipped: u64,
    binary: u64,
    goal: String,
}

#[allow(clippy::too_many_lines)]
pub fn images() -> Result {
    println!("building every image for linux/amd64 and linux/arm64");
    let built = images::build(&Request {
        platforms: platform::ALL.to_vec(),
        ..Request::dev()
    })?;
    let tools = images::tools()?;
    let all_in_one = images::all_in_one()?;
    let mut rows = Vec::new();
    for platform in platform::ALL {
        let on_platform: Vec<&Built> = built.iter().filter(|b| b.arch == platform.arch).collect();
        let largest = on_platform
            .iter()
            .filter(|b| b.binary.is_some() && !b.image.starts_with("pitcrew/pitcrew:"))
            .map(|b| (b.image_bytes, b.image.clone()))
            .max();
        for image in on_platform {
            let name = image.image.split(':').next().unwrap_or_default();
            let tool = name.trim_start_matches("pitcrew/");
            let goal = if tool == "busybox" {
                "(the anchor)".to_owned()
            } else if tool == "pitcrew" {
                let (largest_bytes, largest_name) = largest.clone().unwrap_or_default();
                let limit = largest_bytes * 3 / 2;
                format!(
                    "≤ 1.5 × {} = {}: {}",
                    largest_name
                        .trim_start_matches("pitcrew/")
                        .split(':')
                        .next()
                        .unwrap_or_default(),
                    util::megabytes(limit),
                    met(image.image_bytes <= limit)
                )
            } else if SIDECARS.contains(&tool) {
                format!("sidecar ≤ 4 MB: {}", met(image.image_bytes <= SIDECAR_GOAL))
            } else {
                format!("init ≤ 3 MB: {}", met(image.image_bytes <= INIT_GOAL))
            };
            rows.push(Row {
                image: image.image.clone(),
                arch: image.arch,
                bytes: image.image_bytes,
                gzipped: gzipped_size(&image.image)?,
                binary: image.binary.as_ref().map_or(0, |(_, bytes)| *bytes),
                goal,
            });
        }
    }

    let mut table =
        String::from("| image | platform | image | gzipped | binary | goal |\n|---|---|---|---|---|---|\n");
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            row.image,
            row.arch,
            util::megabytes(row.bytes),
            util::megabytes(row.gzipped),
            if row.binary == 0 {
                "-".to_owned()
            } else {
                util::megabytes(row.binary)
            },
            row.goal
        );
    }
    println!("\n{table}");

    println!(
        "what each binary spends its bytes on (cargo bloat --crates, unstripped build of the same profile)"
    );
    let mut spend = String::from(
        "Largest crates in each amd64 binary (`cargo bloat --crates`: code in `.text` by the crate it \
         was compiled from; generic code counts for the crate that instantiated it, `std` includes \
         `core` and `alloc`):\n\n| binary | .text | largest crates |\n|---|---|---|\n",
    );
    let mut binaries: Vec<images::Tool> = tools.clone();
    binaries.extend(all_in_one);
    for tool in &binaries {
        let (text, crates) = bloat(tool, platform::AMD64)?;
        let top: Vec<String> = crates
            .iter()
            .take(8)
            .map(|(name, bytes)| format!("{name} {}", kilobytes(*bytes)))
            .collect();
        let line = format!(
            "| {} | {} | {} |\n",
            tool.binary(),
            util::megabytes(text),
            top.join(", ")
        );
        print!("{line}");
        spend += &line;
    }

    let intro = "Every image as `cargo xtask images` builds it, per platform, beside Debian's busybox-static \
         packed the same way (`FROM scratch`, the binary and its applet links): the image pod specs use \
         today for `until nc …` loops and `tail -F`. Goals (issue 11): init tools ≤ 3 MB, sidecars ≤ 4 MB \
         uncompressed; the all-in-one `pitcrew/pitcrew` ≤ 1.5 × the largest tool image of its platform.";
    let notes = format!(
        "- image: `docker image inspect` size (MB = 10^6 bytes), the goal's measure: the binary, \
         Debian's CA bundle (~0.2 MB) and links. gzipped: `docker save IMAGE | gzip -6`, about what a \
         node downloads. binary: the stripped release binary.\n\
         - busybox is amd64 only: no arm64 busybox-static can be had without adding a dpkg \
         architecture to this machine.\n\
         - The crate table comes from `cargo bloat --release --crates` ({} {}) on a build with \
         `CARGO_PROFILE_RELEASE_STRIP=false` into target/bloat (same profile otherwise).\n\n\
         {spend}\n\
         What was cut, and what is left:\n\n\
         - Cut: the unwind tables. With `panic = \"abort\"` nothing unwinds, yet std (shipped \
         precompiled with them) and ring's C code brought `.eh_frame`: 0.34 MB, 12 % of pitcrew-wait. \
         `cargo xtask images` removes it with objcopy; wait went from 3.07 to 2.73 MB and fetch from \
         3.27 to 2.88 MB, under the 3 MB goal.\n\
         - Earlier cuts (see README, Images): opt-level z, fat LTO, non-PIE, identical code folding, \
         no ICU tables in url.\n\
         - Left, in migrate and validate (over 3 MB): the `regex` crate with its Unicode tables and \
         literal optimisations (regex, regex_automata, regex_syntax, aho_corasick: about 0.44 MB). \
         mysql_common needs it to parse server versions and dates, jsonschema for `pattern`; both \
         depend on it with default features, which a dependent cannot turn off. Cutting it means \
         MySQL support in a separate image, or a change upstream.\n\
         - Left everywhere: std's formatting and collections (~0.35 MB), rustls + ring + webpki for \
         TLS (~0.46 MB in wait, fetch, migrate, tail) and clap (~0.12 MB) — each serves every run.\n\
         - The all-in-one duplicates nothing (it is 42 % of the seven binaries added up); it is over \
         its goal because it holds every tool's heavy code at once: jsonschema, both database \
         drivers, the regex crate, the archive readers. Trial builds without validate and migrate \
         came to 4.0 MB.\n\
         - arm64 binaries come out 10 to 19 % smaller than the amd64 ones from the same source.\n",
        CARGO_BLOAT.0, CARGO_BLOAT.1
    );
    write_section(
        "images",
        "Image sizes: every tool, per platform, and the all-in-one",
        &format!("{intro} Refresh with `cargo xtask bench images` (about 12 minutes on 2 cores)."),
        &table,
        &notes,
    )
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn kilobytes(bytes: u64) -> String {
    format!("{} KB", bytes / 1000)
}

/// `cargo bloat --crates` of `tool`: the `.text` size and the crates by size, largest first.
fn bloat(tool: &images::Tool, platform: Platform) -> Result<(u64, Vec<(String, u64)>)> {
    ensure_cargo_bloat()?;
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(util::root())
        .args([
            "bloat",
            "--release",
            "--crates",
            "-n",
            "0",
            "--message-format",
            "json",
        ])
        .args(["--target", platform.rust_target, "-p", &tool.binary()])
        // Symbols are what cargo-bloat reads; a target dir of its own keeps the stripped
        // release binaries the images use.
        .env("CARGO_PROFILE_RELEASE_STRIP", "false")
        .env("CARGO_TARGET_DIR", util::target_dir().join("bloat"));
    platform.set_cc(&mut cargo);
    let output = util::stdout_of(&mut cargo)?;
    let json = output
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| format!("cargo bloat printed no JSON: {output}"))?;
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|err| format!("cargo bloat's JSON: {err}: {json}"))?;
    let text = value["text-section-size"].as_u64().unwrap_or_default();
    let mut crates: Vec<(String, u64)> = value["crates"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|entry| {
                    (
                        entry["name"].as_str().unwrap_or("?").to_owned(),
                        entry["size"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    crates.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    Ok((text, crates))
}

fn ensure_cargo_bloat() -> Result {
    let (name, version) = CARGO_BLOAT;
    let installed =
        util::stdout_of(Command::new(env!("CARGO")).args(["bloat", "--version"])).unwrap_or_default();
    if installed.contains(version) {
        return Ok(());
    }
    util::run(Command::new(env!("CARGO")).args(["install", "--locked", name, "--version", version]))
}
