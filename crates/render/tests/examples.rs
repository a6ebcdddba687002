//! Every `pitcrew/render` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the pod's volumes are made in a temp dir (its ConfigMaps laid out with
//! `..data`), the paths in the args pointed there, Secret references replaced by a value full
//! of special characters. Each container must pass `--dry-run` (writing nothing), then run for
//! real, then run again as after a pod restart: the secret kept, nothing rewritten.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output};

use pitcrew_testkit::examples::{self, SECRET};

use common::{BIN, snapshot};

fn run(args: &[String], env: &HashMap<String, String>, dry_run: bool) -> Output {
    let mut command = Command::new(BIN);
    if dry_run {
        command.arg("--dry-run");
    }
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Whether `name` is a `PITCREW_*` variable the binary reads (from its `--help`).
fn is_env_twin(name: &str) -> bool {
    examples::is_env_twin(BIN, name)
}

#[test]
fn every_render_container_in_the_examples_runs_and_reruns_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/render");
    assert!(!containers.is_empty(), "no pitcrew/render container in examples/");
    for (pod, container) in containers {
        let context = &container.context;
        assert_eq!(
            container.section, "initContainers",
            "{context}: render belongs in initContainers"
        );
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let args = container.redirected_args(volumes.path());
        let env = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                is_env_twin(var),
                "{context}: {var} is not an env twin of pitcrew-render"
            );
        }

        let before = snapshot(volumes.path());
        let dry = run(&args, &env, true);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&dry.stdout),
            String::from_utf8_lossy(&dry.stderr),
        );
        assert_eq!(
            dry.status.code(),
            Some(0),
            "{context}: --dry-run rejected args {args:?}:\n{stderr}"
        );
        assert!(stdout.contains("would "), "{context}: {stdout}");
        assert!(
            !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
            "{context}: a value leaked"
        );
        assert_eq!(
            snapshot(volumes.path()),
            before,
            "{context}: --dry-run wrote something"
        );

        let first = run(&args, &env, false);
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert_eq!(first.status.code(), Some(0), "{context}: {stderr}");
        assert!(
            stderr.contains("done: ") && !stderr.contains("done: 0 written"),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cr3t"), "{context}: a value leaked:\n{stderr}");
        let written = snapshot(volumes.path());
        // The Secret's value made it into some output, verbatim.
        let uses_secret = env.values().any(|value| value == SECRET);
        if uses_secret {
            assert!(
                written
                    .values()
                    .any(|entry| String::from_utf8_lossy(&entry.content).contains(SECRET)),
                "{context}: no output holds the Secret's value"
            );
        }

        let again = run(&args, &env, false);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert_eq!(again.status.code(), Some(0), "{context}: {stderr}");
        assert!(stderr.contains("done: 0 written"), "{context}: {stderr}");
        assert_eq!(
            snapshot(volumes.path()),
            written,
            "{context}: a pod restart changed the outputs or the secret"
        );
    }
}
