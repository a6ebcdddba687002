//! `cargo xtask demo`: the production-Deployment example run as real pods with
//! `podman kube play`, told step by step.
//!
//! The webapp pod (examples/production-deployment/) is played first, its database
//! (examples/dependencies/postgres.yaml) only a few seconds later, as when a database restarts
//! or a cluster comes up: pitcrew/wait holds the pod back, then migrate applies the schema,
//! render writes the config and the JWT secret, nginx (the app) starts and pitcrew/tail
//! streams its requests. The demo prints what each container says as it happens, how long
//! the app waited past the moment PostgreSQL was ready, and commands to look further; then it
//! cleans up. The image builds' output goes to a log file, named at the start.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pitcrew_testkit::podman::{Manifest, Pod, Podman, parse_time};

use crate::util::{self, Result};

const NETWORK: &str = "pitcrew-demo";
/// How long the database stays away after the webapp pod started.
const DATABASE_LATE_BY: Duration = Duration::from_secs(5);

fn say(text: &str) {
    println!("\n\u{2500}\u{2500} {text}");
}

/// Prints the lines of each container's log not printed yet, prefixed with its name. (podman
/// gives stdout and stderr apart, so lines are remembered, not counted.)
struct LogFollower {
    printed: BTreeMap<String, HashSet<String>>,
}

impl LogFollower {
    fn print_new(&mut self, pod: &Pod, containers: &[&str]) {
        for container in containers {
            let log = pod.logs(container);
            if log.starts_with("Error:") || log.contains("no such container") {
                continue;
            }
            let seen = self.printed.entry(pod.container(container)).or_default();
            for line in log.lines() {
                if seen.insert(line.to_owned()) {
                    println!("  {:<28} {}", pod.container(container), short(line));
                }
            }
        }
    }
}

/// A log line without its RFC 3339 timestamp's date and fraction, to fit a terminal.
fn short(line: &str) -> String {
    match line.split_once(' ') {
        Some((stamp, rest)) if parse_time(stamp).is_some() && stamp.len() > 19 => {
            format!("{} {}", &stamp[11..19], rest.trim_start())
        }
        _ => line.to_owned(),
    }
}

fn running(pod: &Pod, container: &str) -> bool {
    pod.state(container)
        .is_some_and(|state| state.status == "running")
}

