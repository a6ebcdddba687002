//! A real Prometheus server (Debian's `prometheus` package) on a free loopback port, reading a
//! config file the test names, with `--web.enable-lifecycle` so `POST /-/reload` works, and its
//! TSDB in a temporary directory.
//!
//! What the tests use it for:
//! - pitcrew-reload: the config file lives in a ConfigMap-style volume
//!   ([`crate::configmap::ConfigMapVolume`]); after a swap and the sidecar's webhook,
//!   [`PrometheusPeer::config_yaml`] (`/api/v1/status/config`) and
//!   [`PrometheusPeer::rule_group_names`] (`/api/v1/rules`) show what Prometheus really loaded;
//! - scraping a tool's `/metrics` (the metrics sidecar): [`scrape_config`] writes a config that
//!   scrapes given targets every second, [`PrometheusPeer::query`] and
//!   [`PrometheusPeer::wait_until_query`] read the result through PromQL, as a user would.
//!
//! Prometheus does not watch its config file itself (only file service discovery is watched),
//! so a config change it shows came through a reload.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http_client::{self, Answer};
use crate::process::ServerProcess;

/// How often the configs [`scrape_config`] writes scrape and evaluate rules: fast enough that a
/// test waits a second or two for a new sample, not a minute.
pub const SCRAPE_INTERVAL: &str = "1s";

/// A running Prometheus; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct PrometheusPeer {
    // Declared before `dir` so the server stops before its TSDB directory is removed.
    server: ServerProcess,
    dir: TempDir,
    address: SocketAddr,
    config_file: PathBuf,
}

