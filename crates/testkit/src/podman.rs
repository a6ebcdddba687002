//! Pods run for real with `podman kube play`: the engine, its images, and the manifests of
//! `examples/` turned into what podman 4.3 can play.
//!
//! No Kubernetes runs here, but podman runs Kubernetes YAML: init containers one after another,
//! app containers together in one network namespace, emptyDir and ConfigMap volumes, Secrets as
//! env, and pods on one `--network` that find each other by pod name. The end-to-end pod tests
//! and `cargo xtask demo` both use this module, so the demo shows what the tests check.
//!
//! What is set up here, and why:
//! - [`Podman::setup`]: a containers.conf and storage.conf of our own, pointed to by
//!   `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF`, so nothing global is touched. The sandbox
//!   cannot raise podman's default rlimits (hence `default_ulimits`), has no journald (hence
//!   file logs and events), and the tests' images live in a store of their own.
//! - [`Podman::build_peer_images`]: the non-pitcrew containers of the examples (PostgreSQL,
//!   MariaDB, nginx, Redis) from Debian's packages, because no registry can be reached. They
//!   carry the names the manifests use (`postgres:15`, `mariadb:10.11`, `nginx:1.22`,
//!   `redis:7.0`: the versions Debian bookworm ships) and entrypoints that follow the official
//!   images' env contract (`tests/peers/`). They are built once and rebuilt only when their
//!   recipe changes.
//! - [`Podman::load_pitcrew_images`]: the images `cargo xtask images` built with docker
//!   (`pitcrew/<tool>:dev`) copied into podman's store and tagged with the version the
//!   manifests use (`pitcrew/<tool>:0.1.0`); `pitcrew/busybox:dev` (Debian's busybox-static)
//!   becomes `busybox:1.35`, the version Debian ships.
//! - [`Manifest::for_podman`]: a workload of an example as one Pod podman can play. Each change
//!   is a podman 4.3 difference from a kubelet, said where it is made.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::process::describe;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// Where podman's configuration, image store and run state for the tests live.
pub const STATE_DIR: &str = "/var/tmp/pitcrew-podman";

/// The Debian packages the peer images are made of.
const PEER_PACKAGES: &str = "postgresql-15,mariadb-server,nginx-light,redis-server";

/// A podman engine with the project's own configuration.
#[derive(Debug, Clone)]
pub struct Podman {
    conf: PathBuf,
    storage: PathBuf,
}

/// A failure: one message saying what failed, with the command's output.
pub type Result<T = ()> = std::result::Result<T, String>;

