//! The scenarios of `examples/` run as real pods with `podman kube play`: init containers one
//! after another, the app and its sidecars in one network namespace sharing emptyDirs, pods
//! finding each other by name, SIGTERM on `podman kube down`.
//!
//! Each test plays the manifests as users would write them (see `pitcrew_e2e::pods` and
//! `Manifest::for_podman` for the few changes podman 4.3 needs, each a difference from a
//! kubelet), on the images `cargo xtask test` puts in podman's store: the pitcrew images tagged
//! with the version the manifests name, and PostgreSQL, MariaDB, nginx, Redis and busybox built
//! from Debian's packages under the names the manifests use.

use std::time::{Duration, Instant};

use pitcrew_e2e::pods::{Answer, DEADLINE, Scenario, http_get, request, seconds_between};
use pitcrew_testkit::podman::Pod;

/// How long after its dependency answers the app may start: pitcrew/wait retries every
/// 100 ms for its first 10 s, so it sees the dependency within that; the rest is podman
/// starting the next container.
const APP_START_BOUND: f64 = 1.0;

fn running(pod: &Pod, container: &str) -> bool {
    pod.state(container)
        .is_some_and(|state| state.status == "running")
}

/// The seed's init demo: the app (nginx) starts only once MySQL answers, and right after.
/// MySQL is played only once pitcrew/wait has logged that it cannot reach it yet.
#[test]
fn init_demo_holds_the_app_until_mysql_answers_then_starts_it_at_once() {
    let Some(mut scenario) = Scenario::start("init-demo") else {
        return;
    };
    let mysql = scenario.manifest("dependencies/mysql.yaml");
    let app = scenario.manifest("init-containers/wait-for-mysql.yaml");

    let demo = scenario.play(&app, "init-container-demo", "init-container-demo");
    demo.wait_for("waiting for mysql", DEADLINE, |pod| {
        pod.logs("wait-for-mysql").contains("retrying in")
    });
    assert!(
        !running(&demo, "main-app"),
        "the app started before MySQL existed:\n{}",
        demo.describe()
    );

    let database = scenario.play(&mysql, "mysql", "mysql");
    demo.wait_for("running its app", DEADLINE, |pod| running(pod, "main-app"));

    // MariaDB logs its port only when it listens for the network (the entrypoint's set-up
    // server listens on a socket only, and logs port 0).
    let ready = database
        .logged_at("mysql", "port: 3306")
        .unwrap_or_else(|| panic!("MariaDB never said it listens:\n{}", database.describe()));
    let wait = demo.state("wait-for-mysql").expect("the init container is kept");
    let app = demo.state("main-app").expect("the app");
    assert_eq!(wait.exit_code, 0, "{}", demo.describe());
    let app_after = seconds_between(ready, app.started_at.expect("started"));
    let wait_after = seconds_between(ready, wait.finished_at.expect("finished"));
    eprintln!("mysql ready → wait exited {wait_after:.3}s, app started {app_after:.3}s");
    assert!(
        app_after > 0.0,
        "the app started {app_after:.3}s before MySQL listened"
    );
    assert!(
        wait_after < APP_START_BOUND,
        "pitcrew/wait let the app wait {wait_after:.3}s after MySQL listened:\n{}",
        demo.logs("wait-for-mysql")
    );
    let log = demo.logs("wait-for-mysql");
    assert!(log.contains("mysql://shop:***@mysql:3306/shop is ready"), "{log}");
    assert!(
        !log.contains(&scenario.secret("mysql-credentials", "password")),
        "the password reached the log:\n{log}"
    );
    // The default log is the first failure, changes of reason and a line every 10 s, not
    // one line per attempt (every 100 ms): no attempt line repeats the reason of the one
    // before. (Counting lines against the time waited flaked: podman's resolver can answer
    // "does not resolve" and then a refused connection by turns while the MySQL pod starts,
    // and each turn is a change of reason.)
    let reasons: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" attempt "))
        .filter_map(|line| line.split_once("mysql:3306/shop: "))
        .filter_map(|(_, rest)| rest.split_once("; retrying").map(|(reason, _)| reason))
        .collect();
    assert!(!reasons.is_empty(), "no failed attempt logged:\n{log}");
    for pair in reasons.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "an attempt repeated the reason before it:\n{log}"
        );
    }
    drop(database);
}

/// The seed's sequential init: database check → config set-up → migrations → app, each step
/// starting only after the one before exited 0.
#[test]
fn sequential_init_runs_each_step_after_the_one_before_and_the_app_last() {
    let Some(mut scenario) = Scenario::start("sequential") else {
        return;
    };
    let postgres = scenario.manifest("dependencies/postgres.yaml");
    let orders = scenario.manifest("init-containers/sequential-init.yaml");
    let pod = scenario.play(&orders, "orders", "orders");
    pod.wait_for("waiting for postgres", DEADLINE, |pod| {
        pod.logs("step-1-database-check").contains("retrying in")
    });
    let database = scenario.play(&postgres, "postgres", "postgres");
    pod.wait_for("running its app", DEADLINE, |pod| running(pod, "app"));

    let steps = [
        "step-1-database-check",
        "step-2-config-setup",
        "step-3-schema-migration",
    ];
    let mut previous_end = None;
    for step in steps {
        let state = pod.state(step).expect("the init container is kept");
        assert_eq!(state.exit_code, 0, "{step}:\n{}", pod.describe());
        let started = state.started_at.expect("started");
        if let Some(end) = previous_end {
            assert!(
                seconds_between(end, started) >= 0.0,
                "{step} started before the step before it ended:\n{}",
                pod.describe()
            );
        }
        previous_end = state.finished_at;
    }
    let app = pod.state("app").unwrap();
    assert!(seconds_between(previous_end.unwrap(), app.started_at.unwrap()) >= 0.0);

    let answer = http_get(&pod, "app", 8080, "/");
    assert!(answer.contains("schema migrated, config in place"), "{answer}");
    let version = database
        .psql(
            "postgres",
            "webapp",
            "webapp",
            "SELECT version, dirty FROM schema_migrations",
        )
        .unwrap();
    assert_eq!(version, "1|f");
}

