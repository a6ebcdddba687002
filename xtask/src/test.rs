//! `cargo xtask test`: the project's one test command (`.ci/run` runs exactly this).
//!
//! Steps run in order and stop at the first failure, with a summary of what ran and how long
//! each step took. On CI (`CI=true`) nothing may be skipped: a missing docker engine or test
//! peer is a failure, because a skipped test there would read as a passed one.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{self, Result};
use crate::{images, platform, supply};

/// Debian packages the tests use as real peers, plus what builds and benchmarks the images.
const PACKAGES: &[&str] = &[
    "postgresql",
    "mariadb-server",
    "redis-server",
    "nginx-light",
    "dnsmasq-base",
    "busybox-static",
    "wait-for-it",
    "hyperfine",
    "musl-tools",
    "ca-certificates",
    "time",
    "strace",
    "gettext-base",
    "util-linux",
    // pitcrew-fetch: real archives for --extract tests (GNU tar's --zstd needs zstd), and
    // curl + sha256sum as the benchmark's anchor.
    "zstd",
    "zip",
    "curl",
    // pitcrew-tail: a real syslog receiver for the syslog sink, GNU coreutils' tail is the
    // benchmark's anchor (busybox-static above is the other).
    "rsyslog",
    "coreutils",
    // pitcrew-reload: a real Prometheus (testkit's prometheus peer) reloaded through its
    // `/-/reload` webhook from a ConfigMap-style volume; the metrics sidecar's tests scrape
    // with it too.
    "prometheus",
    // pitcrew-metrics: mtail is the anchor of `cargo xtask bench metrics` (same log, an
    // equivalent program).
    "mtail",
    // pitcrew-proxy: `cargo xtask bench proxy` measures with wrk through pitcrew-proxy, nginx
    // proxy_pass (nginx-light above) and haproxy, the proxies a pod spec uses today.
    "haproxy",
    "wrk",
    // The example pods run for real with `podman kube play` (netavark and aardvark-dns give
    // pods on one network each other's names; catatonit is the pause image's init), and
    // debootstrap makes the Debian root of the peer images (PostgreSQL, MariaDB, nginx, Redis).
    "podman",
    "catatonit",
    "netavark",
    "aardvark-dns",
    "debootstrap",
    // A real registry on loopback (the CNCF distribution registry): `cargo xtask push` is
    // tested against it, manifest lists included.
    "docker-registry",
    // arm64: the cross C compiler for ring (the aarch64 musl builds), and qemu-user to run the
    // binaries from the arm64 images (and `cargo xtask smoke-arm64`) on this amd64 machine.
    // libc6-dev-arm64-cross: the C headers the cross gcc compiles ring with (a Recommends of
    // the gcc, which --no-install-recommends leaves out).
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "qemu-user-static",
];

/// The tools whose arm64 images `cargo xtask test` builds and tests (an init tool and a
/// sidecar).
const SMOKE_IMAGES: [&str; 2] = ["wait", "tail"];

struct Steps {
    done: Vec<(String, Duration, &'static str)>,
}

impl Steps {
    fn step(&mut self, name: &str, action: impl FnOnce() -> Result<&'static str>) -> Result {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = action();
        let elapsed = start.elapsed();
        match result {
            Ok(outcome) => {
                self.done.push((name.to_owned(), elapsed, outcome));
                Ok(())
            }
            Err(message) => {
                self.done.push((name.to_owned(), elapsed, "FAILED"));
                self.print();
                Err(format!("step `{name}` failed: {message}"))
            }
        }
    }

    fn print(&self) {
        println!("\nxtask test summary:");
        for (name, elapsed, outcome) in &self.done {
            println!("  {outcome:<8} {:>6.1}s  {name}", elapsed.as_secs_f64());
        }
    }
}

fn cargo() -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(util::root());
    cargo
}

