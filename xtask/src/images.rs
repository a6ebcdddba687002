//! `cargo xtask images`: builds every tool's static musl binary and its FROM-scratch image from
//! images/Dockerfile, for each platform asked for (linux/amd64, linux/arm64), plus the
//! all-in-one image `pitcrew/pitcrew` (one multicall binary, see crates/pitcrew) and
//! `pitcrew/busybox:dev` from Debian's busybox-static for comparisons and the demo.
//!
//! Names: `pitcrew/<tool>:<TAG>-<arch>` for each platform built, and `pitcrew/<tool>:<TAG>`
//! for the host's platform (amd64) too, so `docker run` works locally; with a registry, also
//! `REGISTRY/pitcrew/<tool>:<TAG>-<arch>`. A local docker store holds one platform per name,
//! so the per-platform images are kept apart; `--push` (or `cargo xtask push` for images
//! already built) pushes them to the registry named and assembles the multi-platform manifest
//! list `REGISTRY/pitcrew/<tool>:<TAG>` there (`docker manifest`), which is what a node pulls.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::platform::{self, Platform};
use crate::supply;
use crate::util::{self, Result};

/// Where Debian's ca-certificates package puts the bundle that goes into every image.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Debian's busybox-static binary.
const BUSYBOX: &str = "/bin/busybox";
/// The folder (and package, binary and image name) of the all-in-one multicall crate.
const ALL_IN_ONE: &str = "pitcrew";
/// The tag of local development images.
pub const DEV_TAG: &str = "dev";

/// A tool crate under crates/, or the all-in-one crate.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The folder name and image name, e.g. `wait` (image `pitcrew/wait`).
    pub name: String,
    /// The package's description, for the image label.
    pub description: String,
    /// The package and binary name: `pitcrew-wait`, or `pitcrew` for the all-in-one.
    binary: String,
}

impl Tool {
    /// The package and binary name, e.g. `pitcrew-wait`.
    pub fn binary(&self) -> String {
        self.binary.clone()
    }

    /// The local development image of the host's platform, e.g. `pitcrew/wait:dev`.
    pub fn image(&self) -> String {
        format!("pitcrew/{}:{DEV_TAG}", self.name)
    }

    /// Whether this is the all-in-one multicall binary.
    pub fn is_all_in_one(&self) -> bool {
        self.name == ALL_IN_ONE
    }
}

/// What was built, for the size report.
#[derive(Debug)]
pub struct Built {
    /// Image name: the plain tag for amd64 (`pitcrew/wait:dev`), else the per-platform one
    /// (`pitcrew/wait:dev-arm64`).
    pub image: String,
    /// The platform's architecture (`amd64`, `arm64`).
    pub arch: &'static str,
    /// Image size in bytes, as docker reports it.
    pub image_bytes: u64,
    /// The binary inside, when it is one of ours.
    pub binary: Option<(PathBuf, u64)>,
}

/// What `cargo xtask images` is asked to build and where it goes.
#[derive(Debug, Clone)]
pub struct Request {
    /// The tag (`dev`, or the workspace version for a release).
    pub tag: String,
    /// The registry and path the image names start with (`registry.example.com/platform`).
    pub registry: Option<String>,
    /// The platforms to build, the host's usually first.
    pub platforms: Vec<Platform>,
    /// Only these tools (image names, `pitcrew` for the all-in-one); all when `None`.
    pub only: Option<Vec<String>>,
    /// Push to the registry and assemble the multi-platform manifest lists there.
    pub push: bool,
}

impl Request {
    /// The development build: every image for the host's platform, tagged `dev`.
    pub fn dev() -> Self {
        Self {
            tag: DEV_TAG.into(),
            registry: None,
            platforms: vec![platform::AMD64],
            only: None,
            push: false,
        }
    }

    /// Checks the request as a whole; every error names the bad value and what was expected.
    pub fn validate(&self) -> Result {
        check_tag(&self.tag)?;
        if let Some(registry) = &self.registry {
            check_registry(registry)?;
        }
        if self.push && self.registry.is_none() {
            return Err("--push needs --registry: without one, `pitcrew/wait` would go to Docker Hub's \
                        `pitcrew` organisation; name your registry, e.g. --registry registry.example.com/platform"
                .into());
        }
        if self.platforms.is_empty() {
            return Err("no platform to build: expected --platform linux/amd64, linux/arm64 or both".into());
        }
        Ok(())
    }