/// The seed's nginx with a log sidecar, classic (in `containers`): every request shows in the
/// sidecar's log, and `podman kube down` stops it within the grace period with exit 0.
#[test]
fn classic_log_sidecar_streams_nginx_requests_and_drains_on_kube_down() {
    log_sidecar_scenario("log-sidecar/classic.yaml", "sidecar-demo");
}

/// The native sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+).
/// podman 4.3 does not know native sidecars: it would wait for the sidecar to exit before
/// starting nginx, so `Manifest::for_podman` plays it in `containers`. What can be checked here
/// is what the two forms share: the same container, args and volume, streaming every request
/// and draining on SIGTERM. The start-before and stop-after ordering is the kubelet's, and
/// cannot be seen with podman.
#[test]
fn native_log_sidecar_streams_nginx_requests_and_drains_as_far_as_podman_can_show() {
    log_sidecar_scenario("log-sidecar/native.yaml", "sidecar-demo-native");
}

fn log_sidecar_scenario(file: &str, pod_name: &str) {
    let Some(mut scenario) = Scenario::start(pod_name) else {
        return;
    };
    let manifest = scenario.manifest(file);
    let pod = scenario.play(&manifest, pod_name, pod_name);
    pod.wait_for("serving", DEADLINE, |pod| {
        running(pod, "nginx") && running(pod, "log-sidecar") && http_get_quietly(pod)
    });
    for n in 1..=5 {
        let answer = http_get(&pod, "nginx", 80, &format!("/hello-{n}"));
        assert!(answer.contains("404") || answer.contains("200"), "{answer}");
    }
    pod.wait_for("showing every request in the sidecar's log", DEADLINE, |pod| {
        let log = pod.logs("log-sidecar");
        (1..=5).all(|n| log.contains(&format!("GET /hello-{n} HTTP/1.0")))
    });
    drains_within_the_grace_period(&pod, &["log-sidecar"]);
}

/// Stops the pod as `podman kube down` does before it removes it (SIGTERM, then SIGKILL after
/// the 10 s grace period; a pod's terminationGracePeriodSeconds is 30 s by default) and checks
/// that it took less than the grace period and that each of `sidecars` exited 0 by itself (a
/// sidecar that ignored SIGTERM would be killed: 137); then kube down removes it.
fn drains_within_the_grace_period(pod: &Pod, sidecars: &[&str]) {
    let took = pod.stop().expect("podman pod stop");
    eprintln!("{}: stopped in {took:?}", pod.name());
    assert!(
        took < Duration::from_secs(10),
        "{}: stopping took {took:?}",
        pod.name()
    );
    for sidecar in sidecars {
        let state = pod.state(sidecar).expect("the stopped container is kept");
        assert_eq!(
            (state.status.as_str(), state.exit_code),
            ("exited", 0),
            "{} did not exit cleanly on SIGTERM:\n{}",
            pod.container(sidecar),
            pod.logs(sidecar)
        );
    }
    pod.down().expect("podman kube down");
}

fn http_get_quietly(pod: &Pod) -> bool {
    pod.http_get("nginx", 80, "/").is_ok()
}

