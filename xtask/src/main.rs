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
mod supply;
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
    /// Build the static musl binaries and the FROM-scratch images of every tool and the
    /// all-in-one `pitcrew/pitcrew`, per platform (`pitcrew/<tool>:<TAG>-<arch>`, and
    /// `pitcrew/<tool>:<TAG>` for amd64, the host's; with --registry also named
    /// REGISTRY/pitcrew/<tool>:<TAG>-<arch>), plus pitcrew/busybox:dev, and print their sizes.
    ///
    /// A release mirrored into your registry:
    ///   cargo xtask images --tag 0.1.0 --registry registry.example.com/platform --push
    #[command(verbatim_doc_comment)]
    Images {
        /// The image tag: `dev` for local builds; a version must be the workspace's
        /// (Cargo.toml), which the binaries print.
        #[arg(long, default_value = images::DEV_TAG)]
        tag: String,
        /// Registry and path the image names start with, e.g. registry.example.com/platform
        /// (images are then REGISTRY/pitcrew/<tool>:<TAG>-<arch>).
        #[arg(long)]
        registry: Option<String>,
        /// Push the per-platform images to --registry and assemble there the multi-platform
        /// manifest list REGISTRY/pitcrew/<tool>:<TAG> (docker manifest); prints the digests.
        #[arg(long, requires = "registry")]
        push: bool,
        /// Platforms, comma-separated: linux/amd64, linux/arm64. Default: linux/amd64 (the
        /// host's), both with --push.
        #[arg(long)]
        platform: Option<String>,
        /// Only these images, comma-separated tool names (`wait,tail`; `pitcrew` for the
        /// all-in-one).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// Also make the images the example pods need in podman's store: the pitcrew images
        /// tagged with the workspace version, and the peers (PostgreSQL, MariaDB, nginx, Redis)
        /// from Debian (debootstrap, about three minutes the first time).
        #[arg(long)]
        pods: bool,
    },
    /// Push images that `cargo xtask images --tag TAG` built, without building again, and
    /// assemble the multi-platform manifest lists in the registry; prints the digests.
    Push {
        /// The tag the images were built with.
        #[arg(long, default_value = images::DEV_TAG)]
        tag: String,
        /// Registry and path to push to, e.g. registry.example.com/platform.
        #[arg(long)]
        registry: String,
        /// Platforms, comma-separated (default: linux/amd64,linux/arm64).
        #[arg(long, default_value = "linux/amd64,linux/arm64")]
        platform: String,
        /// Only these images, comma-separated tool names (`pitcrew` for the all-in-one).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
    },
    /// The one test command: install what is missing, fmt, clippy, unit and integration
    /// tests, images, and the end-to-end image tests. CI runs exactly this.
    Test,
    /// arm64: wait's, tail's and the follower's real-peer test files built for
    /// aarch64-unknown-linux-musl and run under qemu-aarch64-static (about 2.5 minutes;
    /// `cargo xtask test` runs the arm64 image binaries against real peers instead).
    SmokeArm64,
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
    /// Every image's size per platform (uncompressed and gzipped) beside Debian's
    /// busybox-static, the all-in-one against its goal, and each binary's largest crates.
    Images,
    /// pitcrew-reload vs a busybox `sha256sum` polling loop: ConfigMap swap → webhook latency
    /// (p50, p99, the debounce subtracted), peak RSS, image size.
    Reload {
        /// Kubelet-style ConfigMap swaps for pitcrew-reload (each waits out its debounce).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=5000))]
        swaps: u64,
        /// Swaps for the busybox loop (about 0.5 s each: it polls every second).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=500))]
        anchor_swaps: u64,
    },
    /// pitcrew-metrics vs mtail counting the lines of the same access log by status:
    /// lines/s and peak RSS.
    Metrics {
        /// Lines in the generated access log.
        #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(10_000..=100_000_000))]
        lines: u64,
        /// Timed runs per tool.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
    /// pitcrew-proxy vs nginx proxy_pass vs haproxy in front of the same nginx upstream, one
    /// worker each pinned to core 1, wrk and the upstream on core 0: requests/s, p50/p99, peak
    /// RSS, CPU per request; and pitcrew-proxy with JWT (HS256) auth on.
    Proxy {
        /// Seconds wrk measures each contender (after a 2 s warm-up).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Keep-alive connections wrk holds open (one wrk thread).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        connections: u32,
        /// Measured runs per contender, in alternating order; the tables show medians.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// Only these contenders, comma-separated: pitcrew, pitcrew-jwt, nginx, haproxy, direct
        /// (BENCHMARKS.md is written only when the goals can be judged: all but direct ran).
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
    },
    /// pitcrew-render vs GNU envsubst on a 100 MB template: throughput, peak RSS, image size.
    Render {
        /// Timed runs per tool.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
}

/// `cargo xtask images …`: see `Task::Images`.
fn images_task(
    tag: String,
    registry: Option<String>,
    push: bool,
    platform: Option<&str>,
    only: Option<Vec<String>>,
    pods: bool,
) -> util::Result {
    let platforms = match platform {
        Some(list) => platform::parse_list(list)?,
        // A push publishes a release: every platform, so arm64 nodes do not meet
        // `exec format error`. Local builds stay quick: the host's platform only.
        None if push => platform::ALL.to_vec(),
        None => vec![platform::AMD64],
    };
    if pods && (tag != images::DEV_TAG || !platforms.contains(&platform::AMD64)) {
        return Err(
            "--pods loads the local amd64 `dev` images into podman: use it without --tag \
                    and with linux/amd64 among the platforms"
                .into(),
        );
    }
    let request = images::Request {
        tag,
        registry,
        platforms,
        only,
        push,
    };
    images::build(&request)?;
    if pods {
        images::prepare_pod_images()?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Images {
            tag,
            registry,
            push,
            platform,
            only,
            pods,
        } => images_task(tag, registry, push, platform.as_deref(), only, pods),
        Task::Push {
            tag,
            registry,
            platform,
            only,
        } => platform::parse_list(&platform).and_then(|platforms| {
            images::push_built(&images::Request {
                tag,
                registry: Some(registry),
                platforms,
                only,
                push: true,
            })
        }),
        Task::Test => test::run(),
        Task::SmokeArm64 => smoke::run(pitcrew_testkit::on_ci()).map(drop),
        Task::Demo => demo::run(),
        Task::Bench {
            which: BenchTarget::Wait { runs },
        } => bench::wait(runs),
        Task::Bench {
            which: BenchTarget::Render { runs },
        } => bench::render(runs),
        Task::Bench {
            which: BenchTarget::Images,
        } => bench::images(),
        Task::Bench {
            which: BenchTarget::Fetch { size_mib, runs },
        } => bench::fetch(size_mib, runs),
        Task::Bench {
            which: BenchTarget::Migrate { runs },
        } => bench::migrate(runs),
        Task::Bench {
            which: BenchTarget::Tail { size_mib, runs },
        } => bench::tail(size_mib, runs),
        Task::Bench {
            which: BenchTarget::Metrics { lines, runs },
        } => bench::metrics(lines, runs),
        Task::Bench {
            which:
                BenchTarget::Proxy {
                    seconds,
                    connections,
                    runs,
                    only,
                },
        } => bench::proxy(bench::ProxyOptions {
            seconds,
            connections,
            runs,
            only,
        }),
        Task::Bench {
            which: BenchTarget::Reload { swaps, anchor_swaps },
        } => bench::reload(
            usize::try_from(swaps).unwrap_or(usize::MAX),
            usize::try_from(anchor_swaps).unwrap_or(usize::MAX),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