/// Runs the demo.
// The demo reads top to bottom like the story it tells; splitting it would hide the steps.
#[allow(clippy::too_many_lines)]
pub fn run() -> Result {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .map_err(|err| format!("cannot handle signal {signal}: {err}"))?;
    }
    let check = || {
        if interrupted.load(Ordering::SeqCst) {
            Err("interrupted".to_owned())
        } else {
            Ok(())
        }
    };

    let log_path = util::target_dir().join("demo-build.log");
    std::fs::create_dir_all(util::target_dir())
        .map_err(|err| format!("cannot create the target dir: {err}"))?;
    say(&format!(
        "building the images and the demo's peers (output in {})",
        log_path.display()
    ));
    println!(
        "  the first run installs podman, compiles the tools (about 6 minutes on 2 cores) and builds \
         PostgreSQL and nginx images from Debian's packages (debootstrap, about 3 minutes); later runs \
         take seconds"
    );
    util::ensure_packages(
        &[
            "podman",
            "catatonit",
            "netavark",
            "aardvark-dns",
            "debootstrap",
            "busybox-static",
            "ca-certificates",
            "musl-tools",
        ],
        true,
    )?;
    let started = Instant::now();
    let log =
        File::create(&log_path).map_err(|err| format!("cannot create {}: {err}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("{}: {err}", log_path.display()))?;
    let status =
        Command::new(std::env::current_exe().map_err(|err| format!("cannot find xtask itself: {err}"))?)
            .args(["images", "--pods"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .status()
            .map_err(|err| format!("cannot run the image build: {err}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(format!(
            "building the images failed; the end of {}:\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    println!("  done in {:.0}s", started.elapsed().as_secs_f64());
    check()?;

    let podman = Podman::setup()?;
    podman.ensure_network(NETWORK)?;
    let postgres = Manifest::load("dependencies/postgres.yaml");
    let webapp = Manifest::load("production-deployment/deployment.yaml");
    for manifest in [&postgres, &webapp] {
        podman.remove_configmap_volumes(manifest);
    }
    let secrets = postgres.secrets();
    for (name, data) in &secrets {
        podman.create_secret(name, data)?;
    }
    // The podman-ready YAML is kept, so the printed commands can be run after the demo.
    let kept = util::target_dir().join("demo");
    std::fs::create_dir_all(&kept).map_err(|err| format!("cannot create {}: {err}", kept.display()))?;
    let webapp_yaml = webapp.for_podman("webapp", "webapp", &secrets);
    let postgres_yaml = postgres.for_podman("postgres", "postgres", &secrets);
    let webapp_file: PathBuf = kept.join("webapp.podman.yaml");
    let postgres_file: PathBuf = kept.join("postgres.podman.yaml");
    for (file, yaml) in [(&webapp_file, &webapp_yaml), (&postgres_file, &postgres_yaml)] {
        std::fs::write(file, yaml).map_err(|err| format!("cannot write {}: {err}", file.display()))?;
    }

    say(
        "1. the webapp pod (examples/production-deployment/deployment.yaml) starts; its database does not exist yet",
    );
    println!(
        "  init containers, in order: wait-for-db (pitcrew/wait), run-migrations (pitcrew/migrate), config-generator (pitcrew/render)"
    );
    println!("  then together: webapp (nginx, the app) and log-forwarder (pitcrew/tail)");
    let app = podman.play(&webapp_yaml, NETWORK, "webapp")?;
    let containers = [
        "wait-for-db",
        "run-migrations",
        "config-generator",
        "webapp",
        "log-forwarder",
    ];
    let mut follower = LogFollower {
        printed: BTreeMap::new(),
    };
    let late = Instant::now();
    while late.elapsed() < DATABASE_LATE_BY {
        check()?;
        app.play_result()?;
        follower.print_new(&app, &containers);
        std::thread::sleep(Duration::from_millis(250));
    }

    say(&format!(
        "2. PostgreSQL comes up, {}s late (examples/dependencies/postgres.yaml)",
        DATABASE_LATE_BY.as_secs()
    ));
    let database = podman.play(&postgres_yaml, NETWORK, "postgres")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !(running(&app, "webapp") && running(&app, "log-forwarder")) {
        check()?;
        if let Err(err) = app.play_result() {
            return Err(format!("{err}\n{}", app.describe()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the app did not start within 3 minutes:\n{}",
                app.describe()
            ));
        }
        follower.print_new(&app, &containers);
        std::thread::sleep(Duration::from_millis(250));
    }
    follower.print_new(&app, &containers);

    say("3. the app runs: three requests to it, and the log sidecar prints them");
    for path in ["/", "/orders?page=1", "/health"] {
        let answer = app.http_get("webapp", 8080, path)?;
        let status = answer.lines().next().unwrap_or_default();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
        println!("  GET {path:<16} {status}  {body}");
    }
    let shown = Instant::now();
    while shown.elapsed() < Duration::from_secs(10) && !app.logs("log-forwarder").contains("/health") {
        std::thread::sleep(Duration::from_millis(200));
    }
    follower.print_new(&app, &containers);

    say("4. what happened, by the clocks");
    let ready = database.logged_at("postgres", "database system is ready to accept connections");
    let wait = app.state("wait-for-db");
    let started_app = app.state("webapp").and_then(|state| state.started_at);
    if let (Some(ready), Some(wait), Some(started_app)) = (ready, wait, started_app) {
        let millis = |later: std::time::SystemTime| {
            later.duration_since(ready).map_or_else(
                |err| -(err.duration().as_secs_f64() * 1e3),
                |d| d.as_secs_f64() * 1e3,
            )
        };
        if let Some(finished) = wait.finished_at {
            println!(
                "  pitcrew/wait saw PostgreSQL ready {:.0} ms after it said so",
                millis(finished)
            );
        }
        println!(
            "  the app started {:.0} ms after PostgreSQL was ready (migrations and config in between)",
            millis(started_app)
        );
    }
    let migrated = database
        .psql(
            "postgres",
            "webapp",
            "webapp",
            "SELECT version, dirty FROM schema_migrations",
        )
        .unwrap_or_default();
    println!("  schema_migrations: version|dirty = {migrated}");
    let files = app
        .exec("webapp", &["ls", "-l", "/etc/nginx/conf.d"])
        .unwrap_or_default();
    println!("  rendered into the shared emptyDir (/etc/nginx/conf.d in the app):");
    for line in files.lines().skip(1) {
        println!("    {line}");
    }

    say("5. look around yourself (before the demo cleans up, or after: play the kept YAML again)");
    let env = podman.env_line();
    println!("  {env} \\\n    podman pod ps");
    println!("  {env} \\\n    podman logs webapp-wait-for-db");
    println!("  {env} \\\n    podman logs -f webapp-log-forwarder");
    println!(
        "  # again, after the demo:\n  {env} \\\n    sh -c 'podman network create {NETWORK}; podman kube play --network {NETWORK} {} & sleep 5; podman kube play --network {NETWORK} {}; wait'",
        webapp_file.display(),
        postgres_file.display()
    );
    println!(
        "  In a cluster: kubectl apply -f examples/dependencies/postgres.yaml -f examples/production-deployment/"
    );

    say("6. kubectl delete: podman kube down sends SIGTERM; the sidecar prints what it has and exits 0");
    let took = app.stop()?;
    follower.print_new(&app, &containers);
    println!(
        "  the webapp pod stopped in {:.1}s (the grace period is 10 s); log-forwarder exited with {}",
        took.as_secs_f64(),
        app.state("log-forwarder")
            .map_or_else(|| "?".into(), |state| state.exit_code.to_string())
    );
    app.down()?;
    drop(database);
    drop(app);
    let _ = podman.output(&["network", "rm", "-f", NETWORK]);
    say(
        "done: pods and network removed. The manifests are in examples/; the README says how each scenario is tested.",
    );
    Ok(())
}
