//! `cargo xtask bench <tool>`: each tool against what pod specs use today, measured in the
//! same run on this machine. Each benchmark prints its table and rewrites its own section of
//! BENCHMARKS.md (between `<!-- bench:TOOL -->` markers), leaving the other tools' sections as
//! they were.

mod render;
mod wait;

use std::process::{Command, Stdio};

use crate::util::{self, Result};

pub use render::render;
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