/// podman prints a warning about the CNI config that Debian's package installs, on every
/// command, although netavark is in use; it would bury the real message.
fn without_noise(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| !line.contains("Error validating CNI config file"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Podman {
    /// Writes the configuration under [`STATE_DIR`] and checks that podman answers.
    ///
    /// # Errors
    /// When podman is not installed or does not run; the message names the fix.
    pub fn setup() -> Result<Self> {
        let dir = Path::new(STATE_DIR);
        std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {STATE_DIR}: {err}"))?;
        let conf = dir.join("containers.conf");
        let storage = dir.join("storage.conf");
        let conf_text = "# Written by pitcrew's test kit (crates/testkit/src/podman.rs).\n\
            [containers]\n\
            # The sandbox cannot raise podman's default rlimits (1048576).\n\
            default_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n\
            # No journald here: container logs and events go to files.\n\
            log_driver = \"k8s-file\"\n\
            \n\
            [engine]\n\
            events_logger = \"file\"\n";
        let storage_text = format!(
            "# Written by pitcrew's test kit: the tests' images and containers, apart from the machine's.\n\
             [storage]\n\
             driver = \"overlay\"\n\
             graphroot = \"{STATE_DIR}/storage\"\n\
             runroot = \"{STATE_DIR}/run\"\n"
        );
        for (path, text) in [(&conf, conf_text.to_owned()), (&storage, storage_text)] {
            if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(path, text)
                    .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
            }
        }
        let podman = Self { conf, storage };
        podman
            .output(&["version", "--format", "{{.Client.Version}}"])
            .map_err(|err| {
                format!(
                    "podman does not run ({err}); install Debian's podman, catatonit, netavark and \
                 aardvark-dns (`cargo xtask test` does)"
                )
            })?;
        Ok(podman)
    }

    /// A `podman` command using this configuration.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage);
        command
    }

    /// The environment lines a user pastes before a printed podman command.
    pub fn env_line(&self) -> String {
        format!(
            "CONTAINERS_CONF={} CONTAINERS_STORAGE_CONF={}",
            self.conf.display(),
            self.storage.display()
        )
    }

    /// Runs `podman ARGS`, returning its stdout.
    ///
    /// # Errors
    /// When podman fails; the message holds its stderr.
    pub fn output(&self, args: &[&str]) -> Result<String> {
        let mut command = self.command();
        command.args(args);
        run(&mut command)
    }

    /// Whether `podman ARGS` succeeds (output discarded).
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Creates the network `name` when it does not exist. Pods played with `--network NAME`
    /// resolve each other's pod names through aardvark-dns.
    ///
    /// # Errors
    /// When podman cannot create it.
    pub fn ensure_network(&self, name: &str) -> Result {
        if self.succeeds(&["network", "exists", name]) {
            return Ok(());
        }
        self.output(&["network", "create", name]).map(drop)
    }

    /// Whether the image `name` is in the store.
    pub fn image_exists(&self, name: &str) -> bool {
        self.succeeds(&["image", "exists", name])
    }

    /// Copies docker's `pitcrew/<tool>:dev` images into podman's store and tags each as
    /// `pitcrew/<tool>:VERSION` (what the manifests say), and `pitcrew/busybox:dev` as
    /// `busybox:1.35`.
    ///
    /// # Errors
    /// When docker or podman fails.
    pub fn load_pitcrew_images(&self, tools: &[&str], version: &str) -> Result {
        let mut images: Vec<String> = tools.iter().map(|tool| format!("pitcrew/{tool}:dev")).collect();
        images.push("pitcrew/busybox:dev".into());
        let mut save = Command::new("docker");
        save.arg("save").args(&images).stdout(Stdio::piped());
        let mut saving = save
            .spawn()
            .map_err(|err| format!("cannot run `{}`: {err}", describe(&save)))?;
        let mut load = self.command();
        load.args(["load", "-q"])
            .stdin(saving.stdout.take().expect("piped"));
        run_fed(&mut load)?;
        let status = saving.wait().map_err(|err| format!("docker save: {err}"))?;
        if !status.success() {
            return Err(format!("`{}` failed ({status})", describe(&save)));
        }
        for tool in tools {
            self.output(&[
                "tag",
                &format!("localhost/pitcrew/{tool}:dev"),
                &format!("localhost/pitcrew/{tool}:{version}"),
            ])?;
        }
        self.output(&[
            "tag",
            "localhost/pitcrew/busybox:dev",
            "docker.io/library/busybox:1.35",
        ])
        .map(drop)
    }

    /// Builds the peer images unless they are there from the same recipe: a Debian bookworm
    /// root with PostgreSQL 15, MariaDB 10.11, nginx and Redis 7.0 (debootstrap, about two
    /// minutes the first time), then `postgres:15`, `mariadb:10.11`, `nginx:1.22` and
    /// `redis:7.0` on it, each with its entrypoint from `tests/peers/` (Redis needs none).
    /// Progress goes to `log`.
    ///
    /// # Errors
    /// When debootstrap or podman fails, or without root (debootstrap needs it).
    pub fn build_peer_images(&self, log: &mut dyn std::io::Write) -> Result {
        let peers = peers_dir();
        let read = |name: &str| {
            std::fs::read_to_string(peers.join(name))
                .map_err(|err| format!("cannot read tests/peers/{name}: {err}"))
        };
        let files = [
            ("postgres-entrypoint.sh", read("postgres-entrypoint.sh")?),
            ("mariadb-entrypoint.sh", read("mariadb-entrypoint.sh")?),
            ("nginx-default.conf", read("nginx-default.conf")?),
        ];
        let base_recipe = fnv(&format!("bookworm minbase {PEER_PACKAGES} pruned-v1"));
        let base = format!("localhost/pitcrew-peers/base:{base_recipe:016x}");
        let images = peer_images(&base);
        let mut recipe_text = base.clone();
        for (_, text) in &files {
            recipe_text.push_str(text);
        }
        for (name, containerfile) in &images {
            recipe_text.push_str(name);
            recipe_text.push_str(containerfile);
        }
        let recipe = format!("{:016x}", fnv(&recipe_text));
        let current = images.iter().all(|(name, _)| {
            self.output(&[
                "image",
                "inspect",
                "--format",
                "{{index .Labels \"pitcrew.recipe\"}}",
                name,
            ])
            .is_ok_and(|label| label.trim() == recipe)
        });
        if current {
            let _ = writeln!(log, "peer images are up to date (recipe {recipe})");
            return Ok(());
        }
        if !self.image_exists(&base) {
            self.build_base(&base, log)?;
        }
        let context = tempfile::tempdir().map_err(|err| format!("cannot make a temp dir: {err}"))?;
        for (name, text) in &files {
            std::fs::write(context.path().join(name), text)
                .map_err(|err| format!("cannot write {name}: {err}"))?;
        }
        for (name, containerfile) in &images {
            let _ = writeln!(log, "building the peer image {name}");
            let file = context.path().join("Containerfile");
            std::fs::write(&file, containerfile)
                .map_err(|err| format!("cannot write Containerfile: {err}"))?;
            self.output(&[
                "build",
                "-q",
                "--label",
                &format!("pitcrew.recipe={recipe}"),
                "-t",
                name,
                "-f",
                &file.to_string_lossy(),
                &context.path().to_string_lossy(),
            ])?;
        }
        Ok(())
    }

    fn build_base(&self, base: &str, log: &mut dyn std::io::Write) -> Result {
        if !crate::is_root() {
            return Err("building the peer images needs root (debootstrap)".into());
        }
        let root = tempfile::Builder::new()
            .prefix("peers-rootfs-")
            .tempdir_in("/var/tmp")
            .map_err(|err| format!("cannot make a temp dir in /var/tmp: {err}"))?;
        let mirror = debian_mirror();
        let _ = writeln!(
            log,
            "debootstrap: Debian bookworm with {PEER_PACKAGES} from {mirror} (about two minutes, once)"
        );
        let _ = log.flush();
        run(Command::new("debootstrap")
            .args([
                "--variant=minbase",
                &format!("--include={PEER_PACKAGES}"),
                "bookworm",
            ])
            .arg(root.path())
            .arg(&mirror))?;
        // What the images never use: downloaded packages, the package lists, docs, the data
        // directories the packages' scripts made (the entrypoints make fresh ones), and
        // PostgreSQL's JIT (LLVM, 130 MB; the entrypoint runs with jit=off).
        let prune = [
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
            "var/lib/postgresql/15/main",
            "var/lib/mysql",
            "usr/lib/x86_64-linux-gnu/libLLVM-14.so.1",
            "usr/lib/x86_64-linux-gnu/libz3.so.4",
            "usr/lib/postgresql/15/lib/llvmjit.so",
            "usr/lib/postgresql/15/lib/bitcode",
        ];
        for path in prune {
            let full = root.path().join(path);
            let removed = if full.is_dir() {
                std::fs::remove_dir_all(&full)
            } else {
                std::fs::remove_file(&full)
            };
            if let Err(err) = removed
                && err.kind() != std::io::ErrorKind::NotFound
            {
                return Err(format!("cannot remove {}: {err}", full.display()));
            }
        }
        let _ = writeln!(log, "importing the root file system as {base}");
        let mut tar = Command::new("tar");
        tar.arg("-C")
            .arg(root.path())
            .args(["-c", "."])
            .stdout(Stdio::piped());
        let mut taring = tar.spawn().map_err(|err| format!("cannot run tar: {err}"))?;
        let mut import = self.command();
        import
            .args(["import", "-q", "-", base])
            .stdin(taring.stdout.take().expect("piped"));
        run_fed(&mut import)?;
        let status = taring.wait().map_err(|err| format!("tar: {err}"))?;
        if !status.success() {
            return Err(format!("tar of the peer root failed ({status})"));
        }
        Ok(())
    }

    /// Creates (or replaces) the podman secret `name` with `data`, in the form podman 4.3's
    /// `secretKeyRef` reads: a JSON object of key → base64 value. (A Secret played from YAML
    /// is stored as YAML, which its `secretKeyRef` then cannot read.)
    ///
    /// # Errors
    /// When podman fails.
    pub fn create_secret(&self, name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result {
        let object: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(value)),
                )
            })
            .collect();
        if self.succeeds(&["secret", "inspect", name]) {
            self.output(&["secret", "rm", name])?;
        }
        let mut command = self.command();
        command
            .args(["secret", "create", name, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot run podman: {err}"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(serde_json::Value::Object(object).to_string().as_bytes())
            .map_err(|err| format!("cannot write the secret to podman: {err}"))?;
        let output = child.wait_with_output().map_err(|err| format!("podman: {err}"))?;
        check(&command, &output).map(drop)
    }

    /// Starts playing `yaml` (one or more documents, one Pod named `pod_name`) on `network`
    /// and returns at once: `podman kube play` returns only when the pod's init containers
    /// have all run, and a pod waiting for a dependency must be watched meanwhile. The pod is
    /// removed when the returned handle is dropped.
    ///
    /// # Errors
    /// When the YAML cannot be written or podman cannot be started.
    pub fn play(&self, yaml: &str, network: &str, pod_name: &str) -> Result<Pod> {
        let mut file = tempfile::Builder::new()
            .prefix(&format!("{pod_name}-"))
            .suffix(".yaml")
            .tempfile()
            .map_err(|err| format!("cannot make a temp file: {err}"))?;
        file.write_all(yaml.as_bytes())
            .map_err(|err| format!("cannot write {}: {err}", file.path().display()))?;
        // Leftovers of an earlier, killed run would make the names clash, or hand the pod a
        // full "emptyDir".
        self.remove_pod(pod_name);
        self.remove_pod_volumes(pod_name);
        let mut command = self.command();
        command
            .args(["kube", "play", "--network", network])
            .arg(file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let player = command
            .spawn()
            .map_err(|err| format!("cannot run `{}`: {err}", describe(&command)))?;
        Ok(Pod {
            podman: self.clone(),
            name: pod_name.to_owned(),
            yaml: Some(file),
            player: std::sync::Mutex::new(Some(player)),
        })
    }

    /// Removes the emptyDir volumes of the pod `pod_name` (see [`Manifest::for_podman`]).
    pub fn remove_pod_volumes(&self, pod_name: &str) {
        let prefix = format!("{pod_name}--");
        let names = self.output(&["volume", "ls", "-q"]).unwrap_or_default();
        for name in names.lines().filter(|name| name.starts_with(&prefix)) {
            let _ = self.output(&["volume", "rm", "-f", name]);
        }
    }

    /// Removes the volumes podman made for `manifest`'s ConfigMaps (named after them), and for
    /// its Secrets played as ConfigMaps (see [`Manifest::for_podman`]), so a pod gets them as
    /// the file says now, not as an earlier run had them. One in use by a running pod stays.
    pub fn remove_configmap_volumes(&self, manifest: &Manifest) {
        for configmap in manifest.of_kind("ConfigMap").chain(manifest.of_kind("Secret")) {
            let _ = self.output(&["volume", "rm", &name_of(configmap)]);
        }
    }

    /// Removes the pod `name` and its containers, whatever their state.
    pub fn remove_pod(&self, name: &str) {
        let _ = self.output(&["pod", "rm", "-f", "-t", "0", name]);
    }

    /// A handle on the played pod `name`.
    pub fn pod(&self, name: &str) -> Pod {
        Pod {
            podman: self.clone(),
            name: name.to_owned(),
            yaml: None,
            player: std::sync::Mutex::new(None),
        }
    }
}

/// The peer images: name → Containerfile, on the base image `base`.
fn peer_images(base: &str) -> Vec<(String, String)> {
    vec![
        (
            "docker.io/library/postgres:15".into(),
            format!(
                "FROM {base}\n\
                 COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint\n\
                 ENV PGDATA=/var/lib/postgresql/data\n\
                 ENTRYPOINT [\"/bin/sh\", \"/usr/local/bin/postgres-entrypoint\"]\n\
                 # The official image's choice: SIGINT is PostgreSQL's fast shutdown.\n\
                 STOPSIGNAL SIGINT\n"
            ),
        ),
        (
            "docker.io/library/mariadb:10.11".into(),
            format!(
                "FROM {base}\n\
                 COPY mariadb-entrypoint.sh /usr/local/bin/mariadb-entrypoint\n\
                 ENTRYPOINT [\"/bin/sh\", \"/usr/local/bin/mariadb-entrypoint\"]\n"
            ),
        ),
        (
            "docker.io/library/nginx:1.22".into(),
            format!(
                "FROM {base}\n\
                 COPY nginx-default.conf /etc/nginx/sites-enabled/default\n\
                 # As in the official image: podman copies a mount point's contents and mode into\n\
                 # a fresh volume, and Debian's 0750 directory and 0640 www-data:adm log files\n\
                 # (made by the package) would lock a log sidecar out.\n\
                 RUN rm -f /var/log/nginx/*.log && chmod 0755 /var/log/nginx\n\
                 RUN mkdir -p /usr/share/nginx/html && echo '<h1>Welcome to nginx!</h1>' > /usr/share/nginx/html/index.html\n\
                 CMD [\"nginx\", \"-g\", \"daemon off;\"]\n\
                 # The official image's choice: SIGQUIT lets nginx finish its requests.\n\
                 STOPSIGNAL SIGQUIT\n"
            ),
        ),
        (
            "docker.io/library/redis:7.0".into(),
            format!(
                "FROM {base}\n\
                 # As the official image runs it: reachable from other pods (protected mode off:\n\
                 # Debian's build keeps it on, which refuses every non-loopback client without a\n\
                 # password), in the foreground, logging to stdout. No snapshots: a peer for\n\
                 # tests keeps nothing.\n\
                 CMD [\"redis-server\", \"--protected-mode\", \"no\", \"--save\", \"\", \"--appendonly\", \"no\"]\n"
            ),
        ),
    ]
}

/// tests/peers/ in the workspace.
fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

/// The Debian mirror this machine's apt uses (debootstrap must reach the same one).
fn debian_mirror() -> String {
    ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .find_map(|text| mirror_in(&text))
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// The first Debian archive (not the security one) in apt sources, deb822 (`URIs:`) or
/// one-line (`deb URI SUITE …`) form.
fn mirror_in(sources: &str) -> Option<String> {
    sources.lines().map(str::trim).find_map(|line| {
        let uri = line
            .strip_prefix("URIs:")
            .and_then(|uris| uris.split_whitespace().next())
            .or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|rest| rest.split_whitespace().find(|word| word.contains("://")))
            })?;
        (uri.contains("/debian") && !uri.contains("security")).then(|| uri.to_owned())
    })
}

