//! The images as a platform team receives them: OCI labels that say what each image is and
//! where it comes from (and never the build machine's paths), and `cargo xtask push` into a
//! real registry (Debian's docker-registry, the CNCF distribution registry, on loopback),
//! where it assembles the multi-platform manifest list a node pulls and prints digests that
//! pin it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pitcrew_e2e::{WAIT_IMAGE, inspect_image as inspect, must_run, ready, skipped};

/// The workspace root, which must never appear in a label.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Every image `cargo xtask images` builds from the workspace: one per tool crate, and the
/// all-in-one when its crate is there.
fn pitcrew_images() -> Vec<(String, String)> {
    let crates = workspace_root().join("crates");
    let mut images = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates/ is readable").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "testkit" || !entry.path().join("src/main.rs").is_file() {
            continue;
        }
        let binary = if name == "pitcrew" {
            name.clone()
        } else {
            format!("pitcrew-{name}")
        };
        images.push((format!("pitcrew/{name}:dev"), binary));
    }
    images.sort();
    assert!(images.len() >= 7, "found only {images:?} in {}", crates.display());
    images
}

#[test]
fn every_image_carries_oci_labels_and_no_local_path() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let root = workspace_root();
    let root = root.to_string_lossy();
    for (image, binary) in pitcrew_images() {
        let config = inspect(&image);
        let labels = &config["Config"]["Labels"];
        let label = |key: &str| {
            labels[format!("org.opencontainers.image.{key}")]
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(
            label("title").as_deref(),
            Some(binary.as_str()),
            "{image}: {labels}"
        );
        assert_eq!(
            label("version").as_deref(),
            Some(env!("CARGO_PKG_VERSION")),
            "{image}"
        );
        assert_eq!(label("licenses").as_deref(), Some("Apache-2.0"), "{image}");
        let description = label("description").unwrap_or_default();
        assert!(description.len() > 20, "{image}: description {description:?}");
        let revision = label("revision").unwrap_or_default();
        assert!(
            revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
            "{image}: revision {revision:?} is not a git commit"
        );
        let created = label("created").unwrap_or_default();
        assert!(
            created.len() >= 20 && created.as_bytes()[4] == b'-' && created.contains('T'),
            "{image}: created {created:?} is not an RFC 3339 time"
        );
        if let Some(source) = label("source") {
            assert!(
                source.starts_with("https://") && !source.contains('@'),
                "{image}: source {source:?}"
            );
        }
        // Whatever the clone is (here its origin is a local path), no label names the
        // machine it was built on.
        for (key, value) in labels.as_object().expect("labels are an object") {
            let value = value.as_str().unwrap_or_default();
            assert!(
                !value.contains(&*root),
                "{image}: label {key}={value:?} names the local clone"
            );
        }
        assert_eq!(config["Architecture"], "amd64", "{image}");
        assert_eq!(config["Os"], "linux", "{image}");
    }
}

/// Debian's docker-registry on a free loopback port, storing into a temp dir; killed on drop.
struct Registry {
    child: Child,
    address: String,
    _storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Self> {
        let binary = pitcrew_testkit::require_binary("docker-registry", &[])?;
        let storage = tempfile::tempdir().expect("temp dir");
        let port = pitcrew_testkit::free_port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("write the registry's config");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        pitcrew_testkit::wait_for_port(
            address.parse().expect("an address"),
            Duration::from_secs(30),
            "docker-registry",
        );
        Some(Self {
            child,
            address,
            _storage: storage,
        })
    }

