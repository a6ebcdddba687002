//! End-to-end tests of the `pitcrew/reload:dev` image beside a real nginx container, run with
//! docker the way a pod with `shareProcessNamespace: true` runs them: the sidecar joins
//! nginx's PID namespace (`--pid container:NGINX`) and network namespace
//! (`--network container:NGINX`), both see the same ConfigMap volume (a host directory laid
//! out and swapped as the kubelet does, bind-mounted read-only at /etc/nginx/conf.d), the
//! sidecar's root filesystem is read-only, and it finds nginx with `--process-name nginx` and
//! reloads it with SIGHUP. What nginx serves is fetched from the test, so "reloaded" means
//! the new config is answering, not that a signal was sent.
//!
//! The nginx is the pod tests' peer image `nginx:1.22` (Debian's nginx-light; see
//! `pitcrew_e2e::ready_peer_image`), on the host's network so the test reaches it on
//! loopback; its default site (port 80) is hidden by an empty tmpfs, so only the volume's
//! server, on a free port, listens.
//!
//! Who may signal whom, as the kernel decides it (kill(2)): a process may signal another of
//! the same real or effective uid, or any process with CAP_KILL. nginx's master runs as root
//! in the official image and in this one, and the sidecar runs as 65532, so:
//! - sidecar 65532, nginx root: EPERM. The sidecar says so and names the fix (tested);
//! - sidecar 65532 with `--cap-add KILL`: still EPERM: added capabilities are not effective
//!   for a non-root user (no ambient capabilities in docker's or Kubernetes' runtimes), so
//!   that is no fix for a non-root sidecar (tested, to pin the fact the advice must respect);
//! - sidecar root (`runAsUser: 0`; CAP_KILL is in the default set): works (tested);
//! - what a pod should do: run the app as non-root too, with one pod-level
//!   `securityContext.runAsUser: 65532` for both containers: the sidecar needs no privilege
//!   at all (tested with nginx as 65532; its pid file, logs and temp dirs then need writable
//!   places, emptyDirs in a pod, as nginx's own unprivileged image has them).

// The values compared are small integers sent as decimal text: exact in an f64.
#![allow(clippy::float_cmp)]

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use pitcrew_e2e::{Container, NGINX_PEER_IMAGE, RELOAD_IMAGE, ready, ready_peer_image};
use pitcrew_testkit::configmap::ConfigMapVolume;
use pitcrew_testkit::{free_port, http_client};

/// Generous: a busy 2-core machine can take seconds to start a container, and nginx's old
/// workers finish their requests before new ones take over.
const DEADLINE: Duration = Duration::from_secs(90);

/// Where both containers see the volume, and what the sidecar watches.
const CONF_DIR: &str = "/etc/nginx/conf.d";

