//! `cargo xtask`: the project's task runner (the `xtask` alias is in .cargo/config.toml).
//!
//! One place for what would otherwise be shell scripts: building the images, the one test
//! command CI runs, the newcomer demo and the benchmarks. Rust instead of shell so it runs
//! the same everywhere and fails with messages that say what to do.

mod bench;
mod demo;
mod images;
mod platform;
mod smoke;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tasks for the pitcrew workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build the static musl binaries and the FROM-scratch images (pitcrew/<tool>:dev,
    /// pitcrew/busybox:dev) and print their sizes.
    Images {
        /// Also make the images the example pods need in podman's store: the pitcrew images
        /// tagged with the workspace version, and the peers (PostgreSQL, MariaDB, nginx) from
        /// Debian (debootstrap, about three minutes the first time).
        #[arg(long)]
        pods: bool,
    },
    /// The one test command: install what is missing, fmt, clippy, unit and integration
    /// tests, images, and the end-to-end image tests. CI runs exactly this.
    Test,
    /// Show pitcrew/wait holding back an app container until a late dependency is ready.
    Demo,
    /// Benchmarks; writes BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: BenchTarget,
    },
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// pitcrew-wait vs a busybox shell loop vs wait-for-it: size, memory, detection delay,
    /// connection attempts per second.
    Wait {
        /// Detection-delay runs per tool.
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(3..=100))]
        runs: u32,
    },
    /// pitcrew-fetch vs `curl -o` + `sha256sum` on a 1 GiB file from local nginx: throughput,
    /// peak RSS, image sizes (fetch and validate).
    Fetch {
        /// Size of the file, in MiB.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
        size_mib: u64,
        /// Timed runs per tool.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
    /// pitcrew-migrate on a local PostgreSQL: 200 migrations against `psql -f` of the same
    /// files, a no-op `up`, peak RSS, image size.
    Migrate {
        /// Rounds (each on fresh databases).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
    },
    /// pitcrew-tail vs GNU and busybox `tail -F` following a file written as fast as possible;
    /// JSON records, file → HTTP (nginx), RSS at 100k lines/s, image size.
    Tail {
        /// Size of the log written per run, in MiB.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
        size_mib: u64,
        /// Timed runs per follower.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
    /// pitcrew-render vs GNU envsubst on a 100 MB template: throughput, peak RSS, image size.
    Render {
        /// Timed runs per tool.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Images { pods } => images::build_all().and_then(|_| {
            if pods {
                images::prepare_pod_images().map(drop)
            } else {
                Ok(())
            }
        }),
        Task::Test => test::run(),
        Task::Demo => demo::run(),
        Task::Bench {
            which: BenchTarget::Wait { runs },
        } => bench::wait(runs),
        Task::Bench {
            which: BenchTarget::Render { runs },
        } => bench::render(runs),
        Task::Bench {
            which: BenchTarget::Fetch { size_mib, runs },
        } => bench::fetch(size_mib, runs),
        Task::Bench {
            which: BenchTarget::Migrate { runs },
        } => bench::migrate(runs),
        Task::Bench {
            which: BenchTarget::Tail { size_mib, runs },
        } => bench::tail(size_mib, runs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
