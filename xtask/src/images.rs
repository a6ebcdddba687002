//! `cargo xtask images`: builds every tool's static musl binary and its FROM-scratch image
//! (`pitcrew/<tool>:dev`) from images/Dockerfile, plus `pitcrew/busybox:dev` from Debian's
//! busybox-static for comparisons and the demo.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, MUSL, Result};

/// Where Debian's ca-certificates package puts the bundle that goes into every image.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Debian's busybox-static binary.
const BUSYBOX: &str = "/bin/busybox";

/// A tool crate under crates/.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The folder name, e.g. `wait`.
    pub name: String,
    /// The package's description, for the image label.
    pub description: String,
}

impl Tool {
    /// The package and binary name, e.g. `pitcrew-wait`.
    pub fn binary(&self) -> String {
        format!("pitcrew-{}", self.name)
    }

    /// The dev image tag, e.g. `pitcrew/wait:dev`.
    pub fn image(&self) -> String {
        format!("pitcrew/{}:dev", self.name)
    }
}

/// What was built, for the size report.
#[derive(Debug)]
pub struct Built {
    /// Image tag.
    pub image: String,
    /// Image size in bytes, as docker reports it.
    pub image_bytes: u64,
    /// The binary inside, when it is one of ours.
    pub binary: Option<(PathBuf, u64)>,
}

