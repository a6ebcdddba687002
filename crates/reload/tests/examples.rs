//! Every `pitcrew/reload` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the pod's volumes made in a temp dir (its ConfigMaps laid out with
//! `..data`), the paths in the args pointed there, webhooks and `--verify-url` pointed at a
//! local HTTP receiver (the app's endpoint), the admin server on a free loopback port.
//!
//! `--process-name` is pointed at a stand-in of a name of its own: a copy of `sleep`, whose
//! default action on SIGHUP is to die, so its death by that signal proves the signal arrived.
//! (The real name, `nginx`, could match an nginx that another test runs on this machine.)
//!
//! Each container must become ready, act exactly once when its ConfigMap is updated the
//! kubelet's way (a new timestamped directory, `..data` swapped to it), count that reload in
//! its metrics, and exit 0 on SIGTERM as the kubelet stops a sidecar.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::configmap::ConfigMapVolume;
use pitcrew_testkit::examples::{self, VolumeSource};
use pitcrew_testkit::http_receiver::HttpReceiver;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-reload");
const DEADLINE: Duration = Duration::from_secs(60);

/// A GET on 127.0.0.1:`port`: status and body, `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

/// The value of the sample `name` (labels included, as printed); 0 when absent.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small counts
            let whole = value as u64;
            whole
        })
}

/// `http://HOST:PORT/PATH` with HOST:PORT replaced by the receiver's.
fn to_receiver(url: &str, receiver: &HttpReceiver) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("/", |slash| &rest[slash..]);
    receiver.url(path)
}

/// Applies `change` to every value of the flag `flag` in `args`, in both the `--flag=value`
/// and the `--flag value` forms.
fn rewrite(args: &mut [String], flag: &str, change: impl Fn(&str) -> String) {
    let prefix = format!("{flag}=");
    let mut next_is_value = false;
    for arg in args.iter_mut() {
        if next_is_value {
            *arg = change(arg);
            next_is_value = false;
        } else if let Some(value) = arg.strip_prefix(&prefix) {
            *arg = format!("{prefix}{}", change(value));
        } else if arg == flag {
            next_is_value = true;
        }
    }
}

fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
}