/// nginx in its container, with its config volume on the host.
struct NginxPod {
    // Declared first: the containers go before the volume's directory.
    nginx: Container,
    volume: ConfigMapVolume,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NginxPod {
    /// Starts nginx serving generation `alpha`; `as_user` runs it as that uid:gid (then the
    /// paths it writes are volumes that user can write).
    fn start(as_user: Option<&str>) -> NginxPod {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let volume = ConfigMapVolume::with_texts(
            &dir.path().join("conf.d"),
            &[("app.conf", &app_conf(port, "alpha"))],
        );
        let mount = format!("{}:{CONF_DIR}:ro", volume.root().display());
        let mut args: Vec<String> = [
            "--network",
            "host",
            // The image's default site listens on port 80: not ours to take on the host.
            "--tmpfs",
            "/etc/nginx/sites-enabled",
            "-v",
            &mount,
        ]
        .map(str::to_owned)
        .into();
        if let Some(user) = as_user {
            args.extend(["--user".to_owned(), user.to_owned()]);
            // Debian's nginx.conf keeps its pid file in /run, logs in /var/log/nginx and temp
            // files in /var/lib/nginx: root's places. They become world-writable volumes, as
            // emptyDirs would be in a pod (docker here ignores a tmpfs's mode, so not tmpfs).
            for (name, target) in [
                ("run", "/run"),
                ("log", "/var/log/nginx"),
                ("lib", "/var/lib/nginx"),
            ] {
                let writable = dir.path().join(name);
                std::fs::create_dir(&writable).unwrap();
                std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
                args.extend(["-v".to_owned(), format!("{}:{target}", writable.display())]);
            }
        }
        args.push(NGINX_PEER_IMAGE.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let nginx = Container::start("reload-nginx", &args);
        let pod = NginxPod {
            nginx,
            volume,
            port,
            _dir: dir,
        };
        pod.wait_served("alpha");
        pod
    }

    /// The kubelet's update of the volume to generation `name`.
    fn swap(&mut self, name: &str) {
        self.volume
            .update_texts(&[("app.conf", &app_conf(self.port, name))]);
    }

    /// What nginx answers on `/` now (`None` while it does not answer).
    fn served(&self) -> Option<String> {
        http_client::get(&format!("http://127.0.0.1:{}/", self.port))
            .ok()
            .map(|answer| answer.body)
    }

    fn wait_served(&self, name: &str) {
        let expected = served_text(name);
        let start = Instant::now();
        loop {
            let served = self.served();
            if served.as_deref() == Some(expected.as_str()) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "nginx did not serve generation {name} within {DEADLINE:?} (serves {served:?}); \
                 nginx logs:\n{}",
                self.nginx.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the sidecar in nginx's PID and network namespaces with the volume at
    /// [`CONF_DIR`]: `docker_args` go before the image (e.g. `--user 0`), then the tool's
    /// args to reload nginx with SIGHUP, its admin server on `admin_port`. Returns once
    /// `/readyz` answers 200.
    fn sidecar(&self, docker_args: &[&str], admin_port: u16) -> Container {
        let mount = format!("{}:{CONF_DIR}:ro", self.volume.root().display());
        // One pod: nginx's PID namespace (shareProcessNamespace) and its network namespace.
        let nginx_container = format!("container:{}", self.nginx.name);
        let admin = format!("--admin-addr=127.0.0.1:{admin_port}");
        let mut args = vec![
            "--pid",
            &nginx_container,
            "--network",
            &nginx_container,
            "--read-only",
            "-v",
            &mount,
        ];
        args.extend_from_slice(docker_args);
        args.extend([
            RELOAD_IMAGE,
            "--watch",
            CONF_DIR,
            "--signal",
            "HUP",
            "--process-name",
            "nginx",
            &admin,
        ]);
        let sidecar = Container::start("reload", &args);
        let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
        let start = Instant::now();
        while http_client::get(&readyz).map_or(true, |answer| answer.status != 200) {
            assert!(
                start.elapsed() < DEADLINE,
                "the sidecar was not ready within {DEADLINE:?}; logs:\n{}",
                sidecar.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sidecar
    }
}

/// The one server of generation `name`: it says its name on `/`.
fn app_conf(port: u16, name: &str) -> String {
    format!(
        "# generation {name}\nserver {{\n    listen 127.0.0.1:{port};\n    \
         location = / {{ return 200 \"{}\"; }}\n}}\n",
        served_text(name)
    )
}

fn served_text(name: &str) -> String {
    format!("generation {name}\n")
}

/// The sample `series` on the sidecar's `/metrics` (0 when absent).
fn metric(admin_port: u16, series: &str) -> f64 {
    http_client::get(&format!("http://127.0.0.1:{admin_port}/metrics"))
        .map(|answer| answer.body)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// The uids of the processes `docker top` shows for `container` (its own, not the shared
/// namespace's others).
fn uids(container: &Container) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args(["top", &container.name, "-o", "pid,uid"])
        .output()
        .expect("docker top");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn ready_all() -> bool {
    ready(RELOAD_IMAGE) && ready_peer_image(NGINX_PEER_IMAGE)
}

/// The pod as it should be written: nginx and the sidecar share the uid 65532 (a pod-level
/// `runAsUser`), so the sidecar needs no privilege to signal nginx's master.
#[test]
fn nginx_as_65532_is_reloaded_by_sighup_from_a_read_only_sidecar_and_serves_the_new_config() {
    if !ready_all() {
        return;
    }
    let mut pod = NginxPod::start(Some("65532:65532"));
    let admin = free_port();
    let sidecar = pod.sidecar(&[], admin);
    assert_eq!(uids(&sidecar), ["65532"], "the image's user");

    pod.swap("bravo");
    pod.wait_served("bravo");
    sidecar.wait_for_log("reload ok", DEADLINE);
    let logs = sidecar.logs();
    assert!(logs.contains("app.conf"), "the change names the file: {logs}");
    assert!(logs.contains("HUP"), "{logs}");
    // The swap is a burst of events: one reload (two at most on a machine slow enough to
    // split the burst across the debounce).
    let reloads = metric(admin, "pitcrew_reload_reloads_total{result=\"ok\"}");
    assert!(
        (1.0..=2.0).contains(&reloads),
        "{reloads} reloads for one swap; logs:\n{logs}"
    );

    pod.swap("charlie");
    pod.wait_served("charlie");

    // SIGTERM: the sidecar exits at once with 0, and nginx goes on serving.
    let stopping = Instant::now();
    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(DEADLINE), 0, "logs:\n{}", sidecar.logs());
    let stop_time = stopping.elapsed();
    assert!(
        stop_time < Duration::from_secs(10),
        "SIGTERM took {stop_time:?} to stop the sidecar"
    );
    assert_eq!(pod.served().as_deref(), Some(served_text("charlie").as_str()));
}

/// nginx's master as root (the official image's way) and the sidecar as the image's 65532:
/// the kernel refuses the signal; the sidecar logs a failed reload that names the fix, keeps
/// running, and nginx keeps the old config. `capabilities: add: [KILL]` does not help a
/// non-root sidecar; running it as root does.
#[test]
fn a_root_nginx_is_not_signalled_by_uid_65532_the_log_names_the_fix_and_a_root_sidecar_works() {
    if !ready_all() {
        return;
    }
    let mut pod = NginxPod::start(None);

    let admin = free_port();
    let refused = pod.sidecar(&[], admin);
    pod.swap("bravo");
    refused.wait_for_log("failed: signal HUP to nginx", DEADLINE);
    let logs = refused.logs();
    assert!(logs.contains("permission denied"), "{logs}");
    assert!(logs.contains("runAsUser"), "the fix is named: {logs}");
    assert_eq!(pod.served().as_deref(), Some(served_text("alpha").as_str()));
    assert!(metric(admin, "pitcrew_reload_reloads_total{result=\"failed\"}") >= 1.0);
    // Still running, and still healthy: a refused signal is a failed reload, not a dead
    // watcher.
    let healthz = http_client::get(&format!("http://127.0.0.1:{admin}/healthz")).unwrap();
    assert_eq!(healthz.status, 200, "{healthz:?}");
    drop(refused);

    let admin = free_port();
    let with_cap = pod.sidecar(&["--cap-add", "KILL"], admin);
    pod.swap("charlie");
    with_cap.wait_for_log("failed: signal HUP to nginx", DEADLINE);
    assert!(
        with_cap.logs().contains("permission denied"),
        "{}",
        with_cap.logs()
    );
    assert_eq!(pod.served().as_deref(), Some(served_text("alpha").as_str()));
    drop(with_cap);

    let admin = free_port();
    let root = pod.sidecar(&["--user", "0"], admin);
    assert_eq!(uids(&root), ["0"]);
    pod.swap("delta");
    pod.wait_served("delta");
    root.wait_for_log("reload ok", DEADLINE);
}

/// The image as a pod spec meets it: uid 65532, pitcrew-reload as the entry point, `--help`, a
/// usage error for a missing `--watch`, and nothing else to run (`FROM scratch`).
#[test]
fn the_image_runs_as_65532_with_a_read_only_root_and_no_shell() {
    if !ready(RELOAD_IMAGE) {
        return;
    }
    let image = pitcrew_e2e::inspect_image(RELOAD_IMAGE);
    assert_eq!(image["Config"]["User"], "65532:65532", "{image}");
    // The fixed entry point /pitcrew is a link to /pitcrew-reload (see images/Dockerfile).
    let version = pitcrew_e2e::run(
        &["--read-only", "--network", "none", RELOAD_IMAGE, "--version"],
        DEADLINE,
    );
    assert_eq!(version.code, 0, "{version:?}");
    assert_eq!(
        version.stdout,
        format!("pitcrew-reload {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = pitcrew_e2e::run(
        &["--read-only", "--network", "none", RELOAD_IMAGE, "--help"],
        DEADLINE,
    );
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("--watch"), "{}", help.stdout);
    // No --watch: a usage error, exit 64, said on stderr.
    let usage = pitcrew_e2e::run(&["--read-only", "--network", "none", RELOAD_IMAGE], DEADLINE);
    assert_eq!(usage.code, 64, "{usage:?}");
    assert!(usage.stderr.contains("--watch"), "{usage:?}");
    let shell = pitcrew_e2e::run(
        &[
            "--read-only",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            RELOAD_IMAGE,
            "-c",
            "true",
        ],
        DEADLINE,
    );
    assert_ne!(shell.code, 0, "a shell ran in the image: {shell:?}");
}