    /// The image repository of `tool`: `[REGISTRY/]pitcrew/<tool>`.
    pub fn repository(&self, tool: &Tool) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/pitcrew/{}", tool.name),
            None => format!("pitcrew/{}", tool.name),
        }
    }

    /// The per-platform image name: `[REGISTRY/]pitcrew/<tool>:<TAG>-<arch>`.
    pub fn platform_image(&self, tool: &Tool, platform: Platform) -> String {
        format!("{}:{}-{}", self.repository(tool), self.tag, platform.arch)
    }

    /// The per-platform image as built locally, whatever the registry:
    /// `pitcrew/<tool>:<TAG>-<arch>`.
    pub fn local_image(&self, tool: &Tool, platform: Platform) -> String {
        format!("pitcrew/{}:{}-{}", tool.name, self.tag, platform.arch)
    }
}

/// A docker tag: up to 128 characters of letters, digits, `_`, `.` and `-`, not starting with
/// `.` or `-` (the per-platform suffix `-arm64` is added to it, so 6 fewer). A version-like
/// tag must be the workspace version: the binaries inside print that one.
pub fn check_tag(tag: &str) -> Result {
    let valid = !tag.is_empty()
        && tag.len() <= 128 - "-arm64".len()
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(format!(
            "invalid --tag {tag:?}: expected up to 122 letters, digits, '_', '.' or '-', not starting \
             with '.' or '-' (e.g. dev or {})",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let looks_like_version = tag
        .trim_start_matches('v')
        .split('.')
        .take(2)
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
        && tag.contains('.');
    let version = env!("CARGO_PKG_VERSION");
    if looks_like_version && tag.trim_start_matches('v') != version {
        return Err(format!(
            "--tag {tag} is a version, but the workspace version is {version} (Cargo.toml \
             [workspace.package]): the binaries would print {version}; set the version in Cargo.toml \
             first, or use --tag {version}"
        ));
    }
    Ok(())
}

/// A registry and optional path, as image names start: `host[:port][/path…]`, lower case,
/// no scheme, no empty or `..` parts.
pub fn check_registry(registry: &str) -> Result {
    let expected = "expected a registry host with an optional port and path, as image names \
                    start, e.g. registry.example.com/platform or 127.0.0.1:5000";
    if registry.contains("://") {
        return Err(format!(
            "invalid --registry {registry:?}: no scheme (https://); {expected}"
        ));
    }
    let parts: Vec<&str> = registry.split('/').collect();
    let host_ok = parts[0]
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | ':'));
    let paths_ok = parts[1..].iter().all(|part| {
        part.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    });
    if registry.is_empty()
        || parts
            .iter()
            .any(|part| part.is_empty() || *part == "." || *part == "..")
        || !host_ok
        || !paths_ok
    {
        return Err(format!(
            "invalid --registry {registry:?}: {expected} (lower case only)"
        ));
    }
    Ok(())
}

/// The tool crates: every folder in crates/ with a binary (`src/main.rs`), except the shared
/// ones and the all-in-one. Library crates (template, follow) have no main.rs and so no image.
pub fn tools() -> Result<Vec<Tool>> {
    let tools: Vec<Tool> = crates_with_binaries()?
        .into_iter()
        .filter(|tool| !tool.is_all_in_one())
        .collect();
    if tools.is_empty() {
        return Err(format!(
            "no tool crates found in {}",
            util::root().join("crates").display()
        ));
    }
    Ok(tools)
}

/// The all-in-one multicall crate, when the workspace has it.
pub fn all_in_one() -> Result<Option<Tool>> {
    Ok(crates_with_binaries()?.into_iter().find(Tool::is_all_in_one))
}

fn crates_with_binaries() -> Result<Vec<Tool>> {
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
        let binary = if name == ALL_IN_ONE {
            ALL_IN_ONE.to_owned()
        } else {
            format!("pitcrew-{name}")
        };
        tools.push(Tool {
            name,
            description,
            binary,
        });
    }
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tools)
}

/// The binary of `tool` as the host's image ships it (after `build`).
pub fn binary_path(tool: &Tool) -> PathBuf {
    binary_path_for(tool, platform::AMD64)
}

