//! The `pitcrew-reload` binary against a real Prometheus (issue 12's first real-peer test).
//!
//! Prometheus (Debian's, `--web.enable-lifecycle`) reads its config and a rules file from a
//! directory laid out and swapped exactly as the kubelet does a ConfigMap volume
//! (`pitcrew_testkit::configmap`), and the sidecar calls `POST /-/reload` when the content
//! changes. What Prometheus has really loaded is read back from its own APIs
//! (`/api/v1/status/config`, `/api/v1/rules`, a recording rule through PromQL), never from
//! the sidecar's word for it.
//!
//! Prometheus does not watch its config itself, so a config it shows came through a reload.
//! The sequence: a good swap is applied; an invalid config makes Prometheus answer 500, which
//! the sidecar counts as a failed reload and survives (Prometheus keeps the old config); the
//! fixed config is applied. Finally Prometheus, which scrapes the sidecar's `/metrics`, shows
//! the sidecar's own counters: the exposition parses for a real Prometheus.

// The values compared are small integers sent as decimal text: exact in an f64.
#![allow(clippy::float_cmp)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::configmap::ConfigMapVolume;
use pitcrew_testkit::http_client;
use pitcrew_testkit::prometheus::PrometheusPeer;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-reload");

/// Generous: a busy 2-core machine; the kubelet itself may take a minute to sync a volume.
const DEADLINE: Duration = Duration::from_secs(90);

/// The sidecar process, killed when dropped; its stderr (the log) goes to a file.
struct Sidecar {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl Sidecar {
    /// Starts `pitcrew-reload ARGS --admin-addr=ADMIN`; returns once `/readyz` answers 200.
    fn start(dir: &Path, admin: SocketAddr, args: &[&str]) -> Sidecar {
        let log = dir.join("sidecar.log");
        let child = Command::new(BIN)
            .args(args)
            .arg(format!("--admin-addr={admin}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start pitcrew-reload");
        let mut sidecar = Sidecar { child, admin, log };
        sidecar.wait_for("/readyz to answer 200", |sidecar| {
            sidecar.get("/readyz").is_some_and(|answer| answer.status == 200)
        });
        sidecar
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the admin server; `None` while it does not answer.
    fn get(&self, path: &str) -> Option<http_client::Answer> {
        http_client::request(self.admin, "GET", path, b"").ok()
    }

    /// The value of the sample `series` (name and labels exactly as exposed) on `/metrics`;
    /// 0 when it is not there (yet).
    fn metric(&self, series: &str) -> f64 {
        let metrics = self.get("/metrics").map(|answer| answer.body).unwrap_or_default();
        metrics
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
            .unwrap_or(0.0)
    }

    /// Polls `condition`; panics after [`DEADLINE`] with the sidecar's log. Also fails at once
    /// when the sidecar has exited: it must keep running whatever its peer does.
    fn wait_for(&mut self, what: &str, mut condition: impl FnMut(&Sidecar) -> bool) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pitcrew-reload exited ({status}) waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            if condition(self) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: not within {DEADLINE:?}; sidecar log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus config of generation `name`: an external label that says which one is
/// loaded, the rules file beside it (relative: Prometheus resolves it from the config's
/// directory, the volume's root), and a scrape of the sidecar's `/metrics`. The label holds
/// characters that must reach Prometheus untouched: no `${…}` expansion, no re-encoding.
fn prometheus_yml(name: &str, sidecar_admin: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n  \
         external_labels:\n    generation: {name}\n    note: \"ünïcödé $HOME ${{NOT_A_VAR}} 'q'\"\n\
         rule_files:\n  - rules.yml\n\
         scrape_configs:\n  - job_name: reload-sidecar\n    static_configs:\n      - targets: [\"{sidecar_admin}\"]\n"
    )
}

/// A rules file whose one group is named after the generation and records its number.
fn rules_yml(name: &str, number: u32) -> String {
    format!(
        "groups:\n  - name: {name}\n    rules:\n      - record: pitcrew_test_generation\n        \
         expr: vector({number})\n"
    )
}

#[test]
fn prometheus_reloads_each_swapped_configmap_and_a_rejected_config_is_a_counted_failure() {
    let dir = tempfile::tempdir().unwrap();
    // The sidecar's admin port is picked first: the config scrapes it.
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, pitcrew_testkit::free_port()));
    let mut volume = ConfigMapVolume::with_texts(
        &dir.path().join("config"),
        &[
            ("prometheus.yml", &prometheus_yml("alpha", admin)),
            ("rules.yml", &rules_yml("alpha", 1)),
        ],
    );
    let Some(prometheus) = PrometheusPeer::start(&volume.path("prometheus.yml")) else {
        return;
    };
    assert!(prometheus.config_yaml().contains("generation: alpha"));
    assert_eq!(prometheus.rule_group_names(), ["alpha"]);

