//! `cargo xtask demo`: pitcrew/wait as an init container, shown with plain docker.
//!
//! A pod is emulated the way Kubernetes builds one: a "pause" container owns the network
//! namespace and every other container joins it (`--network container:<pod>`), so they all
//! share one loopback. The dependency starts listening only after 5 s; the init container
//! (pitcrew/wait) holds back the app until then; the app starts only after wait exits 0.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::images;
use crate::util::{self, Result};

const POD: &str = "pitcrew-demo-pod";
const DB: &str = "pitcrew-demo-db";
const WAIT: &str = "pitcrew-demo-wait";
const APP: &str = "pitcrew-demo-app";

/// Removes the demo's containers when dropped: on success, failure and Ctrl-C alike.
struct Containers;

impl Containers {
    fn remove_all() {
        // `docker rm -f` of a missing container only complains; the result is the same.
        let _ = util::capture(Command::new("docker").args(["rm", "-f", APP, WAIT, DB, POD]));
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        println!("\ncleaning up: docker rm -f {APP} {WAIT} {DB} {POD}");
        Containers::remove_all();
    }
}

fn say(text: &str) {
    println!("\n\u{2500}\u{2500} {text}");
}

/// Runs the demo.
// The demo reads top to bottom like the story it tells; splitting it would hide the steps.
#[allow(clippy::too_many_lines)]
pub fn run() -> Result {
    // Ctrl-C reaches the whole foreground process group: docker run passes it on to its
    // container and returns; we must survive it to clean up, so note it instead of dying.
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

    say("building the images (cargo xtask images)");
    images::build_all()?;
    check()?;

    // Leftovers of an earlier, killed demo would make `--name` clash.
    Containers::remove_all();
    let _cleanup = Containers;

    say(&format!(
        "1. the pod: {POD} owns the network namespace (like Kubernetes' pause container); \
         --network none, so it has only its own loopback"
    ));
    util::run(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        POD,
        "--network",
        "none",
        "--read-only",
        "pitcrew/busybox:dev",
        "sleep",
        "600",
    ]))?;

    let pod_net = format!("container:{POD}");
    say(&format!(
        "2. the dependency: {DB} joins the pod and starts listening on 127.0.0.1:8080 only \
         after 5 s (a database still starting up)"
    ));
    util::run(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        DB,
        "--network",
        &pod_net,
        "--read-only",
        "pitcrew/busybox:dev",
        "sh",
        "-c",
        "echo 'db: starting up (5 s)'; sleep 5; echo 'db: listening on 127.0.0.1:8080'; \
         exec nc -ll -p 8080 -e echo 'hello from db'",
    ]))?;

    say(&format!(
        "3. the init container: {WAIT} runs pitcrew/wait:dev tcp://127.0.0.1:8080 in the pod \
         (read-only root, uid 65532); its log follows"
    ));
    let status = Command::new("docker")
        .args([
            "run",
            "--name",
            WAIT,
            "--network",
            &pod_net,
            "--read-only",
            "pitcrew/wait:dev",
            "tcp://127.0.0.1:8080",
            "--timeout",
            "1m",
        ])
        .status()
        .map_err(|err| format!("cannot run docker: {err}"))?;
    check()?;
    let code = status.code().unwrap_or(-1);
    println!("\n{WAIT} exited with code {code}");
    if code != 0 {
        return Err(format!(
            "the init container failed (exit {code}); Kubernetes would not start the app. \
             The dependency's log:\n{}",
            logs(DB)
        ));
    }

    say(&format!(
        "4. wait exited 0, so the app starts: {APP} connects to the dependency"
    ));
    util::run(Command::new("docker").args([
        "run",
        "--name",
        APP,
        "--network",
        &pod_net,
        "--read-only",
        "pitcrew/busybox:dev",
        "sh",
        "-c",
        "echo 'app: starting'; echo \"app: the db says: $(nc 127.0.0.1 8080 </dev/null)\"",
    ]))?;
    check()?;

    say(&format!("the dependency's log ({DB})"));
    print!("{}", logs(DB));
    say(
        "done: the app never saw a refused connection. In a pod spec this is one init container: \
         image: pitcrew/wait, args: [\"tcp://db:8080\"]",
    );
    Ok(())
}

fn logs(container: &str) -> String {
    Command::new("docker")
        .args(["logs", container])
        .output()
        .map_or_else(
            |err| format!("(cannot read the logs: {err})\n"),
            |output| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            },
        )
}