/// The binary of `tool` as the `platform` image ships it: in the image's build context.
pub fn binary_path_for(tool: &Tool, platform: Platform) -> PathBuf {
    context_dir(&format!("{}-{}", tool.name, platform.arch)).join(tool.binary())
}

/// The release musl binary of `tool` for `platform`, as cargo wrote it.
pub fn cargo_binary_path(tool: &Tool, platform: Platform) -> PathBuf {
    util::target_dir()
        .join(platform.rust_target)
        .join("release")
        .join(tool.binary())
}

/// Copies cargo's binary into the image without its unwind tables (`.eh_frame` and its
/// index): with `panic = "abort"` nothing unwinds, so they serve nothing, yet std (shipped
/// precompiled with them) and ring's C code bring about 0.34 MB, 12 % of pitcrew-wait
/// (`force-unwind-tables=no` in .cargo/config.toml only covers what we compile). A panic with
/// RUST_BACKTRACE set still prints its message and aborts; its backtrace is empty, where the
/// stripped binary showed bare addresses. Every other section is kept (the SBOM's too).
fn stage_binary(tool: &Tool, platform: Platform, to: &Path) -> Result {
    let from = cargo_binary_path(tool, platform);
    util::capture(
        Command::new(platform.objcopy)
            .args([
                "--remove-section",
                ".eh_frame",
                "--remove-section",
                ".eh_frame_hdr",
            ])
            .arg(&from)
            .arg(to),
    )
    .map(drop)
}

/// Builds the release musl binaries of `tools` for `platforms`, in one cargo call: shared
/// dependencies and build scripts build once, every platform's fat-LTO links run side by side.
pub fn build_binaries(tools: &[Tool], platforms: &[Platform]) -> Result {
    // `cargo auditable build`: each binary carries its dependency list (see supply.rs).
    let mut cargo = supply::auditable_build()?;
    cargo.current_dir(util::root()).arg("--release");
    for platform in platforms {
        platform.ensure_toolchain()?;
        platform.set_cc(&mut cargo);
        cargo.args(["--target", platform.rust_target]);
    }
    for tool in tools {
        cargo.args(["-p", &tool.binary()]);
    }
    util::run(&mut cargo)
}

/// The development images (every image for the host's platform, tagged `dev`), as the tests,
/// benchmarks and demo use them; prints their sizes.
pub fn build_all() -> Result<Vec<Built>> {
    build(&Request::dev())
}

/// Builds what `request` asks for, prints the sizes and, with `push`, pushes. Returns what
/// was built.
pub fn build(request: &Request) -> Result<Vec<Built>> {
    request.validate()?;
    if !util::docker_works() {
        return Err(
            "the docker engine does not answer (`docker version` failed); start it, \
                    or check that this user may use /var/run/docker.sock"
                .into(),
        );
    }
    util::ensure_packages(&["ca-certificates", "busybox-static"], true)?;
    let mut images = tools()?;
    images.extend(all_in_one()?);
    if let Some(only) = &request.only {
        check_only(only, &images)?;
        images.retain(|tool| only.contains(&tool.name));
    }
    build_binaries(&images, &request.platforms)?;
    let labels = Labels::for_this_checkout();
    let single_tools: Vec<Tool> = tools()?;
    let mut built = Vec::new();
    for platform in &request.platforms {
        for tool in &images {
            built.push(build_tool_image(
                request,
                tool,
                *platform,
                &labels,
                &single_tools,
            )?);
        }
    }
    if request.only.is_none() && request.platforms.contains(&platform::AMD64) {
        built.push(build_busybox_image()?);
    }
    println!(
        "\n{:<40} {:>8} {:>12} {:>12}",
        "image", "platform", "image size", "binary size"
    );
    for image in &built {
        let binary = image
            .binary
            .as_ref()
            .map_or_else(|| "-".to_owned(), |(_, bytes)| util::megabytes(*bytes));
        println!(
            "{:<40} {:>8} {:>12} {:>12}",
            image.image,
            image.arch,
            util::megabytes(image.image_bytes),
            binary
        );
    }
    if request.push {
        push(request, &images)?;
    }
    Ok(built)
}