/// FNV-1a: a stable fingerprint of a recipe (not a security hash).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn check(command: &Command, output: &Output) -> Result<String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}{}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            without_noise(&output.stderr)
        ))
    }
}

fn run(command: &mut Command) -> Result<String> {
    run_fed(command.stdin(Stdio::null()))
}

/// Like [`run`], for a command whose stdin the caller has set (a pipe from another process).
fn run_fed(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .map_err(|err| format!("cannot run `{}`: {err}", describe(command)))?;
    check(command, &output)
}

/// One example file, read for podman.
#[derive(Debug, Clone)]
pub struct Manifest {
    path: PathBuf,
    docs: Vec<Yaml>,
}

impl Manifest {
    /// Reads `path` (relative paths are under `examples/`).
    ///
    /// # Panics
    /// When the file cannot be read or is not YAML.
    pub fn load(path: impl AsRef<Path>) -> Self {
        let path = crate::examples::dir().join(path.as_ref());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        Self { path, docs }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Secrets the file defines: name → key → value (`stringData` and base64 `data`).
    ///
    /// # Panics
    /// When a Secret's `data` is not base64.
    pub fn secrets(&self) -> Vec<(String, BTreeMap<String, Vec<u8>>)> {
        self.of_kind("Secret")
            .map(|doc| {
                let mut data = BTreeMap::new();
                for (key, value) in doc["stringData"].as_hash().into_iter().flatten() {
                    data.insert(
                        key_text(key),
                        value.as_str().unwrap_or_default().as_bytes().to_vec(),
                    );
                }
                for (key, value) in doc["data"].as_hash().into_iter().flatten() {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap_or_default())
                        .unwrap_or_else(|err| {
                            panic!("{}: Secret data is not base64: {err}", self.path.display())
                        });
                    data.insert(key_text(key), decoded);
                }
                (name_of(doc), data)
            })
            .collect()
    }

