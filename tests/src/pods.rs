//! Support for the pod tests (`tests/pods.rs`): the example manifests played with
//! `podman kube play` on a network of the test's own, one scenario at a time.
//!
//! The manifests are played as users would write them, through
//! [`Manifest::for_podman`](pitcrew_testkit::podman::Manifest::for_podman), which says each
//! change podman 4.3 needs; the images are the ones `cargo xtask images --pods` (and
//! `cargo xtask test`) put in podman's store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use pitcrew_testkit::configmap::ConfigMapVolume;
use pitcrew_testkit::podman::{Manifest, Pod, Podman};

/// The scenarios' pods carry the names their manifests give (`postgres`, `webapp`): two
/// scenarios at once would clash, so they run one after another.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The images every scenario needs, as the manifests name them.
const IMAGES: &[&str] = &[
    "pitcrew/wait:0.1.0",
    "pitcrew/tail:0.1.0",
    "pitcrew/reload:0.1.0",
    "pitcrew/metrics:0.1.0",
    "pitcrew/proxy:0.1.0",
    "docker.io/library/postgres:15",
    "docker.io/library/mariadb:10.11",
    "docker.io/library/nginx:1.22",
    "docker.io/library/redis:7.0",
    "docker.io/library/busybox:1.35",
];

/// One scenario: its own podman network, the Secrets it created, the pods it played.
pub struct Scenario {
    /// The engine.
    pub podman: Podman,
    /// The network its pods share (they find each other by pod name).
    pub network: String,
    secrets: Vec<(String, BTreeMap<String, Vec<u8>>)>,
    _turn: MutexGuard<'static, ()>,
}

impl Scenario {
    /// Sets up the scenario `name`, or returns `None` (after printing SKIPPED) when podman or
    /// the images are missing and skipping is allowed (see [`crate::must_run`]).
    pub fn start(name: &str) -> Option<Self> {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let podman = match Podman::setup() {
            Ok(podman) => podman,
            Err(err) => {
                assert!(!crate::must_run(), "{err}");
                crate::skipped(&err);
                return None;
            }
        };
        if let Some(missing) = IMAGES.iter().find(|image| !podman.image_exists(image)) {
            let problem = format!(
                "podman has no image {missing}; make the pod images with `cargo xtask images --pods`"
            );
            assert!(!crate::must_run(), "{problem}");
            crate::skipped(&problem);
            return None;
        }
        let network = format!("pitcrew-e2e-{name}");
        podman.ensure_network(&network).expect("a podman network");
        Some(Self {
            podman,
            network,
            secrets: Vec::new(),
            _turn: turn,
        })
    }

    /// Reads an example file (a path under examples/) and gives podman its Secrets, as
    /// `kubectl apply` of the file would create them.
    pub fn manifest(&mut self, path: &str) -> Manifest {
        let manifest = Manifest::load(path);
        self.podman.remove_configmap_volumes(&manifest);
        for (name, data) in manifest.secrets() {
            self.podman.create_secret(&name, &data).expect("a podman secret");
            self.secrets.retain(|(known, _)| *known != name);
            self.secrets.push((name, data));
        }
        manifest
    }

    /// Makes podman's volume for the ConfigMap `name` of `manifest` before the pod is played,
    /// laid out as the kubelet lays out a ConfigMap volume, and returns it so the test can
    /// update it the kubelet's way (a new timestamped directory, `..data` swapped to it).
    ///
    /// podman 4.3 makes a ConfigMap volume a named volume called after the ConfigMap, holding
    /// plain files (no `..data` symlink), and never updates it. When the volume exists already,
    /// `podman kube play` reuses it and writes each key with Go's `os.Create`, which follows the
    /// key's symlink into the payload directory: the kubelet's layout stays, with the same
    /// content. The volume goes with [`Scenario::manifest`] of the file in a later run, or with
    /// [`Scenario::remove_volume`].
    pub fn kubelet_configmap(&self, manifest: &Manifest, name: &str) -> ConfigMapVolume {
        let data = manifest
            .configmaps()
            .into_iter()
            .find_map(|(found, data)| (found == name).then_some(data))
            .unwrap_or_else(|| panic!("{}: no ConfigMap {name}", manifest.path().display()));
        self.podman
            .output(&["volume", "create", name])
            .unwrap_or_else(|err| panic!("podman volume create {name}: {err}"));
        let mount_point = self
            .podman
            .output(&["volume", "inspect", "--format", "{{.Mountpoint}}", name])
            .unwrap_or_else(|err| panic!("podman volume inspect {name}: {err}"));
        let files: BTreeMap<String, Vec<u8>> = data
            .into_iter()
            .map(|(key, value)| (key, value.into_bytes()))
            .collect();
        ConfigMapVolume::create(Path::new(mount_point.trim()), &files)
    }

    /// Removes the podman volume `name` (once no pod uses it).
    pub fn remove_volume(&self, name: &str) {
        let _ = self.podman.output(&["volume", "rm", "-f", name]);
    }

    /// A Secret's value, as a pod would see it.
    pub fn secret(&self, name: &str, key: &str) -> String {
        let (_, data) = self
            .secrets
            .iter()
            .find(|(known, _)| known == name)
            .unwrap_or_else(|| panic!("no Secret {name} read yet"));
        String::from_utf8_lossy(&data[key]).into_owned()
    }

    /// Plays the workload `workload` of `manifest` as the pod `pod_name`.
    pub fn play(&self, manifest: &Manifest, workload: &str, pod_name: &str) -> Pod {
        let yaml = manifest.for_podman(workload, pod_name, &self.secrets);
        self.podman
            .play(&yaml, &self.network, pod_name)
            .unwrap_or_else(|err| panic!("{}: {err}", manifest.path().display()))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // The pods are removed by their own handles first (declared later, dropped earlier).
        let _ = self.podman.output(&["network", "rm", "-f", &self.network]);
    }
}

/// `later - earlier` in seconds, negative when `later` is before `earlier`.
#[allow(clippy::cast_precision_loss)] // durations of seconds
pub fn seconds_between(earlier: SystemTime, later: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// An HTTP GET from inside `container` of `pod`; panics when it fails.
pub fn http_get(pod: &Pod, container: &str, port: u16, path: &str) -> String {
    pod.http_get(container, port, path)
        .unwrap_or_else(|err| panic!("GET {path} in {}: {err}", pod.container(container)))
}

/// A deadline for anything a pod does: generous, for a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// An answer to [`request`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The header lines, as received.
    pub head: String,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Answer {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (found, value) = line.split_once(':')?;
            found.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `GET path` with `headers` to `ip:port` from this host, as a Service reaches a pod: the
/// pod's address on the test's network. HTTP/1.0, so the answer ends with the connection and
/// comes unchunked.
///
/// # Errors
/// When the connection fails or times out, or the answer is no HTTP answer.
pub fn request(ip: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    let timeout = Duration::from_secs(30);
    let address = std::net::SocketAddr::new(
        ip.parse()
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{ip:?}: {err}")))?,
        port,
    );
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut head = format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "GET {path} at {address}: no HTTP answer in {:?}",
                    text.chars().take(200).collect::<String>()
                ),
            )
        })?;
    Ok(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