/// `cargo xtask push`: pushes images that `cargo xtask images --tag TAG` built, without
/// building again (build once, test, then push; or mirror into several registries).
pub fn push_built(request: &Request) -> Result {
    request.validate()?;
    let mut images = tools()?;
    images.extend(all_in_one()?);
    if let Some(only) = &request.only {
        check_only(only, &images)?;
        images.retain(|tool| only.contains(&tool.name));
    }
    for tool in &images {
        for platform in &request.platforms {
            let local = request.local_image(tool, *platform);
            if !util::succeeds(Command::new("docker").args(["image", "inspect", &local])) {
                return Err(format!(
                    "{local} is not built; build it first with `cargo xtask images --tag {} --platform {}`",
                    request.tag,
                    platform.os_arch()
                ));
            }
            util::capture(Command::new("docker").args([
                "tag",
                &local,
                &request.platform_image(tool, *platform),
            ]))?;
        }
    }
    push(request, &images)
}

/// Every name in `--only` must be an image there is.
fn check_only(only: &[String], images: &[Tool]) -> Result {
    for name in only {
        if !images.iter().any(|tool| &tool.name == name) {
            return Err(format!(
                "unknown image {name:?} in --only: expected some of {}",
                images
                    .iter()
                    .map(|tool| tool.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// The OCI labels every image carries (`org.opencontainers.image.*`).
struct Labels {
    version: String,
    revision: Option<String>,
    created: Option<String>,
    source: Option<String>,
}

impl Labels {
    fn for_this_checkout() -> Self {
        let git = |args: &[&str]| {
            util::stdout_of(Command::new("git").current_dir(util::root()).args(args))
                .ok()
                .filter(|text| !text.is_empty())
        };
        let revision = git(&["rev-parse", "HEAD"]);
        if revision.is_some() && git(&["status", "--porcelain", "--untracked-files=no"]).is_some() {
            println!("note: the work tree has uncommitted changes; the revision label names the last commit");
        }
        let created = util::stdout_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).ok();
        let source = git(&["remote", "get-url", "origin"]).and_then(|url| source_url(&url));
        if source.is_none() {
            println!(
                "note: no org.opencontainers.image.source label: the git remote `origin` is not a URL \
                 (a local path or none); only a public URL goes into a label"
            );
        }
        Self {
            version: env!("CARGO_PKG_VERSION").into(),
            revision,
            created,
            source,
        }
    }
}

/// The source label's value: a remote URL without credentials, `.git` dropped; `None` for a
/// local path (`/work/main`, `file://…`, `../x`), which must never go into an image.
fn source_url(remote: &str) -> Option<String> {
    let remote = remote.trim();
    let url = if let Some((scheme, rest)) = remote.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        // Drop user info (a token in `https://user:token@host/…` must not be published).
        let rest = rest
            .rsplit_once('@')
            .map_or(rest, |(_, host_and_path)| host_and_path);
        format!("https://{rest}")
    } else if let Some((user_host, path)) = remote.split_once(':') {
        // scp-like `git@github.com:org/repo.git`; a local path (`/work/main`, `../x`) has a
        // `/` before any `:`, or no `:` at all.
        if user_host.contains('/') {
            return None;
        }
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, host)| host);
        format!("https://{host}/{}", path.trim_start_matches('/'))
    } else {
        return None;
    };
    let url = url.strip_suffix(".git").unwrap_or(&url).to_owned();
    let host = url["https://".len()..].split('/').next().unwrap_or_default();
    (host.contains('.') && !host.starts_with('.')).then_some(url)
}

/// A build-context folder under target/images/.
fn context_dir(name: &str) -> PathBuf {
    util::target_dir().join("images").join(name)
}

/// A fresh, empty build-context folder under target/images/.
fn context(name: &str) -> Result<PathBuf> {
    let dir = context_dir(name);
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

fn build_tool_image(
    request: &Request,
    tool: &Tool,
    platform: Platform,
    labels: &Labels,
    single_tools: &[Tool],
) -> Result<Built> {
    let dir = context(&format!("{}-{}", tool.name, platform.arch))?;
    let binary = dir.join(tool.binary());
    stage_binary(tool, platform, &binary)?;
    copy(Path::new(CA_BUNDLE), &dir.join("ca-certificates.crt"))?;
    // The fixed entry point: see images/Dockerfile for why a symlink. In the all-in-one image
    // the binary is /pitcrew itself; its links are the tools' names, short and long
    // (`command: ["/wait"]`, or `["/pitcrew-wait"]` as in the tool's own image).
    let entry = dir.join("entry");
    fs::create_dir(&entry).map_err(|err| format!("cannot create entry/: {err}"))?;
    if tool.is_all_in_one() {
        for single in single_tools {
            symlink(&tool.binary(), &entry.join(&single.name))?;
            symlink(&tool.binary(), &entry.join(single.binary()))?;
        }
    } else {
        symlink(&tool.binary(), &entry.join("pitcrew"))?;
    }
    let image = request.local_image(tool, platform);
    // The plain tag is the host's image, what `docker run pitcrew/wait:dev` picks.
    let plain = format!("pitcrew/{}:{}", tool.name, request.tag);
    let mut build = Command::new("docker");
    build
        .arg("build")
        .args(["--platform", &platform.os_arch()])
        // The legacy builder (no buildx here) would reuse the other platform's cached steps;
        // the steps are only copies, so nothing is lost by not caching.
        .arg("--no-cache")
        .arg("-f")
        .arg(util::root().join("images").join("Dockerfile"))
        .args(["--build-arg", &format!("BIN={}", tool.binary())]);
    let mut label = |key: &str, value: &str| {
        build.args(["--label", &format!("org.opencontainers.image.{key}={value}")]);
    };
    label("title", &tool.binary());
    label("description", &tool.description);
    label("version", &labels.version);
    label("licenses", "Apache-2.0");
    for (key, value) in [
        ("revision", &labels.revision),
        ("created", &labels.created),
        ("source", &labels.source),
    ] {
        if let Some(value) = value {
            label(key, value);
        }
    }
    build.args(["-t", &image]);
    if platform == platform::AMD64 {
        build.args(["-t", &plain]);
    }
    // Named for the registry too, ready for `docker push` or `cargo xtask push`.
    if request.registry.is_some() {
        build.args(["-t", &request.platform_image(tool, platform)]);
    }
    docker_build(build.arg(&dir))?;
    let bytes = fs::metadata(&binary).map_or(0, |meta| meta.len());
    Ok(Built {
        image_bytes: image_size(&image)?,
        image: if platform == platform::AMD64 { plain } else { image },
        arch: platform.arch,
        binary: Some((binary, bytes)),
    })
}

/// The comparison image: what pod specs use today (`busybox` with a shell loop), rebuilt from
/// Debian's busybox-static because no image can be pulled here. Applet symlinks in /bin, as
/// in the upstream busybox image, so `sh -c 'until nc …'` works as in a pod spec.
pub fn build_busybox_image() -> Result<Built> {
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
        arch: platform::AMD64.arch,
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
/// version the manifests use, and the peer images (PostgreSQL, MariaDB, nginx, Redis) from
/// Debian, built once and then only when their recipe changes.
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

/// Pushes the per-platform images of `images` and assembles each multi-platform manifest
/// list in the registry (`docker manifest`): `REGISTRY/pitcrew/<tool>:<TAG>` then names the
/// image for every platform, and a node pulls its own. Writes each list's JSON to
/// target/images/manifests/<tool>.json and prints the digests to pin.
fn push(request: &Request, images: &[Tool]) -> Result {
    let registry = request.registry.as_deref().ok_or("--push needs --registry")?;
    // docker trusts a plain-HTTP registry on loopback for push and pull; `docker manifest`
    // needs to be told.
    let insecure = is_loopback(registry);
    let manifests = util::target_dir().join("images").join("manifests");
    fs::create_dir_all(&manifests).map_err(|err| format!("cannot create {}: {err}", manifests.display()))?;
    let mut pinned = Vec::new();
    for tool in images {
        let list = format!("{}:{}", request.repository(tool), request.tag);
        let members: Vec<String> = request
            .platforms
            .iter()
            .map(|platform| request.platform_image(tool, *platform))
            .collect();
        for member in &members {
            util::run(Command::new("docker").args(["push", "--quiet", member]))?;
        }
        let manifest = |verb: &str| {
            let mut command = Command::new("docker");
            command.args(["manifest", verb]);
            if insecure {
                command.arg("--insecure");
            }
            command
        };
        // A list left locally by an earlier run would be amended, not replaced.
        util::succeeds(Command::new("docker").args(["manifest", "rm", &list]));
        util::run(manifest("create").arg(&list).args(&members))?;
        let json = util::stdout_of(manifest("inspect").arg(&list))?;
        let path = manifests.join(format!("{}.json", tool.name));
        fs::write(&path, format!("{json}\n"))
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        let output = util::stdout_of(manifest("push").arg("--purge").arg(&list))?;
        let digest = output
            .lines()
            .rev()
            .find(|line| line.starts_with("sha256:"))
            .ok_or_else(|| format!("`docker manifest push {list}` printed no digest: {output}"))?;
        pinned.push(format!("{}@{digest}", request.repository(tool)));
    }
    let record = util::target_dir().join("images").join("pushed.txt");
    fs::write(&record, pinned.join("\n") + "\n")
        .map_err(|err| format!("cannot write {}: {err}", record.display()))?;
    println!(
        "\npushed {} multi-platform image(s) ({}); pin them by digest:",
        pinned.len(),
        request
            .platforms
            .iter()
            .map(Platform::os_arch)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for line in &pinned {
        println!("  {line}");
    }
    println!(
        "(also in {}; the manifest lists' JSON is in {})",
        record.display(),
        manifests.display()
    );
    Ok(())
}

/// Whether the registry's host is this machine (`localhost`, `127.x.y.z`, `[::1]`).
fn is_loopback(registry: &str) -> bool {
    let host_port = registry.split('/').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_public_url_becomes_the_source_label() {
        assert_eq!(
            source_url("https://github.com/acme/pitcrew.git").as_deref(),
            Some("https://github.com/acme/pitcrew")
        );
        assert_eq!(
            source_url("git@github.com:acme/pitcrew.git").as_deref(),
            Some("https://github.com/acme/pitcrew")
        );
        assert_eq!(
            source_url("ssh://git@gitlab.example.com/platform/pitcrew").as_deref(),
            Some("https://gitlab.example.com/platform/pitcrew")
        );
        // A token in the remote URL must not be published in every image.
        let url = source_url("https://ci-bot:ghp_s3cret@github.com/acme/pitcrew").unwrap();
        assert_eq!(url, "https://github.com/acme/pitcrew");
        // The clone's local path never goes into a label.
        for local in [
            "/work/main",
            "../main",
            "file:///work/main",
            "main",
            "/tmp/a:b",
            "C:/x",
        ] {
            assert_eq!(source_url(local), None, "{local}");
        }
    }

    #[test]
    fn bad_tags_and_registries_are_refused_by_name() {
        check_tag("dev").unwrap();
        check_tag(env!("CARGO_PKG_VERSION")).unwrap();
        check_tag("sha-4f2a9c1").unwrap();
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"x".repeat(123)] {
            let err = check_tag(bad).unwrap_err();
            assert!(err.contains("invalid --tag"), "{bad}: {err}");
        }
        // A version other than the workspace's: the binaries would print another one.
        let err = check_tag("99.0.0").unwrap_err();
        assert!(
            err.contains("99.0.0") && err.contains(env!("CARGO_PKG_VERSION")),
            "{err}"
        );

        check_registry("registry.example.com/platform").unwrap();
        check_registry("127.0.0.1:5000").unwrap();
        check_registry("ghcr.io/acme/mirror").unwrap();
        for bad in [
            "",
            "https://registry.example.com",
            "Registry.example.com",
            "registry.example.com/",
            "registry.example.com//x",
            "registry.example.com/../x",
            "registry example.com",
        ] {
            let err = check_registry(bad).unwrap_err();
            assert!(
                err.contains("invalid --registry") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn push_needs_a_registry() {
        let request = Request {
            push: true,
            ..Request::dev()
        };
        let err = request.validate().unwrap_err();
        assert!(err.contains("--push needs --registry"), "{err}");
    }

    #[test]
    fn names_carry_the_registry_tag_and_platform() {
        let tool = Tool {
            name: "wait".into(),
            description: String::new(),
            binary: "pitcrew-wait".into(),
        };
        let request = Request {
            tag: "0.1.0".into(),
            registry: Some("registry.example.com/platform".into()),
            ..Request::dev()
        };
        assert_eq!(
            request.platform_image(&tool, platform::ARM64),
            "registry.example.com/platform/pitcrew/wait:0.1.0-arm64"
        );
        assert!(is_loopback("127.0.0.1:5000/acme"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
    }
}