    /// The ConfigMaps the file defines: name → key → value (`data`).
    pub fn configmaps(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.of_kind("ConfigMap")
            .map(|doc| {
                let data = doc["data"]
                    .as_hash()
                    .into_iter()
                    .flatten()
                    .map(|(key, value)| (key_text(key), value.as_str().unwrap_or_default().to_owned()))
                    .collect();
                (name_of(doc), data)
            })
            .collect()
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Yaml> + 'a {
        self.docs
            .iter()
            .filter(move |doc| doc["kind"].as_str() == Some(kind))
    }

    /// The workload `name` (a Pod, Deployment, StatefulSet or Job) as one Pod named `pod_name`
    /// that podman 4.3 plays like a kubelet would, with the file's ConfigMaps. The changes,
    /// each a podman 4.3 difference from a kubelet:
    /// - a Deployment or Job becomes its pod template: podman plays no Job, and plays one pod
    ///   of a Deployment whatever its replicas (a test that wants two replicas plays two);
    /// - `restartPolicy: Always` (a Deployment's, and the default) becomes `OnFailure` when
    ///   the pod has init containers: podman applies the pod's policy to init containers too
    ///   and would restart one that finished;
    /// - the annotation `io.podman.annotations.init.container.type: always` keeps init
    ///   containers after they ran (podman removes them by default), so their logs and exit
    ///   codes can be read, and re-runs them when the pod restarts, as a kubelet does;
    /// - a native sidecar (an init container with `restartPolicy: Always`) moves to the
    ///   containers: podman 4.3 would wait for it to exit before starting the next one;
    /// - emptyDir volumes are renamed `POD--NAME`: podman 4.3 makes an emptyDir a named volume
    ///   called after the pod spec's volume, so two pods of one template would share it (and
    ///   a later run would find it full); [`Podman::play`] removes the pod's ones before and
    ///   after;
    /// - `ports` are dropped: podman 4.3 publishes every `containerPort` on the host, so two
    ///   replicas clash (in Kubernetes it only documents the port; pods reach each other by
    ///   name on the network either way);
    /// - `$(VAR)` in `command` and `args` is expanded here, as the kubelet does (podman 4.3
    ///   passes it on as written), from the container's env: plain values, the pod's name for
    ///   `fieldRef: metadata.name`, and `secretKeyRef`s looked up in `secrets` (the Secrets
    ///   of this file and of the dependencies' files, which the caller also gives to podman);
    /// - a `secret` volume becomes a `configMap` volume of a ConfigMap with the Secret's name
    ///   and content (from `secrets`), emitted with the pod: podman 4.3.1 panics on a secret
    ///   volume (a nil pointer in `VolumeFromSecret`, tried with the Secret stored as JSON and
    ///   as YAML), and mounts a ConfigMap's keys as files the same way.
    ///
    /// # Panics
    /// When the file has no such workload.
    pub fn for_podman(
        &self,
        name: &str,
        pod_name: &str,
        secrets: &[(String, BTreeMap<String, Vec<u8>>)],
    ) -> String {
        let doc = self
            .docs
            .iter()
            .find(|doc| {
                doc["metadata"]["name"].as_str() == Some(name)
                    && matches!(
                        doc["kind"].as_str(),
                        Some("Pod" | "Deployment" | "StatefulSet" | "Job")
                    )
            })
            .unwrap_or_else(|| panic!("{}: no workload named {name}", self.path.display()));
        let (template_meta, spec) = if doc["kind"].as_str() == Some("Pod") {
            (&doc["metadata"], &doc["spec"])
        } else {
            (
                &doc["spec"]["template"]["metadata"],
                &doc["spec"]["template"]["spec"],
            )
        };
        let mut spec = spec.as_hash().cloned().unwrap_or_default();
        let key = |text: &str| Yaml::String(text.to_owned());

        let mut init = spec
            .get(&key("initContainers"))
            .and_then(Yaml::as_vec)
            .cloned()
            .unwrap_or_default();
        let mut containers = spec
            .get(&key("containers"))
            .and_then(Yaml::as_vec)
            .cloned()
            .unwrap_or_default();
        for container in init.iter_mut().chain(containers.iter_mut()) {
            expand_references(container, pod_name, secrets);
            if let Yaml::Hash(hash) = container {
                hash.remove(&key("ports"));
            }
        }
        let (native, plain): (Vec<Yaml>, Vec<Yaml>) = init
            .drain(..)
            .partition(|container| container["restartPolicy"].as_str() == Some("Always"));
        for mut sidecar in native.into_iter().rev() {
            if let Yaml::Hash(hash) = &mut sidecar {
                hash.remove(&key("restartPolicy"));
            }
            containers.insert(0, sidecar);
        }
        let has_init = !plain.is_empty();
        if has_init {
            spec.insert(key("initContainers"), Yaml::Array(plain));
        } else {
            spec.remove(&key("initContainers"));
        }
        spec.insert(key("containers"), Yaml::Array(containers));
        rename_empty_dirs(&mut spec, pod_name);
        let secret_configmaps = secrets_as_configmaps(&mut spec, secrets, &self.path);
        let policy = spec
            .get(&key("restartPolicy"))
            .and_then(Yaml::as_str)
            .unwrap_or("Always")
            .to_owned();
        if has_init && policy == "Always" {
            spec.insert(key("restartPolicy"), key("OnFailure"));
        }

        let mut metadata = Hash::new();
        metadata.insert(key("name"), key(pod_name));
        if let Some(labels) = template_meta["labels"].as_hash() {
            metadata.insert(key("labels"), Yaml::Hash(labels.clone()));
        }
        let mut annotations = template_meta["annotations"]
            .as_hash()
            .cloned()
            .unwrap_or_default();
        annotations.insert(key("io.podman.annotations.init.container.type"), key("always"));
        metadata.insert(key("annotations"), Yaml::Hash(annotations));

        let mut pod = Hash::new();
        pod.insert(key("apiVersion"), key("v1"));
        pod.insert(key("kind"), key("Pod"));
        pod.insert(key("metadata"), Yaml::Hash(metadata));
        pod.insert(key("spec"), Yaml::Hash(spec));

        let mut out = String::new();
        for configmap in self.of_kind("ConfigMap").chain(&secret_configmaps) {
            emit(&mut out, configmap);
        }
        emit(&mut out, &Yaml::Hash(pod));
        out
    }
}