    let webhook = prometheus.url("/-/reload");
    let watch = volume.root().to_str().unwrap().to_owned();
    let mut sidecar = Sidecar::start(
        dir.path(),
        admin,
        &[
            "--watch",
            &watch,
            "--webhook",
            &webhook,
            // One retry: Prometheus's 500 for a bad config will not change by asking again,
            // and the failure should be counted within seconds, not after a long backoff.
            "--webhook-retries=1",
            "--log-format=text",
        ],
    );
    // No --initial: nothing has changed yet, so nothing was reloaded.
    assert_eq!(sidecar.metric("pitcrew_reload_reloads_total{result=\"ok\"}"), 0.0);

    // A good swap: Prometheus shows the new config and the new rule group.
    volume.update_texts(&[
        ("prometheus.yml", &prometheus_yml("bravo", admin)),
        ("rules.yml", &rules_yml("bravo", 2)),
    ]);
    prometheus.wait_until("the bravo config to be loaded", DEADLINE, |prometheus| {
        prometheus.config_yaml().contains("generation: bravo")
    });
    let config = prometheus.config_yaml();
    assert!(config.contains("NOT_A_VAR"), "{config}");
    assert!(config.contains("ünïcödé"), "{config}");
    assert_eq!(prometheus.rule_group_names(), ["bravo"]);
    prometheus.wait_until_query("pitcrew_test_generation", |value| value == 2.0, DEADLINE);
    sidecar.wait_for("a counted successful reload", |sidecar| {
        sidecar.metric("pitcrew_reload_reloads_total{result=\"ok\"}") >= 1.0
    });
    // The kubelet's swap is a burst of events: debounced into one reload (two at most on a
    // machine slow enough to split the burst).
    let ok_after_bravo = sidecar.metric("pitcrew_reload_reloads_total{result=\"ok\"}");
    assert!(
        ok_after_bravo <= 2.0,
        "{ok_after_bravo} reloads for one swap; log:\n{}",
        sidecar.log()
    );

    // An invalid config: Prometheus answers the webhook 500 and keeps bravo; the sidecar
    // counts a failed reload, says so, and keeps running.
    volume.update_texts(&[
        (
            "prometheus.yml",
            "global:\n  scrape_interval: banana\nrule_files:\n  - rules.yml\n",
        ),
        ("rules.yml", &rules_yml("bravo", 2)),
    ]);
    sidecar.wait_for("a counted failed reload", |sidecar| {
        sidecar.metric("pitcrew_reload_reloads_total{result=\"failed\"}") >= 1.0
    });
    // The counter may be read before the line is written: wait for the line too.
    let failed = format!("failed: webhook POST {webhook}: answered HTTP 500");
    sidecar.wait_for(
        "the failed reload in the log, with Prometheus's answer",
        |sidecar| sidecar.log().contains(&failed),
    );
    let log = sidecar.log();
    assert!(
        log.contains("not a valid duration string"),
        "Prometheus's reason: {log}"
    );
    assert!(prometheus.config_yaml().contains("generation: bravo"));
    assert!(sidecar.is_running(), "log:\n{}", sidecar.log());
    assert_eq!(sidecar.get("/healthz").map(|answer| answer.status), Some(200));

    // The fix supersedes the failing change: applied, and counted as a success.
    volume.update_texts(&[
        ("prometheus.yml", &prometheus_yml("charlie", admin)),
        ("rules.yml", &rules_yml("charlie", 3)),
    ]);
    prometheus.wait_until("the charlie config to be loaded", DEADLINE, |prometheus| {
        prometheus.config_yaml().contains("generation: charlie")
    });
    assert_eq!(prometheus.rule_group_names(), ["charlie"]);
    prometheus.wait_until_query("pitcrew_test_generation", |value| value == 3.0, DEADLINE);
    sidecar.wait_for("the fix counted as a successful reload", |sidecar| {
        sidecar.metric("pitcrew_reload_reloads_total{result=\"ok\"}") > ok_after_bravo
    });

    prometheus_sees_the_sidecars_counters(&prometheus);
    assert!(sidecar.is_running(), "log:\n{}", sidecar.log());
}

/// Prometheus scrapes the sidecar (the job is in every good generation): its parser accepts
/// the exposition, and it sees the counters the sidecar itself shows.
fn prometheus_sees_the_sidecars_counters(prometheus: &PrometheusPeer) {
    prometheus.wait_until_query("up{job=\"reload-sidecar\"}", |up| up == 1.0, DEADLINE);
    prometheus.wait_until_query(
        "pitcrew_reload_reloads_total{job=\"reload-sidecar\",result=\"failed\"}",
        |failed| failed >= 1.0,
        DEADLINE,
    );
    prometheus.wait_until_query(
        "pitcrew_reload_reloads_total{job=\"reload-sidecar\",result=\"ok\"}",
        |ok| ok >= 2.0,
        DEADLINE,
    );
    assert!(
        prometheus
            .query("pitcrew_reload_last_success_timestamp_seconds{job=\"reload-sidecar\"}")
            .is_some_and(|seconds| seconds > 1.0e9),
        "no last-success timestamp; Prometheus log:\n{}",
        prometheus.log()
    );
    assert_eq!(
        prometheus.query("count(pitcrew_reload_config_info{job=\"reload-sidecar\"})"),
        Some(1.0),
        "exactly one current config hash"
    );
}