    /// GETs a manifest with `accept`; returns the body and the registry's content digest.
    fn manifest(&self, repository: &str, reference: &str, accept: &str) -> (serde_json::Value, String) {
        let headers = tempfile::NamedTempFile::new().expect("temp file");
        let output = Command::new("curl")
            .args([
                "-fsS",
                "--max-time",
                "30",
                "-H",
                &format!("Accept: {accept}"),
                "-D",
            ])
            .arg(headers.path())
            .arg(format!(
                "http://{}/v2/{repository}/manifests/{reference}",
                self.address
            ))
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "GET manifest {repository}:{reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let headers = std::fs::read_to_string(headers.path()).expect("headers");
        let digest = headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no Docker-Content-Digest in {headers}"));
        (
            serde_json::from_slice(&output.stdout).expect("a JSON manifest"),
            digest,
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn push_assembles_a_multi_platform_list_that_pins_by_digest() {
    let arm64 = "pitcrew/wait:dev-arm64";
    if !ready(WAIT_IMAGE) || !ready(arm64) || !ready("pitcrew/tail:dev-arm64") {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let Ok(cargo) = std::env::var("CARGO") else {
        assert!(!must_run(), "CARGO is not set: run this test with cargo test");
        skipped("CARGO is not set: run this test with cargo test");
        return;
    };
    let target = format!("{}/acme", registry.address);
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "run",
            "-q",
            "-p",
            "xtask",
            "--",
            "push",
            "--tag",
            "dev",
            "--registry",
            &target,
        ])
        .args(["--platform", "linux/amd64,linux/arm64", "--only", "wait,tail"])
        .stdin(Stdio::null())
        .output()
        .expect("cargo xtask push runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo xtask push failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for tool in ["wait", "tail"] {
        let repository = format!("acme/pitcrew/{tool}");
        let (list, list_digest) = registry.manifest(&repository, "dev", LIST);
        assert_eq!(list["mediaType"], LIST, "{list}");
        let entries = list["manifests"].as_array().expect("a list of manifests");
        let mut archs: Vec<&str> = entries
            .iter()
            .map(|entry| entry["platform"]["architecture"].as_str().unwrap_or_default())
            .collect();
        archs.sort_unstable();
        assert_eq!(archs, ["amd64", "arm64"], "{list}");
        for entry in entries {
            let arch = entry["platform"]["architecture"].as_str().unwrap_or_default();
            assert_eq!(entry["platform"]["os"], "linux");
            // Each entry is the per-platform image that was pushed, byte for byte.
            let (_, digest) = registry.manifest(&repository, &format!("dev-{arch}"), MANIFEST);
            assert_eq!(entry["digest"], digest, "{tool} {arch}");
        }
        // The printed pin is the list's digest, as the registry computes it.
        let pin = format!("{target}/pitcrew/{tool}@{list_digest}");
        assert!(stdout.contains(&pin), "`{pin}` not printed:\n{stdout}");
        // The JSON the command wrote is the list the registry holds.
        let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || workspace_root().join("target"),
            |dir| workspace_root().join(dir),
        );
        let written = target_dir.join(format!("images/manifests/{tool}.json"));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written).expect("the manifest list's JSON"))
                .expect("JSON");
        assert_eq!(written["manifests"], list["manifests"], "{tool}");
    }

    // A node pulls by the pinned digest and gets its own platform's image.
    let pin = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(&format!("{target}/pitcrew/wait@sha256:")))
        .expect("a pin for wait")
        .to_owned();
    let pulled = Command::new("docker")
        .args(["pull", "-q", &pin])
        .output()
        .expect("docker pull");
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let config = inspect(&pin);
    assert_eq!(config["Architecture"], "amd64");
    let version = Command::new("docker")
        .args(["run", "--rm", &pin, "--version"])
        .output()
        .expect("docker run");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("pitcrew-wait {}", env!("CARGO_PKG_VERSION"))
    );
    let _ = Command::new("docker").args(["rmi", "-f", &pin]).output();
    for tool in ["wait", "tail"] {
        for arch in ["amd64", "arm64"] {
            let _ = Command::new("docker")
                .args(["rmi", &format!("{target}/pitcrew/{tool}:dev-{arch}")])
                .output();
        }
    }
}

#[test]
fn push_refuses_images_that_were_not_built() {
    if !ready(WAIT_IMAGE) {
        return;
    }
    let Ok(cargo) = std::env::var("CARGO") else {
        return;
    };
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["run", "-q", "-p", "xtask", "--", "push", "--tag", "never-built"])
        .args(["--registry", "127.0.0.1:9/acme", "--only", "wait"])
        .stdin(Stdio::null())
        .output()
        .expect("cargo xtask push runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("pitcrew/wait:never-built-amd64 is not built")
            && stderr.contains("cargo xtask images --tag never-built"),
        "{stderr}"
    );
}

/// The all-in-one image: every tool answers through its link (`command: ["/wait"]`) and by
/// its name as the first argument, as uid 65532 on a read-only root; a run without a tool is a
/// usage error, not a success that would let an init container pass having done nothing.
#[test]
fn the_all_in_one_image_runs_every_tool_by_link_and_by_name() {
    let image = "pitcrew/pitcrew:dev";
    if !ready(image) {
        return;
    }
    let run = |args: &[&str]| {
        Command::new("docker")
            .args(["run", "--rm", "--read-only", "--network", "host"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker run")
    };
    for (_, binary) in pitcrew_images() {
        let Some(tool) = binary.strip_prefix("pitcrew-") else {
            continue;
        };
        let expected = format!("{binary} {}", env!("CARGO_PKG_VERSION"));
        for entrypoint in [format!("/{tool}"), format!("/{binary}")] {
            let output = run(&["--entrypoint", &entrypoint, image, "--version"]);
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                expected,
                "{entrypoint}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let output = run(&[image, tool, "--version"]);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "pitcrew {tool}"
        );
    }

    let output = run(&[image]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "no tool given: {stderr}");
    assert!(stderr.contains("wait") && stderr.contains("tail"), "{stderr}");

    // A real wait through the link, as uid 65532 (the image's user).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = format!("tcp://{}", listener.local_addr().expect("address"));
    let output = run(&["--entrypoint", "/wait", image, "--timeout", "60s", &target]);
    assert!(
        output.status.success(),
        "wait for {target} through /wait: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let user = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Config.User}}", image])
        .output()
        .expect("docker image inspect");
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");
}
