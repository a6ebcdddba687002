//! Every `pitcrew/metrics` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the pod's volumes made in a temp dir (its ConfigMaps laid out with
//! `..data`), the paths in the args and in the rule file pointed there, the admin server on a
//! free loopback port.
//!
//! Each container's rule file must pass `--check`; run for real, the sidecar must become
//! ready, declare every metric its rule file defines on `/metrics`, and exit 0 on SIGTERM as
//! the kubelet stops a sidecar.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::examples::{self, VolumeSource};

mod support;
use support::{Running, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-metrics");
const DEADLINE: Duration = Duration::from_secs(60);

/// The metric names a rule file defines: every `name:` under a `metrics:` list.
fn defined_metrics(rules: &str) -> Vec<String> {
    let file = pitcrew_metrics::rules::RuleFile::parse(rules).expect("the example's rule file loads");
    let mut names: Vec<String> = file.logs.metrics().iter().map(|spec| spec.name.clone()).collect();
    for source in &file.status {
        names.extend(source.metrics.iter().map(|metric| metric.name.clone()));
    }
    names
}

// One container's life read top to bottom: volumes, rule file, check, run, scrape, stop.
#[allow(clippy::too_many_lines)]
#[test]
fn every_metrics_container_in_the_examples_checks_serves_its_metrics_and_stops_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/metrics");
    assert!(!containers.is_empty(), "expected the metrics-adapter example");
    for (pod, container) in containers {
        let context = &container.context;
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        // The rule file's own paths (a status file under /data) point into the stand-ins too.
        let mut defined = Vec::new();
        for (name, source) in &pod.volumes {
            if let VolumeSource::ConfigMap { data: Some(data), .. } = source {
                for (key, text) in data {
                    let redirected = container.redirect(text, volumes.path());
                    let file = volumes.path().join(name).join(key);
                    let target = std::fs::canonicalize(&file).unwrap();
                    std::fs::write(&target, &redirected).unwrap();
                    if Path::new(key)
                        .extension()
                        .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml"))
                    {
                        defined.extend(defined_metrics(&redirected));
                    }
                }
            }
        }
        assert!(
            !defined.is_empty(),
            "{context}: no metric defined in the pod's ConfigMaps"
        );

        let env: HashMap<String, String> = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-metrics"
            );
        }
        let args = container.redirected_args(volumes.path());
        let check = Command::new(BIN)
            .args(&args)
            .arg("--check")
            .env_clear()
            .envs(&env)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{context}: --check failed: {}",
            String::from_utf8_lossy(&check.stderr)
        );

        let admin_port = pitcrew_testkit::free_port();
        let out = tempfile::tempdir().unwrap();
        let log = out.path().join("stderr");
        let mut child = Running(
            Command::new(BIN)
                .args(&args)
                .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
                .env_clear()
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
        let start = Instant::now();
        while http_get(admin_port, "/readyz").map(|(status, _)| status) != Some(200) {
            assert!(
                start.elapsed() < DEADLINE,
                "{context}: not ready; its log:\n{}",
                stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, metrics) = http_get(admin_port, "/metrics").expect("/metrics answers");
        assert_eq!(status, 200, "{context}");
        for name in &defined {
            let family = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                metrics.contains(&format!("# TYPE {family} "))
                    || metrics.contains(&format!("# TYPE {name} ")),
                "{context}: {name} is not declared on /metrics:\n{metrics}"
            );
        }

        let killed = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let start = Instant::now();
        let exit = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "{context}: did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            exit.code(),
            Some(0),
            "{context}: SIGTERM should exit 0; its log:\n{}",
            stderr()
        );
    }
}