/// The production Deployment: two replicas started at once against a PostgreSQL that comes
/// up later. Migrations run once; the config and JWT secret are rendered and survive a pod
/// restart unchanged; the app's requests show in the log sidecar; kube down drains it.
// One story, top to bottom: splitting it would hide the order of events it checks.
#[allow(clippy::too_many_lines)]
#[test]
fn production_deployment_migrates_once_renders_config_and_ships_logs() {
    let Some(mut scenario) = Scenario::start("production") else {
        return;
    };
    let postgres = scenario.manifest("dependencies/postgres.yaml");
    let webapp = scenario.manifest("production-deployment/deployment.yaml");

    // PostgreSQL's pod first: it takes seconds to initialise its database, so the replicas
    // still find it not ready, as behind a Service whose endpoints are not ready yet. (Played
    // after them, a replica that had looked the name up before the pod existed once got no
    // answer from podman's resolver, aardvark-dns, for 45 s: a podman matter, which
    // pitcrew/wait rode out, retrying and saying why.)
    let database = scenario.play(&postgres, "postgres", "postgres");
    // podman plays one pod per Deployment, whatever its replicas: the two replicas are the
    // same template played twice, at once.
    let first = scenario.play(&webapp, "webapp", "webapp-a");
    let second = scenario.play(&webapp, "webapp", "webapp-b");
    for pod in [&first, &second] {
        pod.wait_for("running its app and sidecar", DEADLINE, |pod| {
            running(pod, "webapp") && running(pod, "log-forwarder")
        });
    }
    let ready = database
        .logged_at("postgres", "database system is ready to accept connections")
        .expect("PostgreSQL said it is ready");
    for pod in [&first, &second] {
        let wait = pod.state("wait-for-db").unwrap();
        let app = pod.state("webapp").unwrap();
        let wait_after = seconds_between(ready, wait.finished_at.unwrap());
        let app_after = seconds_between(ready, app.started_at.unwrap());
        eprintln!(
            "{}: postgres ready → wait exited {wait_after:.3}s, app started {app_after:.3}s (after migrate and render)",
            pod.name()
        );
        assert!(
            app_after > 0.0,
            "{} started its app before PostgreSQL was ready",
            pod.name()
        );
        let wait_log = pod.logs("wait-for-db");
        if wait_log.contains("the resolver did not answer") {
            // podman's resolver (aardvark-dns 1.4) sometimes stops answering for tens of
            // seconds while a second pod joins the network (seen in a CI run: 45 s, from the
            // moment webapp-b was played). Nothing can see PostgreSQL through a resolver that
            // does not answer, so the delay is the resolver's and the bound cannot apply; what
            // is checked is that wait said why it was waiting, kept trying, and got through.
            eprintln!(
                "{}: podman's resolver did not answer for a while; wait's {wait_after:.3}s is not held to {APP_START_BOUND}s",
                pod.name()
            );
            assert!(
                wait_log.contains("is ready after"),
                "{}: wait logged the resolver's silence but never got through\n{wait_log}",
                pod.name()
            );
        } else {
            assert!(
                wait_after < APP_START_BOUND,
                "{}: wait took {wait_after:.3}s\n{wait_log}\n--- postgres:\n{}",
                pod.name(),
                database.logs("postgres")
            );
        }
    }

    // Migrations ran once: the version is 3, clean, and the seed row (which a second run
    // would fail to insert) is there once.
    let psql = |sql: &str| database.psql("postgres", "webapp", "webapp", sql).unwrap();
    assert_eq!(psql("SELECT version, dirty FROM schema_migrations"), "3|f");
    assert_eq!(
        psql("SELECT count(*) FROM users WHERE email = 'admin@example.com'"),
        "1"
    );
    let logs = [first.logs("run-migrations"), second.logs("run-migrations")];
    let applied: Vec<bool> = logs
        .iter()
        .map(|log| log.contains("3 migrations applied"))
        .collect();
    assert_eq!(
        applied.iter().filter(|&&a| a).count(),
        1,
        "exactly one replica applies the migrations:\n{}\n---\n{}",
        logs[0],
        logs[1]
    );
    let password = scenario.secret("app-db-credentials", "password");
    for log in &logs {
        assert!(!log.contains(&password), "the password reached the log:\n{log}");
    }

    // The rendered config and the secret.
    let config = first
        .exec("webapp", &["cat", "/etc/nginx/conf.d/webapp.conf"])
        .unwrap();
    assert!(config.contains("listen 8080;"), "{config}");
    let secret = first
        .exec("webapp", &["cat", "/etc/nginx/conf.d/jwt-secret"])
        .unwrap();
    assert_eq!(secret.trim().len(), 44, "32 bytes in base64: {secret:?}");
    let answer = http_get(&first, "webapp", 8080, "/orders?page=1");
    assert!(
        answer.contains("webapp (production, log level info) using webapp on postgres"),
        "{answer}"
    );
    first.wait_for("showing the request in the log sidecar", DEADLINE, |pod| {
        pod.logs("log-forwarder").contains("GET /orders?page=1 HTTP/1.0")
    });
    let other_secret = second
        .exec("webapp", &["cat", "/etc/nginx/conf.d/jwt-secret"])
        .unwrap();
    assert_ne!(secret, other_secret, "each pod generates its own secret");

    // A pod restart re-runs the init containers on the same emptyDirs: the secret and the
    // config stay as they were, byte for byte and with their modification times.
    let stat = |pod: &Pod| {
        pod.exec(
            "webapp",
            &[
                "stat",
                "-c",
                "%n %s %Y",
                "/etc/nginx/conf.d/jwt-secret",
                "/etc/nginx/conf.d/webapp.conf",
            ],
        )
        .unwrap()
    };
    let before = stat(&first);
    let wait_started = first.state("wait-for-db").unwrap().started_at;
    first.restart().expect("the pod restarts");
    first.wait_for("running again", DEADLINE, |pod| running(pod, "webapp"));
    assert_ne!(
        first.state("wait-for-db").unwrap().started_at,
        wait_started,
        "the init containers ran again"
    );
    assert_eq!(first.state("config-generator").unwrap().exit_code, 0);
    assert_eq!(stat(&first), before, "the restart changed the rendered files");
    assert_eq!(
        first
            .exec("webapp", &["cat", "/etc/nginx/conf.d/jwt-secret"])
            .unwrap(),
        secret
    );
    assert!(
        first.logs("run-migrations").contains("no change"),
        "{}",
        first.logs("run-migrations")
    );

    // kubectl delete: the sidecar drains within the grace period.
    for pod in [&first, &second] {
        drains_within_the_grace_period(pod, &["log-forwarder"]);
    }
}