/// Stops the child if the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, stderr: &dyn Fn() -> String, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not happen within {DEADLINE:?}; the sidecar's log:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// One container's life read top to bottom: volumes, args, run, change, check, stop.
#[allow(clippy::too_many_lines)]
#[test]
fn every_reload_container_in_the_examples_acts_once_per_change_and_stops_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/reload");
    assert!(
        containers.len() >= 2,
        "expected the nginx and Prometheus examples, found {}",
        containers.len()
    );
    for (pod, container) in containers {
        let context = &container.context;
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        // The ConfigMaps again, as volumes this test can update the kubelet's way.
        let mut configmaps: Vec<ConfigMapVolume> = Vec::new();
        for (name, source) in &pod.volumes {
            if let VolumeSource::ConfigMap { data: Some(data), .. } = source {
                let dir = volumes.path().join(name);
                std::fs::remove_dir_all(&dir).unwrap();
                let files: BTreeMap<String, Vec<u8>> = data
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone().into_bytes()))
                    .collect();
                configmaps.push(ConfigMapVolume::create(&dir, &files));
            }
        }
        assert!(
            !configmaps.is_empty(),
            "{context}: the pod mounts no ConfigMap defined in its file"
        );

        let receiver = HttpReceiver::start();
        let admin_port = pitcrew_testkit::free_port();
        let mut args = container.redirected_args(volumes.path());
        rewrite(&mut args, "--webhook", |url| to_receiver(url, &receiver));
        rewrite(&mut args, "--verify-url", |url| to_receiver(url, &receiver));
        rewrite(&mut args, "--admin-addr", |_| format!("127.0.0.1:{admin_port}"));
        if !has_flag(&args, "--admin-addr") {
            args.push(format!("--admin-addr=127.0.0.1:{admin_port}"));
        }
        let stand_in_dir = tempfile::tempdir().unwrap();
        let stand_in_name = format!("rlx{}", std::process::id() % 100_000);
        let mut stand_in = None;
        if has_flag(&args, "--process-name") {
            rewrite(&mut args, "--process-name", |_| stand_in_name.clone());
            let copy = stand_in_dir.path().join(&stand_in_name);
            std::fs::copy("/bin/sleep", &copy).unwrap();
            stand_in = Some(Running(
                Command::new(&copy)
                    .arg("600")
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap(),
            ));
        }
        let env: HashMap<String, String> = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-reload"
            );
        }
        let webhooks = has_flag(&args, "--webhook");
        let initial = has_flag(&args, "--initial");
        let state_file = args
            .iter()
            .find_map(|arg| arg.strip_prefix("--state-file="))
            .map(std::path::PathBuf::from);

        let out = tempfile::tempdir().unwrap();
        let log = out.path().join("stderr");
        let mut child = Running(
            Command::new(BIN)
                .args(&args)
                .env_clear()
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
        let reload_calls = || {
            receiver
                .requests()
                .iter()
                .filter(|request| request.method != "GET")
                .count()
        };
        let metrics = || {
            http_get(admin_port, "/metrics")
                .map(|(_, text)| text)
                .unwrap_or_default()
        };
        let ok_reloads = || counter(&metrics(), "pitcrew_reload_reloads_total{result=\"ok\"}");

        wait_until(&format!("{context}: /readyz 200"), &stderr, || {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "{context}: exited early with args {args:?}:\n{}",
                stderr()
            );
            http_get(admin_port, "/readyz").is_some_and(|(status, _)| status == 200)
        });
        assert_eq!(
            http_get(admin_port, "/healthz").map(|(status, _)| status),
            Some(200),
            "{context}"
        );
        let before = u64::from(initial);
        wait_until(&format!("{context}: the --initial reload"), &stderr, || {
            ok_reloads() == before
        });
        if webhooks {
            assert_eq!(
                reload_calls(),
                usize::from(initial),
                "{context}: {:?}",
                receiver.requests()
            );
        }
        if let Some(stand_in) = &mut stand_in {
            assert!(
                stand_in.0.try_wait().unwrap().is_none(),
                "{context}: the app was signalled before any change"
            );
        }

        // The kubelet's update of the first ConfigMap: one key's content changes.
        let volume = &mut configmaps[0];
        let key = pod
            .volumes
            .values()
            .find_map(|source| match source {
                VolumeSource::ConfigMap { data: Some(data), .. } => data.keys().next().cloned(),
                _ => None,
            })
            .unwrap();
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for entry in std::fs::read_dir(volume.root()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") {
                files.insert(name.clone(), std::fs::read(volume.path(&name)).unwrap());
            }
        }
        files
            .get_mut(&key)
            .unwrap()
            .extend_from_slice(b"\n# changed by the examples test\n");
        volume.update(&files);

        wait_until(&format!("{context}: a reload after the change"), &stderr, || {
            ok_reloads() == before + 1
        });
        if webhooks {
            assert_eq!(
                reload_calls(),
                usize::from(initial) + 1,
                "{context}: one webhook call per change: {:?}",
                receiver.requests()
            );
        }
        if let Some(stand_in) = &mut stand_in {
            let mut status = None;
            wait_until(&format!("{context}: the stand-in app signalled"), &stderr, || {
                status = stand_in.0.try_wait().unwrap();
                status.is_some()
            });
            assert_eq!(
                status.and_then(|status| status.signal()),
                Some(1),
                "{context}: the app did not die of SIGHUP: {status:?}\n{}",
                stderr()
            );
        }
        if let Some(state_file) = &state_file {
            // The state file remembers the hash now applied: the one the info metric shows.
            let text = metrics();
            let hash = text
                .lines()
                .find_map(|line| line.strip_prefix("pitcrew_reload_config_info{hash=\""))
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{context}: no config_info metric:\n{text}"));
            let state = std::fs::read_to_string(state_file).unwrap_or_default();
            assert!(
                hash.len() == 64 && state.contains(hash),
                "{context}: the state file holds {state:?}, not the applied hash {hash}"
            );
        }
        assert_eq!(
            counter(&metrics(), "pitcrew_reload_reloads_total{result=\"failed\"}"),
            0,
            "{context}:\n{}",
            stderr()
        );

        let _ = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status();
        let mut status = None;
        wait_until(&format!("{context}: exit after SIGTERM"), &stderr, || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        });
        assert_eq!(
            status.and_then(|status| status.code()),
            Some(0),
            "{context}\n{}",
            stderr()
        );
        let log_text = stderr();
        assert!(
            !log_text.contains(examples::SECRET),
            "{context}: a Secret's value reached the log:\n{log_text}"
        );
    }
}