/// Turns the pod's `secret` volumes into `configMap` volumes (see [`Manifest::for_podman`]);
/// returns the ConfigMaps that stand in for the Secrets.
fn secrets_as_configmaps(
    spec: &mut Hash,
    secrets: &[(String, BTreeMap<String, Vec<u8>>)],
    path: &Path,
) -> Vec<Yaml> {
    let key = |text: &str| Yaml::String(text.to_owned());
    let mut configmaps = Vec::new();
    let Some(Yaml::Array(volumes)) = spec.get_mut(&key("volumes")) else {
        return configmaps;
    };
    for volume in volumes {
        let Yaml::Hash(volume) = volume else { continue };
        let Some(Yaml::Hash(source)) = volume.remove(&key("secret")) else {
            continue;
        };
        let name = source
            .get(&key("secretName"))
            .and_then(Yaml::as_str)
            .unwrap_or_else(|| panic!("{}: a secret volume without secretName", path.display()))
            .to_owned();
        let data = secrets
            .iter()
            .find_map(|(known, data)| (*known == name).then_some(data))
            .unwrap_or_else(|| {
                panic!(
                    "{}: the Secret {name} a volume mounts is not among the Secrets given to podman",
                    path.display()
                )
            });
        // The same keys: items, defaultMode and optional mean the same for both kinds.
        let mut configmap_source = Hash::new();
        configmap_source.insert(key("name"), key(&name));
        for (field, value) in source {
            if field.as_str() != Some("secretName") {
                configmap_source.insert(field, value);
            }
        }
        volume.insert(key("configMap"), Yaml::Hash(configmap_source));
        if configmaps.iter().any(|known: &Yaml| name_of(known) == name) {
            continue;
        }
        let mut metadata = Hash::new();
        metadata.insert(key("name"), key(&name));
        let mut values = Hash::new();
        for (data_key, value) in data {
            values.insert(key(data_key), key(&String::from_utf8_lossy(value)));
        }
        let mut configmap = Hash::new();
        configmap.insert(key("apiVersion"), key("v1"));
        configmap.insert(key("kind"), key("ConfigMap"));
        configmap.insert(key("metadata"), Yaml::Hash(metadata));
        configmap.insert(key("data"), Yaml::Hash(values));
        configmaps.push(Yaml::Hash(configmap));
    }
    configmaps
}