/// Runs every step; see the module docs.
pub fn run() -> Result {
    let ci = pitcrew_testkit::on_ci();
    let start = Instant::now();
    let mut steps = Steps { done: Vec::new() };
    println!(
        "xtask test: CI={} (on CI a missing peer or docker engine fails the run)",
        if ci { "true" } else { "false" }
    );

    steps.step(
        "install what is missing (musl targets, rustfmt, clippy, Debian peers, podman, PyPI and S3 peers)",
        || {
            platform::AMD64.ensure_toolchain()?;
            util::ensure_components(&["rustfmt", "clippy"])?;
            util::ensure_packages(PACKAGES, ci)?;
            platform::ARM64.ensure_toolchain()?;
            // S3 peers for pitcrew-fetch: moto (S3 and STS behaviour) from PyPI, and s3s-fs
            // (checks SigV4 signatures, which moto cannot for presigned URLs) from crates.io,
            // each installed once under ~/.cache/pitcrew. The first run compiles s3s-fs
            // (about 3.5 minutes on 2 cores).
            println!(
                "  moto and s3s-fs under {}",
                pitcrew_testkit::moto::peers_dir().display()
            );
            pitcrew_testkit::moto::ensure_moto()?;
            pitcrew_testkit::moto::ensure_s3s_fs()?;
            // Kubernetes' schemas, offline, for the examples' schema test.
            pitcrew_testkit::examples::ensure_validator()?;
            supply::ensure_tools()?;
            Ok("ok")
        },
    )?;
    steps.step("cargo fmt --check", || {
        util::run(cargo().args(["fmt", "--all", "--", "--check"]))
            .map_err(|err| format!("{err}; run `cargo fmt --all` and commit the result"))?;
        Ok("ok")
    })?;
    steps.step("cargo clippy -D warnings", || {
        util::run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))?;
        Ok("ok")
    })?;
    steps.step(supply::DENY_STEP, supply::deny_check)?;
    // The image tests need the images, built below; they run in their own step.
    steps.step("cargo test (unit and integration)", || {
        // --all-features: pitcrew-core's features are tested even when no tool enables them yet
        // (the admin server is for the sidecars to come).
        util::run(cargo().args([
            "test",
            "--workspace",
            "--all-features",
            "--exclude",
            "pitcrew-e2e",
        ]))?;
        Ok("ok")
    })?;

    // arm64 runs in the end-to-end step: the wait and tail binaries of the arm64 images under
    // qemu against real peers. The arm64 build of the libraries' test suites
    // (`cargo xtask smoke-arm64`) would add about 2.5 minutes; see crate::smoke.

    steps.step(
        "fuzz smoke: pitcrew-template, 20 s of cargo fuzz (nightly, libFuzzer)",
        || fuzz_smoke().map(|()| "ok"),
    )?;

    if util::docker_works() {
        steps.step(
            "build images (amd64: every tool and the all-in-one; arm64: wait and tail)",
            || {
                images::build_all()?;
                // arm64 for the smoke set only: building every tool for arm64 too would add
                // several minutes of fat-LTO links; the arm64 image tests use these two.
                images::build(&images::Request {
                    platforms: vec![crate::platform::ARM64],
                    only: Some(SMOKE_IMAGES.iter().map(|name| (*name).to_owned()).collect()),
                    ..images::Request::dev()
                })?;
                Ok("ok")
            },
        )?;
        steps.step(
            "pod images for podman: the pitcrew images, and the peers from Debian (built once)",
            || images::prepare_pod_images().map(|_| "ok"),
        )?;
        steps.step("end-to-end image tests (tests/)", || {
            util::run(
                cargo()
                    .args(["test", "-p", "pitcrew-e2e", "--", "--test-threads=2"])
                    .env("PITCREW_E2E", "1"),
            )?;
            Ok("ok")
        })?;
    } else {
        let message = "the docker engine does not answer (`docker version` failed)";
        if ci {
            steps.step("docker engine", || Err(message.into()))?;
        }
        println!("\nSKIPPED: images and end-to-end image tests: {message}");
        steps
            .done
            .push(("images and e2e tests".into(), Duration::ZERO, "SKIPPED"));
    }
    steps.print();
    println!("xtask test: done in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// How long the smoke run fuzzes. From scratch on 2 cores the whole step (installing
/// cargo-fuzz ~45 s, building with the sanitizer ~60 s, fuzzing) took about 2 minutes.
const FUZZ_SECONDS: u32 = 20;

/// A short run of pitcrew-template's fuzz target, so a crash the fuzzer finds quickly never
/// lands. Installs what it needs (cargo-fuzz, the nightly toolchain) when missing. The long
/// run is the same command with a larger -max_total_time (see crates/template/fuzz/Cargo.toml).
fn fuzz_smoke() -> Result {
    // `cargo +nightly` needs the rustup proxy, not the stable cargo running this task; the
    // variables cargo sets for us would pin the stable toolchain under it.
    let rustup_cargo = || {
        let mut cargo = Command::new("cargo");
        cargo
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER");
        cargo
    };
    if !util::succeeds(rustup_cargo().args(["+nightly", "--version"])) {
        util::run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if !util::succeeds(rustup_cargo().args(["fuzz", "--version"])) {
        util::run(rustup_cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let dir = util::root().join("crates/template");
    let corpus = dir.join("fuzz/corpus/render");
    std::fs::create_dir_all(&corpus).map_err(|err| format!("cannot create {}: {err}", corpus.display()))?;
    util::run(rustup_cargo().current_dir(&dir).args([
        "+nightly",
        "fuzz",
        "run",
        "render",
        "fuzz/corpus/render",
        "fuzz/seeds/render",
        "--",
        &format!("-max_total_time={FUZZ_SECONDS}"),
        "-timeout=10",
    ]))
    .map_err(|err| {
        format!(
            "{err}; the failing input is in crates/template/fuzz/artifacts/render/: replay it with \
             `cargo +nightly fuzz run render <file>` from crates/template, and pin it as a regression \
             test in crates/template/tests/fuzz.rs"
        )
    })
}
