//! Every `pitcrew/prepare` container in `examples/` works with the real binary, run the way
//! the kubelet would run it: each pod's volumes are made in a temp dir (its ConfigMaps laid
//! out with `..data`), the paths in the args pointed there, and the pod's prepare containers
//! run in order, twice (a pod restart), the second run changing nothing.
//!
//! A container with a `--sysctl` step runs only with `--dry-run`: the test must never change
//! a kernel parameter of the machine it runs on.

use std::collections::HashMap;
use std::process::{Command, Output};

use pitcrew_testkit::examples::{self, Container};
use pitcrew_testkit::is_root;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-prepare");

fn run(args: &[String], env: &HashMap<String, String>, dry_run: bool) -> Output {
    let mut command = Command::new(BIN);
    if dry_run {
        command.arg("--dry-run");
    }
    command.args(args).env_clear().envs(env).output().unwrap()
}

/// Whether `name` is a `PITCREW_*` variable the binary reads (from its `--help`).
fn is_env_twin(name: &str) -> bool {
    examples::is_env_twin(BIN, name)
}

#[test]
fn every_prepare_container_in_the_examples_runs_and_reruns_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/prepare");
    assert!(
        containers.len() >= 2,
        "the prepare examples: {}",
        containers.len()
    );
    let mut pods: Vec<(examples::Pod, Vec<Container>)> = Vec::new();
    for (pod, container) in containers {
        assert_eq!(
            container.section, "initContainers",
            "{}: prepare belongs in initContainers",
            container.context
        );
        match pods.iter_mut().find(|(known, _)| known.context == pod.context) {
            Some((_, list)) => list.push(container),
            None => pods.push((pod, vec![container])),
        }
    }
    for (pod, containers) in pods {
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        for round in ["first run", "pod restart"] {
            for container in &containers {
                let context = format!("{} ({round})", container.context);
                let args = container.redirected_args(volumes.path());
                let env = container.redirected_env(volumes.path());
                for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
                    assert!(
                        is_env_twin(var),
                        "{context}: {var} is not an env twin of pitcrew-prepare"
                    );
                }
                let sets_sysctl = args.iter().any(|arg| arg == "--sysctl")
                    || env.get("PITCREW_PREPARE_STEPS").is_some_and(|steps| {
                        steps.lines().any(|line| line.trim_start().starts_with("sysctl"))
                    });
                // chown needs root; without it, the dry run still checks every step.
                let dry_run = sets_sysctl || !is_root();
                let output = run(&args, &env, dry_run);
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert_eq!(
                    output.status.code(),
                    Some(0),
                    "{context}: pitcrew-prepare rejected args {args:?}:\n{stderr}"
                );
                if !dry_run {
                    // The volumes start empty: the first run has work to do, the second none.
                    let wanted = if round == "first run" {
                        "done: "
                    } else {
                        "nothing to change"
                    };
                    assert!(stderr.contains(wanted), "{context}: wanted {wanted:?}:\n{stderr}");
                }
            }
        }
    }
}