/// Renames the pod's emptyDir volumes, and the mounts of them, to `POD--NAME`.
fn rename_empty_dirs(spec: &mut Hash, pod_name: &str) {
    let key = |text: &str| Yaml::String(text.to_owned());
    let mut renamed = Vec::new();
    if let Some(Yaml::Array(volumes)) = spec.get_mut(&key("volumes")) {
        for volume in volumes {
            if volume["emptyDir"].is_badvalue() {
                continue;
            }
            if let Yaml::Hash(hash) = volume
                && let Some(Yaml::String(name)) = hash.get_mut(&key("name"))
            {
                let new = format!("{pod_name}--{name}");
                renamed.push((name.clone(), new.clone()));
                *name = new;
            }
        }
    }
    for section in ["initContainers", "containers"] {
        let Some(Yaml::Array(containers)) = spec.get_mut(&key(section)) else {
            continue;
        };
        for container in containers {
            let Yaml::Hash(container) = container else {
                continue;
            };
            let Some(Yaml::Array(mounts)) = container.get_mut(&key("volumeMounts")) else {
                continue;
            };
            for mount in mounts {
                let Yaml::Hash(mount) = mount else { continue };
                if let Some(Yaml::String(name)) = mount.get_mut(&key("name"))
                    && let Some((_, new)) = renamed.iter().find(|(old, _)| old == name)
                {
                    name.clone_from(new);
                }
            }
        }
    }
}

/// Expands `$(VAR)` in the container's `command` and `args` the way the kubelet does.
fn expand_references(container: &mut Yaml, pod_name: &str, secrets: &[(String, BTreeMap<String, Vec<u8>>)]) {
    let mut env = std::collections::HashMap::new();
    for var in container["env"].as_vec().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = if let Some(value) = var["value"].as_str() {
            Some(crate::examples::expand(value, &env))
        } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            (field == "metadata.name").then(|| pod_name.to_owned())
        } else {
            let reference = &var["valueFrom"]["secretKeyRef"];
            reference["name"]
                .as_str()
                .zip(reference["key"].as_str())
                .and_then(|(secret, key)| {
                    secrets
                        .iter()
                        .find(|(name, _)| name == secret)
                        .and_then(|(_, data)| data.get(key))
                        .map(|value| String::from_utf8_lossy(value).into_owned())
                })
        };
        if let Some(value) = value {
            env.insert(name.to_owned(), value);
        }
    }
    let Yaml::Hash(hash) = container else { return };
    for field in ["command", "args"] {
        if let Some(Yaml::Array(items)) = hash.get_mut(&Yaml::String(field.into())) {
            for item in items {
                if let Yaml::String(text) = item {
                    *text = crate::examples::expand(text, &env);
                }
            }
        }
    }
}

fn emit(out: &mut String, doc: &Yaml) {
    let mut text = String::new();
    YamlEmitter::new(&mut text).dump(doc).expect("YAML from YAML");
    out.push_str(&text);
    out.push('\n');
}

fn key_text(key: &Yaml) -> String {
    key.as_str().map(str::to_owned).unwrap_or_default()
}