impl PrometheusPeer {
    /// Starts Prometheus reading `config_file` (which must exist and be valid: Prometheus
    /// refuses to start otherwise), e.g. a key of a
    /// [`ConfigMapVolume`](crate::configmap::ConfigMapVolume). Relative paths in it
    /// (`rule_files`) are relative to the file's directory, as Prometheus resolves them.
    /// Returns once Prometheus answers `/-/ready`. `None` when Prometheus is not installed
    /// (outside CI; see [`crate::require_binary`]).
    ///
    /// # Panics
    /// When Prometheus is installed but does not start (the message holds its log).
    pub fn start(config_file: &Path) -> Option<PrometheusPeer> {
        let binary = crate::require_binary("prometheus", &["/usr/bin/prometheus"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-prometheus-")
            .tempdir()
            .expect("cannot create a temp dir for Prometheus");
        Some(start_in(&binary, dir, config_file.to_path_buf()))
    }

    /// Starts Prometheus with `yaml` as its config, written to `prometheus.yml` in its own
    /// temporary directory (see [`scrape_config`] for a config that scrapes targets).
    pub fn start_with_config(yaml: &str) -> Option<PrometheusPeer> {
        let binary = crate::require_binary("prometheus", &["/usr/bin/prometheus"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-prometheus-")
            .tempdir()
            .expect("cannot create a temp dir for Prometheus");
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, yaml).expect("write prometheus.yml");
        Some(start_in(&binary, dir, config_file))
    }

    /// Starts Prometheus scraping each `(job, url)` of `targets` every [`SCRAPE_INTERVAL`]
    /// (see [`scrape_config`]).
    pub fn scraping(targets: &[(&str, &str)]) -> Option<PrometheusPeer> {
        PrometheusPeer::start_with_config(&scrape_config(targets))
    }

    /// `http://127.0.0.1:PORT{path}`, e.g. `url("/-/reload")` for a reload webhook.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The address Prometheus listens on (127.0.0.1).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The config file Prometheus was started with.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The config Prometheus has loaded, as its status API shows it
    /// (`GET /api/v1/status/config`): Prometheus's own YAML of it, defaults filled in, so
    /// compare values (an external label, a job name), not the file's text.
    pub fn config_yaml(&self) -> String {
        let data = self.api("/api/v1/status/config");
        data["yaml"]
            .as_str()
            .unwrap_or_else(|| panic!("no yaml in the status config answer: {data}"))
            .to_owned()
    }

    /// The names of the rule groups Prometheus has loaded (`GET /api/v1/rules`), in its order.
    pub fn rule_group_names(&self) -> Vec<String> {
        let data = self.api("/api/v1/rules");
        data["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("no groups in the rules answer: {data}"))
            .iter()
            .map(|group| group["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The value of the instant query `expr` now: the first series' value (use an
    /// aggregation such as `sum(…)` or `count(…)` for several series), or the scalar; `None`
    /// when there is no series. NaN and ±Inf come back as such.
    ///
    /// # Panics
    /// When Prometheus refuses the expression (the message has its error) or cannot be reached.
    pub fn query(&self, expr: &str) -> Option<f64> {
        let data = self.api(&format!("/api/v1/query?query={}", encode_query(expr)));
        let value = match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .and_then(|series| series.first())
                .map(|first| &first["value"]),
            Some("scalar") => Some(&data["result"]),
            _ => panic!("query {expr:?}: expected a vector or a scalar, got {data}"),
        }?;
        let text = value[1]
            .as_str()
            .unwrap_or_else(|| panic!("query {expr:?}: a sample without a value: {value}"));
        Some(
            text.parse()
                .unwrap_or_else(|_| panic!("query {expr:?}: the value {text:?} is not a number")),
        )
    }

    /// Polls [`PrometheusPeer::query`] until its value satisfies `predicate` and returns that
    /// value. A missing series never satisfies it.
    ///
    /// # Panics
    /// After `deadline`, with the last value seen and Prometheus's log.
    pub fn wait_until_query(&self, expr: &str, predicate: impl Fn(f64) -> bool, deadline: Duration) -> f64 {
        let start = Instant::now();
        loop {
            let value = self.query(expr);
            if let Some(value) = value.filter(|value| predicate(*value)) {
                return value;
            }
            assert!(
                start.elapsed() < deadline,
                "query {expr:?} did not reach the expected value within {deadline:?}; last value: \
                 {value:?}; Prometheus's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls until `condition` holds; panics after `deadline` naming `what`, with Prometheus's
    /// log. For conditions on [`PrometheusPeer::config_yaml`] or the rule groups.
    pub fn wait_until(&self, what: &str, deadline: Duration, mut condition: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !condition(self) {
            assert!(
                start.elapsed() < deadline,
                "Prometheus: {what} did not happen within {deadline:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `POST /-/reload` (what a reload sidecar's webhook does): 200 when the file loaded,
    /// 500 with Prometheus's reason when it did not (the old config stays in force).
    pub fn reload(&self) -> Answer {
        http_client::request(self.address, "POST", "/-/reload", b"")
            .unwrap_or_else(|err| panic!("POST /-/reload: {err}; log:\n{}", self.log()))
    }

    /// Prometheus's log so far (it logs to stderr, kept in a file), for failure messages.
    pub fn log(&self) -> String {
        self.server.log_text()
    }

    /// The directory Prometheus keeps its TSDB in (its temp dir).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET path` of the JSON API; its `data` on `"status":"success"`, else a panic with the
    /// error Prometheus gave.
    fn api(&self, path: &str) -> serde_json::Value {
        let answer = http_client::request(self.address, "GET", path, b"")
            .unwrap_or_else(|err| panic!("GET {path}: {err}; log:\n{}", self.log()));
        let mut json: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_else(|err| {
            panic!(
                "GET {path}: HTTP {} with a body that is not JSON ({err}): {:?}",
                answer.status, answer.body
            )
        });
        assert!(
            answer.status == 200 && json["status"] == "success",
            "GET {path}: HTTP {}: {json}",
            answer.status
        );
        json["data"].take()
    }
}

/// A complete `prometheus.yml` that scrapes each `(job, url)` of `targets` every
/// [`SCRAPE_INTERVAL`] (timeout the same), and evaluates rules as often. `url` is the plain
/// `http://HOST:PORT/PATH` of the metrics, e.g. a tool's admin `/metrics`; `up{job="JOB"}`
/// then says whether the last scrape worked.
///
/// # Panics
/// When a URL is not `http://HOST:PORT/PATH` (a test's mistake).
pub fn scrape_config(targets: &[(&str, &str)]) -> String {
    use std::fmt::Write as _;
    let mut yaml = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n  \
         evaluation_interval: {SCRAPE_INTERVAL}\nscrape_configs:\n"
    );
    for (job, url) in targets {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("scrape target {url:?}: expected http://HOST:PORT/PATH"));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        assert!(
            authority
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
            "scrape target {url:?}: expected http://HOST:PORT/PATH"
        );
        let path = if path.is_empty() { "/" } else { path };
        // JSON strings are YAML's double-quoted strings: any job name or path stays one value.
        let _ = write!(
            yaml,
            "  - job_name: {}\n    metrics_path: {}\n    static_configs:\n      - targets: [{}]\n",
            serde_json::Value::from(*job),
            serde_json::Value::from(path),
            serde_json::Value::from(authority),
        );
    }
    yaml
}

/// Starts Prometheus in `dir` on a free port; tries fresh ports when the one picked was taken
/// in between (the port is released before Prometheus binds it).
fn start_in(binary: &Path, dir: TempDir, config_file: PathBuf) -> PrometheusPeer {
    let mut last_problem = String::new();
    for attempt in 0..5 {
        let port = crate::free_port();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = dir.path().join(format!("prometheus-{attempt}.log"));
        let log = File::create(&log_path).expect("create Prometheus's log");
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--web.enable-lifecycle")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        let mut server = ServerProcess::spawn(&mut command, "prometheus", Some(log_path), "TERM");
        // Ready means the TSDB is open and the config loaded: /-/ready answers 503 before.
        let ready =
            || http_client::request(address, "GET", "/-/ready", b"").is_ok_and(|answer| answer.status == 200);
        match server.try_wait_until(ready, Duration::from_millis(50)) {
            Ok(()) => {
                return PrometheusPeer {
                    server,
                    dir,
                    address,
                    config_file,
                };
            }
            Err(problem) if problem.contains("address already in use") => last_problem = problem,
            Err(problem) => panic!("Prometheus did not start:\n{problem}"),
        }
    }
    panic!("Prometheus could not bind a free port after 5 tries:\n{last_problem}");
}

/// `expr` for a URL query: every byte but the unreserved ones percent-encoded (PromQL is full
/// of `{`, `"`, `=`, `+` and spaces).
fn encode_query(expr: &str) -> String {
    use std::fmt::Write as _;
    let mut encoded = String::with_capacity(expr.len() * 3);
    for byte in expr.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// `promtool check metrics` (Prometheus's own parser of the text format 0.0.4, from Debian's
/// `prometheus` package) on `text`: whether it parsed, and what promtool said. Lint findings
/// (exit 3: help style, naming advice) count as parsed; a parse error (exit 1) does not.
/// `None` when promtool is not installed (outside CI; see [`crate::require_binary`]).
///
/// # Panics
/// When promtool cannot be run.
pub fn promtool_check(text: &str) -> Option<(bool, String)> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let promtool = crate::require_binary("promtool", &["/usr/bin/promtool"])?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("cannot write to promtool");
    let output = child.wait_with_output().expect("promtool did not finish");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed = matches!(output.status.code(), Some(0 | 3)) && !said.contains("error while linting");
    Some((parsed, said))
}

// The values compared are small integers Prometheus sends as decimal text: exact in an f64.
#[allow(clippy::float_cmp)]
#[cfg(test)]
mod tests {
    use super::*;

    /// Generous: a busy 2-core machine, and Prometheus scrapes on its own clock.
    const DEADLINE: Duration = Duration::from_secs(60);

    #[test]
    fn encodes_promql_for_a_url() {
        assert_eq!(encode_query("up"), "up");
        assert_eq!(
            encode_query("sum(up{job=\"a b\"}) + 1"),
            "sum%28up%7Bjob%3D%22a%20b%22%7D%29%20%2B%201"
        );
        assert_eq!(encode_query("é"), "%C3%A9");
        assert_eq!(encode_query(""), "");
    }

    #[test]
    fn scrape_config_quotes_every_value() {
        let yaml = scrape_config(&[
            ("metrics", "http://127.0.0.1:9533/metrics"),
            ("odd: \"job\" #1", "http://localhost:1"),
        ]);
        assert!(yaml.contains("scrape_interval: 1s"), "{yaml}");
        assert!(
            yaml.contains("  - job_name: \"metrics\"\n    metrics_path: \"/metrics\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("targets: [\"127.0.0.1:9533\"]"), "{yaml}");
        assert!(
            yaml.contains("job_name: \"odd: \\\"job\\\" #1\"\n    metrics_path: \"/\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("targets: [\"localhost:1\"]"), "{yaml}");
    }

    #[test]
    #[should_panic(expected = "expected http://HOST:PORT/PATH")]
    fn scrape_config_refuses_a_target_without_a_port() {
        let _ = scrape_config(&[("job", "http://127.0.0.1/metrics")]);
    }

    /// The whole lifecycle a reload test relies on: the loaded config shows in the status
    /// API, a changed file shows only after `POST /-/reload`, and an invalid file makes the
    /// reload answer 500 while the old config stays.
    #[test]
    fn reloads_on_request_and_keeps_the_old_config_when_the_new_one_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rules = dir.path().join("rules.yml");
        std::fs::write(
            &rules,
            "groups:\n  - name: first\n    rules:\n      - record: one\n        expr: vector(1)\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "global:\n  external_labels:\n    version: \"first ünïcödé\"\nrule_files: [rules.yml]\n",
        )
        .unwrap();
        let Some(prometheus) = PrometheusPeer::start(&config) else {
            return;
        };
        assert_eq!(prometheus.config_file(), config);
        assert!(
            prometheus.config_yaml().contains("first ünïcödé"),
            "{}",
            prometheus.config_yaml()
        );
        assert_eq!(prometheus.rule_group_names(), ["first"]);

        std::fs::write(
            &rules,
            "groups:\n  - name: second\n    rules:\n      - record: two\n        expr: vector(2)\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "global:\n  external_labels:\n    version: second\nrule_files: [rules.yml]\n",
        )
        .unwrap();
        // Not watched: still the first config until asked.
        std::thread::sleep(Duration::from_millis(500));
        assert!(prometheus.config_yaml().contains("first"));
        let answer = prometheus.reload();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(prometheus.config_yaml().contains("version: second"));
        assert_eq!(prometheus.rule_group_names(), ["second"]);
        assert_eq!(prometheus.query("scalar(vector(7))"), Some(7.0));
        assert_eq!(prometheus.query("nothing_is_called_this"), None);
        assert!(prometheus.query("scalar(vector(0)) / 0").is_some_and(f64::is_nan));

        std::fs::write(&config, "global:\n  scrape_interval: banana\n").unwrap();
        let answer = prometheus.reload();
        assert_eq!(answer.status, 500, "{answer:?}");
        assert!(answer.body.contains("banana"), "{answer:?}");
        assert!(prometheus.config_yaml().contains("version: second"));
    }

    #[test]
    fn scrapes_a_target_every_second() {
        let Some(nginx) = crate::nginx::NginxPeer::start() else {
            return;
        };
        let metrics = nginx.files_dir().join("metrics");
        std::fs::write(
            &metrics,
            "# TYPE pitcrew_selftest gauge\npitcrew_selftest{kind=\"a\"} 42\n",
        )
        .unwrap();
        let target = nginx.http_url("/files/metrics");
        let Some(prometheus) = PrometheusPeer::scraping(&[
            ("selftest", &target),
            (
                "nobody-home",
                &format!("http://127.0.0.1:{}/metrics", crate::free_port()),
            ),
        ]) else {
            return;
        };
        prometheus.wait_until_query("up{job=\"selftest\"}", |up| up == 1.0, DEADLINE);
        assert_eq!(
            prometheus.wait_until_query("pitcrew_selftest{kind=\"a\"}", |_| true, DEADLINE),
            42.0
        );
        prometheus.wait_until_query("up{job=\"nobody-home\"}", |up| up == 0.0, DEADLINE);
        // A new value is seen within a few scrapes.
        std::fs::write(&metrics, "pitcrew_selftest{kind=\"a\"} 1e300\n").unwrap();
        prometheus.wait_until_query("pitcrew_selftest", |value| value > 1e299, DEADLINE);
        assert_eq!(prometheus.query("count(up)"), Some(2.0));
    }

    #[test]
    fn an_invalid_config_at_start_fails_with_prometheuss_reason() {
        if crate::require_binary("prometheus", &["/usr/bin/prometheus"]).is_none() {
            return;
        }
        let started = std::panic::catch_unwind(|| {
            PrometheusPeer::start_with_config("scrape_configs: {not: a list}\n").map(|_| ())
        });
        let panic = started.expect_err("Prometheus started with an invalid config");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("Prometheus did not start"), "{message}");
        assert!(message.contains("exited with"), "{message}");
        assert!(
            message.contains("prometheus.yml"),
            "the log names the file: {message}"
        );
    }
}