/// The data-processing Job: fetch and validate the inputs, render the config, run the
/// processor; its sidecar exits with it (--exit-on), so the pod completes.
#[test]
fn data_processing_job_completes_because_its_sidecar_exits_with_the_processor() {
    let Some(mut scenario) = Scenario::start("job") else {
        return;
    };
    let lake = scenario.manifest("dependencies/data-lake.yaml");
    let job = scenario.manifest("data-processing-job/job.yaml");
    let _lake = scenario.play(&lake, "data-lake", "data-lake");
    let start = Instant::now();
    let pod = scenario.play(&job, "data-processing-job", "data-processing-job-x7k2p");
    let processor = pod.wait_exited("data-processor", DEADLINE);
    let monitor = pod.wait_exited("progress-monitor", DEADLINE);
    eprintln!("the Job's pod completed in {:?}", start.elapsed());
    assert_eq!(processor.exit_code, 0, "{}", pod.describe());
    assert_eq!(
        monitor.exit_code,
        0,
        "the sidecar exits 0 on --exit-on:\n{}",
        pod.describe()
    );
    for step in ["data-downloader", "validate-inputs", "config-generator"] {
        assert_eq!(
            pod.state(step).unwrap().exit_code,
            0,
            "{step}:\n{}",
            pod.describe()
        );
    }
    let log = pod.logs("progress-monitor");
    assert!(log.contains("processed customers: 3 rows"), "{log}");
    assert!(log.contains("processed orders: 4 rows"), "{log}");
    assert!(log.contains("finished"), "the last line too:\n{log}");
    assert!(
        log.contains(r#""processing_id":"data-processing-job-x7k2p""#),
        "the config was rendered with the pod's name:\n{log}"
    );
    let fetched = pod.logs("data-downloader");
    assert!(fetched.contains("batch.json"), "{fetched}");
}

/// The metrics adapter (`metrics-adapter/job.yaml`), the seed's progress monitor: the
/// sidecar serves the processor's status file as gauges and its log lines as counters and a
/// histogram, read here from the pod's address as Prometheus would scrape it, while the
/// processor runs and after it finished; then it drains on SIGTERM with exit 0.
#[test]
fn metrics_adapter_serves_the_jobs_progress_and_log_counters() {
    let Some(mut scenario) = Scenario::start("metrics-adapter") else {
        return;
    };
    let manifest = scenario.manifest("metrics-adapter/job.yaml");
    let pod = scenario.play(&manifest, "progress-job", "progress-job-q8r4z");
    let mut address = None;
    pod.wait_for("the pod's address", DEADLINE, |pod| {
        address = pod.ip().ok();
        address.is_some()
    });
    let url = format!("http://{}:9534/metrics", address.unwrap_or_default());
    let scrape = || {
        pitcrew_testkit::http_client::get(&url)
            .ok()
            .filter(|answer| answer.status == 200)
            .map(|answer| answer.body)
            .unwrap_or_default()
    };
    // While it runs: a stage before the last one, with a progress below 1.
    pod.wait_for("the progress while the processor runs", DEADLINE, |_| {
        scrape().contains("job_progress_ratio{stage=\"transform\"}")
    });
    let processor = pod.wait_exited("data-processor", DEADLINE);
    assert_eq!(processor.exit_code, 0, "{}", pod.describe());
    let expected = [
        "job_progress_ratio{stage=\"done\"} 1",
        "job_records_processed 500",
        "job_errors{kind=\"parse\"} 1",
        "job_errors{kind=\"io\"} 0",
        "job_batches_total{status=\"ok\"} 5",
        "job_rows_total 500",
        "job_batch_seconds_count 5",
        "job_batch_seconds_bucket{le=\"0.5\"} 5",
        "pitcrew_metrics_rule_matches_total{rule=\"batches\"} 5",
        "pitcrew_metrics_status_up{source=\"progress\"} 1",
    ];
    let mut last = String::new();
    pod.wait_for("the final values", DEADLINE, |_| {
        last = scrape();
        expected.iter().all(|line| has_sample(&last, line))
    });
    assert!(
        !last.contains("stage=\"transform\""),
        "a stage gone from the status file is gone from /metrics:\n{last}"
    );
    drains_within_the_grace_period(&pod, &["metrics"]);
}

/// Whether the exposition has the sample `expected` (`name{labels} value`), whatever the
/// value's spelling (`1` or `1.0`).
// The values are small integers and short decimals written as text: exact in an f64.
#[allow(clippy::float_cmp)]
fn has_sample(exposition: &str, expected: &str) -> bool {
    let (series, value) = expected.rsplit_once(' ').expect("name and value");
    let value: f64 = value.parse().expect("a number");
    exposition.lines().any(|line| {
        line.rsplit_once(' ').is_some_and(|(name, found)| {
            name == series && found.parse::<f64>().is_ok_and(|found| found == value)
        })
    })
}

/// The shared-volume producer/consumer: prepare hands the producer its directory, the
/// consumer (pitcrew/tail) reads every record exactly once through the producer's rotation.
#[test]
fn shared_volume_consumer_reads_every_record_once_through_rotation() {
    let Some(mut scenario) = Scenario::start("shared-volume") else {
        return;
    };
    let manifest = scenario.manifest("shared-volume/pod.yaml");
    let pod = scenario.play(&manifest, "shared-volume-demo", "shared-volume-demo");
    pod.wait_for("consuming all 200 records", DEADLINE, |pod| {
        pod.logs("consumer").contains("record 200 of 200")
    });
    assert!(
        pod.logs("producer").contains("wrote 200 records"),
        "{}",
        pod.describe()
    );
    let log = pod.logs("consumer");
    let records: Vec<&str> = log.lines().filter(|line| line.starts_with("record ")).collect();
    let expected: Vec<String> = (1..=200).map(|n| format!("record {n} of 200")).collect();
    assert_eq!(records, expected, "every record once, in order:\n{log}");
    drains_within_the_grace_period(&pod, &["consumer"]);
}

/// The config-reload sidecar (`config-reload/nginx.yaml`): when the ConfigMap changes the
/// kubelet's way, pitcrew/reload sends nginx's master SIGHUP once and nginx serves the new
/// config, without a restart; a swap to identical content reloads nothing.
///
/// podman 4.3 never updates a ConfigMap volume (and lays it out without `..data`), so the test
/// makes podman's volume itself, laid out as the kubelet does, before playing the pod, and
/// updates it on the host the kubelet's way: a new timestamped directory, `..data` swapped to
/// it, the old one deleted (`Scenario::kubelet_configmap` says how podman is made to keep
/// that layout). The containers see the volume through a bind mount, so the sidecar gets the
/// same inotify events as on a node.
// One story, top to bottom: play, change, see it served, check what the sidecar did.
#[allow(clippy::too_many_lines)]
#[test]
fn config_reload_sidecar_reloads_nginx_when_its_configmap_changes() {
    const CONFIGMAP: &str = "nginx-site";
    let Some(mut scenario) = Scenario::start("config-reload") else {
        return;
    };
    let manifest = scenario.manifest("config-reload/nginx.yaml");
    let mut volume = scenario.kubelet_configmap(&manifest, CONFIGMAP);
    let site = std::fs::read_to_string(volume.path("site.conf")).expect("the ConfigMap's site.conf");
    assert!(site.contains("config version 1"), "{site}");
    let pod = scenario.play(&manifest, "config-reload-demo", "config-reload-demo");

    let serves = |pod: &Pod, text: &str| {
        pod.http_get("nginx", 8080, "/")
            .is_ok_and(|answer| answer.contains(text))
    };
    let metrics = |pod: &Pod| pod.http_get("nginx", 9533, "/metrics").unwrap_or_default();
    pod.wait_for("serving version 1, the sidecar ready", DEADLINE, |pod| {
        serves(pod, "config version 1")
            && pod
                .http_get("nginx", 9533, "/readyz")
                .is_ok_and(|answer| answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"))
    });
    // shareProcessNamespace: podman 4.3 must have put the pod's containers in one PID
    // namespace, or the sidecar could not see nginx. Checked from nginx's side (the sidecar's
    // image has no shell): the sidecar's process is visible there (its command name is
    // `pitcrew`, the image's entrypoint link).
    let processes = pod
        .exec("nginx", &["sh", "-c", "cat /proc/[0-9]*/comm"])
        .expect("list nginx's visible processes");
    assert!(
        processes.lines().any(|comm| comm.starts_with("pitcrew")),
        "the pod does not share its PID namespace (podman ignored shareProcessNamespace?): \
         nginx sees only\n{processes}"
    );
    let master_before = pod
        .exec("nginx", &["cat", "/run/nginx.pid"])
        .expect("nginx's pid file");
    let started_before = pod.state("nginx").and_then(|state| state.started_at);

    // The kubelet's update: a new payload, `..data` swapped to it.
    volume.update_texts(&[("site.conf", &site.replace("config version 1", "config version 2"))]);
    pod.wait_for("serving version 2", DEADLINE, |pod| {
        serves(pod, "config version 2")
    });
    pod.wait_for("logging the reload", DEADLINE, |pod| {
        pod.logs("config-reloader").contains("reload ok")
    });
    let log = pod.logs("config-reloader");
    assert!(
        log.lines()
            .any(|line| line.contains("change:") && line.contains("/etc/nginx/conf.d/site.conf")),
        "the change names the file:\n{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("reload ok") && line.contains("signal HUP") && line.contains("nginx")),
        "the reload says what it did:\n{log}"
    );

    // Identical content: the kubelet swaps `..data` all the same (a new resourceVersion with
    // the same data), with the same burst of events; the hash is unchanged, so no reload.
    // Seen through the watch-events counter, then a real change after it: if the identical
    // swap had counted, there would be three reloads, not two.
    let events_before = counter(&metrics(&pod), "pitcrew_reload_watch_events_total");
    volume.update_texts(&[("site.conf", &site.replace("config version 1", "config version 2"))]);
    pod.wait_for("seeing the identical swap", DEADLINE, |pod| {
        counter(&metrics(pod), "pitcrew_reload_watch_events_total") > events_before
    });
    // Past the debounce (300ms) with room to spare, so the next change is a burst of its own.
    std::thread::sleep(Duration::from_secs(2));
    volume.update_texts(&[("site.conf", &site.replace("config version 1", "config version 3"))]);
    pod.wait_for("serving version 3", DEADLINE, |pod| {
        serves(pod, "config version 3")
    });
    pod.wait_for("counting the second reload", DEADLINE, |pod| {
        counter(&metrics(pod), "pitcrew_reload_reloads_total{result=\"ok\"}") >= 2
    });
    let text = metrics(&pod);
    let log = pod.logs("config-reloader");
    assert_eq!(
        counter(&text, "pitcrew_reload_reloads_total{result=\"ok\"}"),
        2,
        "one reload per real change, none for the identical swap:\n{text}\n{log}"
    );
    assert_eq!(
        counter(&text, "pitcrew_reload_reloads_total{result=\"failed\"}"),
        0,
        "{text}\n{log}"
    );
    assert_eq!(
        log.lines().filter(|line| line.contains("reload ok")).count(),
        2,
        "one log line per reload:\n{log}"
    );
    // Reloaded, not restarted: the same nginx master, the same container start.
    assert_eq!(
        pod.exec("nginx", &["cat", "/run/nginx.pid"])
            .expect("nginx's pid file"),
        master_before,
        "nginx's master changed: it was restarted, not reloaded"
    );
    assert_eq!(
        pod.state("nginx").and_then(|state| state.started_at),
        started_before,
        "the nginx container was restarted"
    );
    // SIGTERM, as the kubelet stops the pod's containers before its sandbox: exit 0 at once.
    // Not `podman pod stop` (drains_within_the_grace_period): podman 4.3 stops the infra
    // container with the others, and its catatonit is the init of the shared PID namespace,
    // so the kernel SIGKILLs every process in it: every container exited 137 within half a
    // second, whatever it did with SIGTERM (tried).
    let stop = Instant::now();
    scenario
        .podman
        .output(&["stop", &pod.container("config-reloader")])
        .expect("podman stop the sidecar");
    let state = pod.state("config-reloader").expect("the stopped sidecar is kept");
    assert_eq!(
        (state.status.as_str(), state.exit_code),
        ("exited", 0),
        "the sidecar did not exit cleanly on SIGTERM:\n{}",
        pod.logs("config-reloader")
    );
    assert!(
        stop.elapsed() < Duration::from_secs(10),
        "stopping the sidecar took {:?}",
        stop.elapsed()
    );
    drop(pod);
    scenario.remove_volume(CONFIGMAP);
}

/// The value of the sample `name` (labels included, as printed) in a Prometheus text page;
/// 0 when it is not there (a counter not yet incremented may be absent).
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

/// The pod's address on the test's network (what its Service would send to), once it has one.
fn address_of(pod: &Pod) -> String {
    let mut address = None;
    pod.wait_for("the pod's address", DEADLINE, |pod| {
        address = pod.ip().ok();
        address.is_some()
    });
    address.unwrap_or_default()
}

/// Waits until the proxy's admin server on `port` of `ip` says it is ready (its upstream
/// answers), as the kubelet's readiness probe would.
fn wait_proxy_ready(pod: &Pod, ip: &str, port: u16) {
    pod.wait_for(&format!("the proxy on :{port} ready"), DEADLINE, |_| {
        request(ip, port, "/readyz", &[]).is_ok_and(|answer| answer.status == 200)
    });
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `GET path` through the proxy (port 8090 of the pod's address), with `headers`; panics
/// when no answer comes.
fn through_proxy(ip: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(ip, 8090, path, headers).unwrap_or_else(|err| panic!("GET {path} through the proxy: {err}"))
}

/// The auth proxy checking tokens itself (`auth-proxy/jwt.yaml`), reached from outside the pod
/// as its Service would reach it: the public path answers without a token; no token, a bad,
/// expired, foreign-audience or wrongly signed one is refused with 401 before the app; a user's
/// JWT and a machine client's bearer token reach the app with the identity the proxy set, never
/// one the client sent; the app itself cannot be reached past the proxy; no token or secret is
/// logged; SIGTERM drains it.
// One story, top to bottom: a table of requests and what each must get.
#[allow(clippy::too_many_lines)]
#[test]
fn auth_proxy_lets_valid_tokens_in_and_tells_the_app_who_is_calling() {
    let Some(mut scenario) = Scenario::start("auth-proxy") else {
        return;
    };
    let manifest = scenario.manifest("auth-proxy/jwt.yaml");
    let pod = scenario.play(&manifest, "webapp", "webapp-6d4cf56db6-x7k2p");
    let ip = address_of(&pod);
    wait_proxy_ready(&pod, &ip, 9535);

    let secret = scenario.secret("jwt-secret", "secret");
    let sign = |claims: &serde_json::Value, key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .expect("a token")
    };
    let now = unix_now();
    let claims = |sub: &str, aud: &str, exp: u64| serde_json::json!({"sub": sub, "email": format!("{sub}@example.com"), "aud": aud, "iat": now, "exp": exp});
    let alice = sign(&claims("alice", "webapp", now + 600), secret.as_bytes());
    let expired = sign(&claims("alice", "webapp", now - 3600), secret.as_bytes());
    let other_audience = sign(&claims("alice", "billing", now + 600), secret.as_bytes());
    let forged = sign(&claims("alice", "webapp", now + 600), b"not the secret");
    let tokens = scenario.secret("api-tokens", "tokens");
    let (client, client_token) = tokens
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| line.split_once(char::is_whitespace))
        .expect("a NAME TOKEN line in the api-tokens Secret");
    let bearer = |token: &str| format!("Bearer {token}");

    // The public path: no token needed.
    let health = through_proxy(&ip, "/healthz", &[]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{health:?}");

    // Refused before the app, with a challenge saying how to authenticate.
    let refused: &[(&str, Vec<(&str, String)>)] = &[
        ("no token", vec![]),
        (
            "a spoofed identity header alone",
            vec![("X-Forwarded-User", "admin".into())],
        ),
        (
            "a token that is no JWT",
            vec![("Authorization", bearer("not-a-jwt"))],
        ),
        ("an expired token", vec![("Authorization", bearer(&expired))]),
        (
            "another audience's token",
            vec![("Authorization", bearer(&other_audience))],
        ),
        (
            "a token signed with another key",
            vec![("Authorization", bearer(&forged))],
        ),
        (
            "basic auth",
            vec![("Authorization", "Basic YWxpY2U6YWxpY2U=".into())],
        ),
    ];
    for (case, headers) in refused {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let answer = through_proxy(&ip, "/orders", &headers);
        assert_eq!(answer.status, 401, "{case}: {answer:?}");
        assert!(
            answer.header("WWW-Authenticate").is_some(),
            "{case}: no challenge: {answer:?}"
        );
        assert!(
            !answer.body.contains("hello"),
            "{case}: the app answered: {answer:?}"
        );
    }

    // A user's JWT: the app sees the token's subject and email, not what the client claims.
    let user = through_proxy(
        &ip,
        "/orders",
        &[
            ("Authorization", &bearer(&alice)),
            ("X-Forwarded-User", "admin"),
            ("X-Forwarded-Email", "admin@example.com"),
        ],
    );
    assert_eq!(
        (user.status, user.body.as_str()),
        (200, "hello alice <alice@example.com>\n"),
        "{user:?}"
    );
    // A machine client's bearer token from the Secret's file: its NAME is the user.
    let machine = through_proxy(&ip, "/orders", &[("Authorization", &bearer(client_token))]);
    assert_eq!(
        (machine.status, machine.body.as_str()),
        (200, format!("hello {client} <>\n").as_str()),
        "{machine:?}"
    );
    // Path tricks that would reach a protected path through the public one are normalised
    // before the public-path check: refused without a token.
    for path in ["/healthz/../orders", "/healthz/%2e%2e/orders", "//orders"] {
        let answer = through_proxy(&ip, path, &[]);
        assert!(
            matches!(answer.status, 400 | 401),
            "{path}: {answer:?} (a public path must not open another)"
        );
    }

    // Past the proxy there is no way in: the app listens on the pod's loopback only.
    assert!(
        request(&ip, 8080, "/orders", &[]).is_err(),
        "the app answered on the pod's address, past the proxy"
    );

    let log = pod.logs("auth-proxy");
    for secret_text in [secret.as_str(), alice.as_str(), client_token, forged.as_str()] {
        assert!(
            !log.contains(secret_text),
            "a token or the JWT secret reached the proxy's log:\n{log}"
        );
    }
    drains_within_the_grace_period(&pod, &["auth-proxy"]);
}

/// The seed's auth proxy with its auth service (`auth-proxy/forward-auth.yaml`): the proxy asks
/// the auth service about every request but the public path; its 401 (challenge and body) goes
/// back to the client, its 2xx lets the request in with the user it named, which no client can
/// spoof; with the auth service gone the proxy answers 503, not a way in.
#[test]
fn forward_auth_proxy_asks_the_auth_service_and_passes_its_user_on() {
    let Some(mut scenario) = Scenario::start("forward-auth") else {
        return;
    };
    let manifest = scenario.manifest("auth-proxy/forward-auth.yaml");
    let auth = scenario.play(&manifest, "auth-service", "auth-service");
    let pod = scenario.play(&manifest, "microservice", "microservice-7c9d4b8f5-q2w4e");
    let ip = address_of(&pod);
    wait_proxy_ready(&pod, &ip, 9535);
    auth.wait_for("the auth service answering", DEADLINE, |_| {
        through_proxy(&ip, "/orders", &[]).status == 401
    });

    let health = through_proxy(&ip, "/healthz", &[]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{health:?}");

    let refused = through_proxy(&ip, "/orders", &[("X-Auth-User", "mallory")]);
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some("Bearer realm=\"demo\""),
        "the auth service's challenge: {refused:?}"
    );
    assert!(
        refused.body.contains("who are you?"),
        "the auth service's body: {refused:?}"
    );

    let allowed = through_proxy(
        &ip,
        "/orders",
        &[
            ("Authorization", "Bearer demo-token-alice"),
            ("X-Auth-User", "mallory"),
        ],
    );
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, "hello alice\n"),
        "{allowed:?}"
    );

    // The auth service goes away: nobody gets in, and the public path still answers.
    auth.stop().expect("podman pod stop");
    pod.wait_for("503 without the auth service", DEADLINE, |_| {
        through_proxy(&ip, "/orders", &[("Authorization", "Bearer demo-token-alice")]).status == 503
    });
    let health = through_proxy(&ip, "/healthz", &[]);
    assert_eq!(health.status, 200, "{health:?}");
    let log = pod.logs("auth-proxy");
    assert!(
        !log.contains("demo-token-alice"),
        "the token reached the proxy's log:\n{log}"
    );
    drains_within_the_grace_period(&pod, &["auth-proxy"]);
}

/// The ambassadors (`ambassador/app.yaml`, with `dependencies/external-services.yaml` standing
/// in for the external services): the app's connections to localhost:6379 reach both Redis nodes and its
/// requests to localhost:8090 both API servers; with one of each stopped, the app's traffic
/// goes on through the other (at most the ejection threshold's 3 failures on the way); both
/// sidecars drain on SIGTERM.
// One story, top to bottom: both ambassadors through the same steps.
#[allow(clippy::too_many_lines)]
#[test]
fn ambassadors_balance_the_apps_traffic_and_survive_a_backend_going_away() {
    /// Connections (redis-cli calls) and requests per step.
    const CALLS: usize = 20;
    /// Failures allowed after a backend stopped: the passive health check's threshold.
    const EJECTION_FAILURES: usize = 3;
    let Some(mut scenario) = Scenario::start("ambassador") else {
        return;
    };
    let backends = scenario.manifest("dependencies/external-services.yaml");
    let manifest = scenario.manifest("ambassador/app.yaml");
    let redis: Vec<Pod> = ["redis-a", "redis-b"]
        .iter()
        .map(|name| scenario.play(&backends, name, name))
        .collect();
    let api: Vec<Pod> = ["api-a", "api-b"]
        .iter()
        .map(|name| scenario.play(&backends, name, name))
        .collect();
    for pod in &redis {
        pod.wait_for("Redis answering", DEADLINE, |pod| {
            pod.exec("redis", &["redis-cli", "PING"])
                .is_ok_and(|out| out.trim() == "PONG")
        });
    }
    for pod in &api {
        pod.wait_for("nginx answering", DEADLINE, |pod| {
            pod.http_get("api", 80, "/").is_ok()
        });
    }
    let app = scenario.play(&manifest, "app", "app-5f7b9c6d8-m3n4p");
    app.wait_for("both ambassadors ready", DEADLINE, |pod| {
        running(pod, "app")
            && [9535, 9536].iter().all(|port| {
                pod.http_get("app", *port, "/readyz")
                    .is_ok_and(|answer| answer.contains(" 200 "))
            })
    });

    // The app's side: one redis-cli call is one connection, one GET one request.
    let incr = |app: &Pod| {
        app.exec(
            "app",
            &["redis-cli", "-h", "127.0.0.1", "-p", "6379", "INCR", "hits"],
        )
        .is_ok_and(|out| out.trim().parse::<u64>().is_ok())
    };
    let get = |app: &Pod, n: usize| {
        app.http_get("app", 8090, &format!("/?probe={n}"))
            .is_ok_and(|answer| answer.contains(" 200 ") && answer.contains("Welcome to nginx"))
    };
    let hits = |pod: &Pod| {
        pod.exec("redis", &["redis-cli", "GET", "hits"])
            .ok()
            .and_then(|out| out.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    let probes = |pod: &Pod| {
        pod.exec("api", &["grep", "-c", "probe=", "/var/log/nginx/access.log"])
            .ok()
            .and_then(|out| out.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };

    for n in 0..CALLS {
        assert!(
            incr(&app),
            "INCR {n} through the cache ambassador failed:\n{}",
            app.describe()
        );
        assert!(
            get(&app, n),
            "GET {n} through the API ambassador failed:\n{}",
            app.describe()
        );
    }
    let counts: Vec<usize> = redis.iter().map(hits).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        CALLS,
        "every INCR landed once: {counts:?}"
    );
    assert!(
        counts.iter().all(|&count| count > 0),
        "the connections were not balanced over both Redis nodes: {counts:?}"
    );
    let mut served: Vec<usize> = Vec::new();
    app.wait_for("every request in the API servers' logs", DEADLINE, |_| {
        served = api.iter().map(probes).collect();
        served.iter().sum::<usize>() >= CALLS
    });
    assert_eq!(
        served.iter().sum::<usize>(),
        CALLS,
        "every GET served once: {served:?}"
    );
    assert!(
        served.iter().all(|&count| count > 0),
        "the requests were not balanced over both API servers: {served:?}"
    );

    // One node of each goes away; the app's traffic goes on through the other.
    redis[1].stop().expect("podman pod stop redis-b");
    api[1].stop().expect("podman pod stop api-b");
    let before = (hits(&redis[0]), probes(&api[0]));
    let mut failed = (0, 0);
    for n in 0..CALLS {
        if !incr(&app) {
            failed.0 += 1;
        }
        if !get(&app, CALLS + n) {
            failed.1 += 1;
        }
    }
    assert!(
        failed.0 <= EJECTION_FAILURES && failed.1 <= EJECTION_FAILURES,
        "failures (cache, API) after a backend stopped: {failed:?}:\n{}",
        app.describe()
    );
    assert_eq!(
        hits(&redis[0]).saturating_sub(before.0),
        CALLS - failed.0,
        "every INCR that succeeded landed on redis-a"
    );
    app.wait_for("the API requests on api-a", DEADLINE, |_| {
        probes(&api[0]).saturating_sub(before.1) >= CALLS - failed.1
    });
    for (ambassador, port) in [("cache-ambassador", 9535), ("api-ambassador", 9536)] {
        let ready = app.http_get("app", port, "/readyz").unwrap_or_default();
        assert!(
            ready.contains(" 200 "),
            "{ambassador} not ready with one upstream left: {ready}"
        );
    }
    drains_within_the_grace_period(&app, &["cache-ambassador", "api-ambassador"]);
}