/// The tool crates: every folder in crates/ with a binary (`src/main.rs`), except the shared
/// ones. Library crates (template, follow) have no main.rs and so no image.
pub fn tools() -> Result<Vec<Tool>> {
    let crates = util::root().join("crates");
    let mut tools = Vec::new();
    let entries = fs::read_dir(&crates).map_err(|err| format!("cannot list {}: {err}", crates.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let manifest = entry.path().join("Cargo.toml");
        let binary = entry.path().join("src").join("main.rs");
        if matches!(name.as_str(), "core" | "testkit") || !manifest.is_file() || !binary.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest).map_err(|err| format!("{}: {err}", manifest.display()))?;
        let description = text
            .lines()
            .find_map(|line| line.strip_prefix("description = "))
            .map(|value| value.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        tools.push(Tool { name, description });
    }
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    if tools.is_empty() {
        return Err(format!("no tool crates found in {}", crates.display()));
    }
    Ok(tools)
}

/// The release musl binary of `tool`.
pub fn binary_path(tool: &Tool) -> PathBuf {
    util::target_dir().join(MUSL).join("release").join(tool.binary())
}

/// Builds the release musl binaries of every tool (one cargo call: shared dependencies build once).
pub fn build_binaries(tools: &[Tool]) -> Result {
    util::ensure_musl_target()?;
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(util::root())
        .args(["build", "--release", "--target", MUSL]);
    for tool in tools {
        cargo.args(["-p", &tool.binary()]);
    }
    util::musl_cc(&mut cargo)?;
    util::run(&mut cargo)
}

/// Builds every image and prints their sizes. Returns what was built.
pub fn build_all() -> Result<Vec<Built>> {
    if !util::docker_works() {
        return Err(
            "the docker engine does not answer (`docker version` failed); start it, \
                    or check that this user may use /var/run/docker.sock"
                .into(),
        );
    }
    util::ensure_packages(&["ca-certificates", "busybox-static"], true)?;
    let tools = tools()?;
    build_binaries(&tools)?;
    let mut built = Vec::new();
    for tool in &tools {
        built.push(build_tool_image(tool)?);
    }
    built.push(build_busybox_image()?);
    println!("\n{:<24} {:>12} {:>12}", "image", "image size", "binary size");
    for image in &built {
        let binary = image
            .binary
            .as_ref()
            .map_or_else(|| "-".to_owned(), |(_, bytes)| util::megabytes(*bytes));
        println!(
            "{:<24} {:>12} {:>12}",
            image.image,
            util::megabytes(image.image_bytes),
            binary
        );
    }
    Ok(built)
}

/// A fresh, empty build-context folder under target/images/.
fn context(name: &str) -> Result<PathBuf> {
    let dir = util::target_dir().join("images").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|err| format!("cannot clear {}: {err}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    Ok(dir)
}

fn copy(from: &Path, to: &Path) -> Result {
    fs::copy(from, to)
        .map(drop)
        .map_err(|err| format!("cannot copy {} to {}: {err}", from.display(), to.display()))
}

fn symlink(target: &str, link: &Path) -> Result {
    std::os::unix::fs::symlink(target, link)
        .map_err(|err| format!("cannot create symlink {}: {err}", link.display()))
}

fn build_tool_image(tool: &Tool) -> Result<Built> {
    let binary = binary_path(tool);
    let dir = context(&tool.name)?;
    copy(&binary, &dir.join(tool.binary()))?;
    copy(Path::new(CA_BUNDLE), &dir.join("ca-certificates.crt"))?;
    // The fixed entry point: see images/Dockerfile for why a symlink.
    fs::create_dir(dir.join("entry")).map_err(|err| format!("cannot create entry/: {err}"))?;
    symlink(&tool.binary(), &dir.join("entry").join("pitcrew"))?;
    let image = tool.image();
    docker_build(
        Command::new("docker")
            .arg("build")
            .arg("-f")
            .arg(util::root().join("images").join("Dockerfile"))
            .args(["--build-arg", &format!("BIN={}", tool.binary())])
            .args(["--build-arg", &format!("DESCRIPTION={}", tool.description)])
            .args(["--build-arg", &format!("SOURCE={}", source())])
            .args(["-t", &image])
            .arg(&dir),
    )?;
    let bytes = fs::metadata(&binary).map_or(0, |meta| meta.len());
    Ok(Built {
        image_bytes: image_size(&image)?,
        image,
        binary: Some((binary, bytes)),
    })
}

/// The repository the image comes from, for its source label: the git remote, if any.
fn source() -> String {
    util::stdout_of(
        Command::new("git")
            .current_dir(util::root())
            .args(["remote", "get-url", "origin"]),
    )
    .ok()
    .filter(|url| !url.is_empty())
    .unwrap_or_else(|| "unknown".into())
}

/// The comparison image: what pod specs use today (`busybox` with a shell loop), rebuilt from
/// Debian's busybox-static because no image can be pulled here. Applet symlinks in /bin, as
/// in the upstream busybox image, so `sh -c 'until nc …'` works as in a pod spec.
fn build_busybox_image() -> Result<Built> {
    let dir = context("busybox")?;
    let bin = dir.join("rootfs").join("bin");
    fs::create_dir_all(&bin).map_err(|err| format!("cannot create {}: {err}", bin.display()))?;
    copy(Path::new(BUSYBOX), &bin.join("busybox"))?;
    let applets = util::stdout_of(Command::new(BUSYBOX).arg("--list"))?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", &bin.join(applet))?;
    }
    // Not the tools' Dockerfile: this image is only a yardstick and a demo prop, never shipped.
    let dockerfile = "FROM scratch\n\
        LABEL org.opencontainers.image.title=\"busybox\" \\\n      \
        org.opencontainers.image.description=\"Debian busybox-static, for comparisons and the pitcrew demo\"\n\
        COPY rootfs/ /\n\
        ENV PATH=/bin\n\
        CMD [\"sh\"]\n";
    fs::write(dir.join("Dockerfile"), dockerfile).map_err(|err| format!("cannot write Dockerfile: {err}"))?;
    let image = "pitcrew/busybox:dev".to_owned();
    docker_build(Command::new("docker").args(["build", "-t", &image]).arg(&dir))?;
    Ok(Built {
        image_bytes: image_size(&image)?,
        image,
        binary: None,
    })
}

/// Runs `docker build` quietly: its step-by-step output only shows up when it fails.
fn docker_build(command: &mut Command) -> Result {
    println!("$ {}", util::show(command));
    util::capture(command).map(drop)
}

/// An image's size in bytes, as docker reports it.
pub fn image_size(image: &str) -> Result<u64> {
    let size = util::stdout_of(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", image]))?;
    size.parse()
        .map_err(|err| format!("docker reported size {size:?} for {image}: {err}"))
}

/// Makes the images the example pods need in podman's store (see
/// `pitcrew_testkit::podman`): the pitcrew images just built, tagged with the workspace
/// version the manifests use, and the peer images (PostgreSQL, MariaDB, nginx) from Debian,
/// built once and then only when their recipe changes.
pub fn prepare_pod_images() -> Result<pitcrew_testkit::podman::Podman> {
    let podman = pitcrew_testkit::podman::Podman::setup()?;
    let tools = tools()?;
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    podman.load_pitcrew_images(&names, env!("CARGO_PKG_VERSION"))?;
    println!(
        "loaded into podman ({}): {}",
        pitcrew_testkit::podman::STATE_DIR,
        names
            .iter()
            .map(|name| format!("pitcrew/{name}:{}", env!("CARGO_PKG_VERSION")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    podman.build_peer_images(&mut std::io::stdout())?;
    Ok(podman)
}