fn name_of(doc: &Yaml) -> String {
    doc["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

/// What `podman inspect` says of one container.
#[derive(Debug, Clone)]
pub struct ContainerState {
    /// `created`, `running`, `exited`, …
    pub status: String,
    /// The exit code once exited.
    pub exit_code: i64,
    /// When it started (none before it did).
    pub started_at: Option<SystemTime>,
    /// When it exited (none while it runs).
    pub finished_at: Option<SystemTime>,
}

/// A played pod; removed with its containers when dropped.
#[derive(Debug)]
pub struct Pod {
    podman: Podman,
    name: String,
    /// The YAML it was played from, for `podman kube down`.
    yaml: Option<tempfile::NamedTempFile>,
    /// `podman kube play` while it runs (it returns once the init containers have run).
    player: std::sync::Mutex<Option<std::process::Child>>,
}

impl Pod {
    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn yaml_path(&self) -> String {
        self.yaml
            .as_ref()
            .map(|file| file.path().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `podman kube down` of the YAML it was played from, as `kubectl delete` would: every
    /// container gets SIGTERM (its image's stop signal), then SIGKILL after the grace period.
    /// Returns how long it took.
    ///
    /// # Errors
    /// When podman fails, or the pod was not played by [`Podman::play`].
    pub fn down(&self) -> Result<Duration> {
        if self.yaml.is_none() {
            return Err(format!("{} was not played from YAML here", self.name));
        }
        let start = Instant::now();
        self.podman.output(&["kube", "down", &self.yaml_path()])?;
        Ok(start.elapsed())
    }

    /// Stops the pod as `podman kube down` does before removing it (and a kubelet on
    /// deletion): SIGTERM (each image's stop signal) to every container, SIGKILL after the
    /// grace period (10 s). The containers stay, so their exit codes can be read. Returns how
    /// long it took.
    ///
    /// # Errors
    /// When podman fails.
    pub fn stop(&self) -> Result<Duration> {
        let start = Instant::now();
        self.podman.output(&["pod", "stop", &self.name])?;
        Ok(start.elapsed())
    }

    /// Stops and starts the pod, as a kubelet restarts one: the init containers run again
    /// (their type is `always`, see [`Manifest::for_podman`]) on the same emptyDirs.
    ///
    /// # Errors
    /// When podman fails.
    pub fn restart(&self) -> Result {
        self.podman.output(&["pod", "stop", &self.name])?;
        self.podman.output(&["pod", "start", &self.name]).map(drop)
    }

    /// The pod's address on its network (the test's own podman network), as Prometheus
    /// would scrape it: the host reaches it through the network's bridge.
    ///
    /// # Errors
    /// When podman fails or the pod has no address yet.
    pub fn ip(&self) -> Result<String> {
        let infra =
            self.podman
                .output(&["pod", "inspect", &self.name, "--format", "{{.InfraContainerID}}"])?;
        let address = self.podman.output(&[
            "inspect",
            infra.trim(),
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        ])?;
        address
            .split_whitespace()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| format!("pod {} has no address yet", self.name))
    }

    /// The podman name of the pod's container `container` (`POD-CONTAINER`).
    pub fn container(&self, container: &str) -> String {
        format!("{}-{container}", self.name)
    }

    /// The container's state, or `None` while podman has not created it.
    pub fn state(&self, container: &str) -> Option<ContainerState> {
        let json = self
            .podman
            .output(&["inspect", "--type", "container", &self.container(container)])
            .ok()?;
        let value: serde_json::Value = serde_json::from_str(&json).ok()?;
        let state = &value[0]["State"];
        Some(ContainerState {
            status: state["Status"].as_str().unwrap_or_default().to_owned(),
            exit_code: state["ExitCode"].as_i64().unwrap_or(-1),
            started_at: state["StartedAt"].as_str().and_then(parse_time),
            finished_at: state["FinishedAt"].as_str().and_then(parse_time),
        })
    }

    /// The container's log (stdout and stderr), or what podman said when it could not read it.
    pub fn logs(&self, container: &str) -> String {
        let output = self
            .podman
            .command()
            .args(["logs", &self.container(container)])
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) => format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                without_noise(&output.stderr)
            ),
            Err(err) => format!("(cannot run podman logs: {err})"),
        }
    }

    /// When the container first logged a line containing `text` (podman's own timestamp).
    pub fn logged_at(&self, container: &str, text: &str) -> Option<SystemTime> {
        let output = self
            .podman
            .command()
            .args(["logs", "-t", &self.container(container)])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        all.lines()
            .find(|line| line.contains(text))
            .and_then(|line| line.split_whitespace().next())
            .and_then(parse_time)
    }

    /// Whether `podman kube play` has failed so far (a refused manifest, a failed init
    /// container): `Err` with what it said. `Ok` while it runs and once it succeeded.
    ///
    /// # Errors
    /// What podman said when it failed.
    pub fn play_result(&self) -> Result {
        let mut player = self
            .player
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(child) = player.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(_)) => {
                let child = player.take().expect("checked");
                let output = child
                    .wait_with_output()
                    .map_err(|err| format!("podman kube play: {err}"))?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "`podman kube play` failed ({}): {}",
                        output.status,
                        without_noise(&output.stderr)
                    ))
                }
            }
            Err(err) => Err(format!("podman kube play: {err}")),
        }
    }

    /// An HTTP GET of `path` on 127.0.0.1:`port` from inside `container` (the peer images
    /// have perl, no curl): the response's status line, headers and body.
    ///
    /// # Errors
    /// When the connection or the exec fails.
    pub fn http_get(&self, container: &str, port: u16, path: &str) -> Result<String> {
        let script = format!(
            "use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:{port}', Timeout => 5) \
             or die \"connect: $!\"; print $s \"GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\"; \
             local $/; my $r = <$s>; print $r;"
        );
        self.exec(container, &["perl", "-e", &script])
    }

    /// `psql -tAc SQL` in `container` (a PostgreSQL peer) as `user` on `database`: the
    /// trimmed output (`|`-separated columns).
    ///
    /// # Errors
    /// When psql fails.
    pub fn psql(&self, container: &str, user: &str, database: &str, sql: &str) -> Result<String> {
        self.exec(container, &["psql", "-U", user, "-d", database, "-tAc", sql])
            .map(|out| out.trim().to_owned())
    }

    /// Runs `command` in the container.
    ///
    /// # Errors
    /// When it fails; the message holds its output.
    pub fn exec(&self, container: &str, command: &[&str]) -> Result<String> {
        let name = self.container(container);
        let mut args = vec!["exec", name.as_str()];
        args.extend_from_slice(command);
        self.podman.output(&args)
    }

    /// Waits until `condition` holds, polling every 100 ms; panics after `deadline` with
    /// `what` and every container's log.
    pub fn wait_for(&self, what: &str, deadline: Duration, mut condition: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !condition(self) {
            if let Err(err) = self.play_result() {
                panic!("{}: {err}\n{}", self.name, self.describe());
            }
            assert!(
                start.elapsed() < deadline,
                "{}: still not {what} after {deadline:?}\n{}",
                self.name,
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `container` has exited; returns its state.
    pub fn wait_exited(&self, container: &str, deadline: Duration) -> ContainerState {
        self.wait_for(&format!("{container} exited"), deadline, |pod| {
            pod.state(container).is_some_and(|state| state.status == "exited")
        });
        self.state(container).expect("it exited")
    }

    /// Every container's state and log, for a failure message.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let names = self
            .podman
            .output(&[
                "ps",
                "-a",
                "--filter",
                &format!("pod={}", self.name),
                "--format",
                "{{.Names}}",
            ])
            .unwrap_or_default();
        let prefix = format!("{}-", self.name);
        for name in names.lines().filter_map(|name| name.strip_prefix(&prefix)) {
            let state = self.state(name);
            let _ = writeln!(
                text,
                "--- container {name}: {}\n{}",
                state.map_or_else(
                    || "(unknown)".into(),
                    |s| format!("{} (exit {})", s.status, s.exit_code)
                ),
                self.logs(name)
            );
        }
        text
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(mut player) = self.player.lock().ok().and_then(|mut player| player.take()) {
            let _ = player.kill();
            let _ = player.wait();
        }
        self.podman.remove_pod(&self.name);
        self.podman.remove_pod_volumes(&self.name);
    }
}

/// Parses podman's RFC 3339 timestamps (`2026-12-03T12:16:43.323868496Z`, or with `+00:00`)
/// and Go's `2026-12-03 12:16:43.323868496 +0000 UTC`. UTC only: the tests' machines are.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if text.starts_with("0001-01-01") {
        return None;
    }
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix(['T', ' '])?;
    let mut parts = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let zone = rest[time_end..].trim();
    if !(zone.is_empty() || zone.starts_with('Z') || zone.starts_with("+00") || zone.starts_with("+0000")) {
        return None;
    }
    let (clock, fraction) = rest[..time_end]
        .split_once('.')
        .unwrap_or((&rest[..time_end], ""));
    let mut clock = clock.split(':').map(str::parse::<i64>);
    let (hour, minute, second) = (clock.next()?.ok()?, clock.next()?.ok()?, clock.next()?.ok()?);
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}")[..9].parse().ok()?
    };
    let seconds = pitcrew_core::calendar::days_from_civil(year, month, day) * 86_400
        + hour * 3600
        + minute * 60
        + second;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_timestamps_parse_in_both_forms() {
        let rfc = parse_time("2026-12-03T12:16:43.323868496Z").unwrap();
        let go = parse_time("2026-12-03 12:16:43.323868496 +0000 UTC").unwrap();
        assert_eq!(rfc, go);
        assert_eq!(
            rfc.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_796_300_203, 323_868_496)
        );
        assert_eq!(
            parse_time("1970-01-01T00:00:01.5+00:00").unwrap(),
            UNIX_EPOCH + Duration::from_millis(1500)
        );
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None, "podman's 'never'");
        assert_eq!(parse_time("2026-12-03T12:16:43+02:00"), None, "only UTC is read");
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn a_deployment_becomes_a_pod_podman_plays_like_a_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: b}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: \"x&y\"}\ndata: {u: dXNlcg==}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  \
             selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      \
             initContainers:\n        - {name: log, image: t, restartPolicy: Always}\n        - {name: wait, image: w}\n      \
             volumes: [{name: scratch, emptyDir: {}}, {name: cfg, configMap: {name: cm}}]\n      \
             containers:\n        - {name: app, image: a, volumeMounts: [{name: scratch, mountPath: /s}], args: [\"$(PW)@$(ME) $$(PW) $(NOPE)\"], \
             env: [{name: PW, valueFrom: {secretKeyRef: {name: s, key: pw}}}, {name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}\n",
        )
        .unwrap();
        let manifest = Manifest::load(&file);
        assert_eq!(
            manifest.configmaps(),
            [(
                "cm".to_owned(),
                BTreeMap::from([("a".to_owned(), "b".to_owned())])
            )]
        );
        let secrets = manifest.secrets();
        assert_eq!(secrets[0].0, "s");
        assert_eq!(secrets[0].1["pw"], b"x&y");
        assert_eq!(secrets[0].1["u"], b"user");

        let yaml = manifest.for_podman("web", "web-1", &secrets);
        let docs = YamlLoader::load_from_str(&yaml).unwrap();
        assert_eq!(docs.len(), 2, "{yaml}");
        assert_eq!(docs[0]["kind"].as_str(), Some("ConfigMap"));
        let pod = &docs[1];
        assert_eq!(pod["kind"].as_str(), Some("Pod"));
        assert_eq!(pod["metadata"]["name"].as_str(), Some("web-1"));
        assert_eq!(pod["metadata"]["labels"]["app"].as_str(), Some("web"));
        assert_eq!(
            pod["metadata"]["annotations"]["io.podman.annotations.init.container.type"].as_str(),
            Some("always")
        );
        assert_eq!(pod["spec"]["restartPolicy"].as_str(), Some("OnFailure"));
        let init: Vec<_> = pod["spec"]["initContainers"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(init, ["wait"]);
        let containers: Vec<_> = pod["spec"]["containers"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(containers, ["log", "app"]);
        assert!(pod["spec"]["containers"][0]["restartPolicy"].is_badvalue());
        assert_eq!(pod["spec"]["volumes"][0]["name"].as_str(), Some("web-1--scratch"));
        assert_eq!(
            pod["spec"]["volumes"][1]["name"].as_str(),
            Some("cfg"),
            "only emptyDirs"
        );
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"][0]["name"].as_str(),
            Some("web-1--scratch")
        );
        assert_eq!(
            pod["spec"]["containers"][1]["args"][0].as_str(),
            Some("x&y@web-1 $(PW) $(NOPE)"),
            "expanded like the kubelet: podman 4.3 would not"
        );
    }

    #[test]
    fn a_secret_volume_is_played_as_a_configmap_of_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Secret\nmetadata: {name: jwt}\nstringData: {secret: \"s3cr3t&x\"}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: app, image: a, \
             volumeMounts: [{name: keys, mountPath: /keys}]}\n  volumes:\n    - {name: keys, secret: {secretName: jwt, defaultMode: 288}}\n",
        )
        .unwrap();
        let manifest = Manifest::load(&file);
        let secrets = manifest.secrets();
        let yaml = manifest.for_podman("p", "p", &secrets);
        let docs = YamlLoader::load_from_str(&yaml).unwrap();
        assert_eq!(docs.len(), 2, "{yaml}");
        assert_eq!(docs[0]["kind"].as_str(), Some("ConfigMap"), "{yaml}");
        assert_eq!(docs[0]["metadata"]["name"].as_str(), Some("jwt"));
        assert_eq!(docs[0]["data"]["secret"].as_str(), Some("s3cr3t&x"));
        let volume = &docs[1]["spec"]["volumes"][0];
        assert!(volume["secret"].is_badvalue(), "{yaml}");
        assert_eq!(volume["configMap"]["name"].as_str(), Some("jwt"));
        assert_eq!(
            volume["configMap"]["defaultMode"].as_i64(),
            Some(288),
            "0440, carried over"
        );
    }

    #[test]
    fn a_pod_without_init_containers_keeps_its_restart_policy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: app, image: a}\n",
        )
        .unwrap();
        let yaml = Manifest::load(&file).for_podman("p", "p", &[]);
        let docs = YamlLoader::load_from_str(&yaml).unwrap();
        assert!(docs[0]["spec"]["restartPolicy"].is_badvalue(), "{yaml}");
        assert!(docs[0]["spec"]["initContainers"].is_badvalue(), "{yaml}");
    }

    #[test]
    fn the_mirror_is_read_from_both_apt_source_forms_skipping_security() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n";
        assert_eq!(mirror_in(deb822).as_deref(), Some("http://mirror.example/debian"));
        let one_line = "# comment\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n";
        assert_eq!(mirror_in(one_line).as_deref(), Some("http://ftp.example/debian"));
        assert_eq!(mirror_in("deb http://ppa.example/ubuntu jammy main\n"), None);
    }
}
