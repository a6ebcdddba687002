//! Every `pitcrew/wait` container in `examples/` is accepted by the real binary, run the way
//! the kubelet would run it.
//!
//! Not a re-implementation of the CLI's rules: each container's `args` and `env`, read by
//! `pitcrew_testkit::examples` as the kubelet would pass them (a Secret becomes a password full
//! of URL-special characters), go to `pitcrew-wait --dry-run`, which must accept them. Files
//! the container would find in its volumes (a CA bundle from a ConfigMap, a password from a
//! Secret) are made in a temp dir and the paths pointed there.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use pitcrew_testkit::examples::{self, Container, SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-wait");

/// Makes the file each volume path in `value` names, as the container would find it: a CA
/// certificate for `.crt`/`.pem`, else a password.
fn make_volume_files(value: &str, root: &Path, ca: &Path) {
    let root_text = root.to_string_lossy();
    let mut rest = value;
    while let Some(start) = rest.find(root_text.as_ref()) {
        let tail = &rest[start..];
        let end = tail.find(['&', ' ', '"', '\'', ',']).unwrap_or(tail.len());
        let path = Path::new(&tail[..end]);
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or_default();
            if matches!(extension, "crt" | "pem") {
                std::fs::copy(ca, path).unwrap();
            } else {
                std::fs::write(path, format!("{SECRET}\n")).unwrap();
            }
        }
        rest = &tail[end..];
    }
}

/// Runs one `pitcrew/wait` container's args and env through `pitcrew-wait --dry-run`.
fn check_wait_container(pod: &examples::Pod, container: &Container) {
    let context = &container.context;
    let files = tempfile::tempdir().unwrap();
    let ca = pitcrew_testkit::certs::write(files.path(), &["localhost"]).ca;
    let root = files.path().join("volumes");
    pod.materialize(&root);
    let env: HashMap<String, String> = container.redirected_env(&root);
    // No args is fine when PITCREW_WAIT_TARGETS names the targets; the binary decides.
    let args = container.redirected_args(&root);
    for value in args.iter().chain(env.values()) {
        make_volume_files(value, &root, &ca);
    }
    for var in env.keys() {
        if var.starts_with("PITCREW_") {
            assert!(
                is_env_twin(var),
                "{context}: {var} is not an env twin of any pitcrew-wait flag"
            );
        }
    }
    let output = Command::new(BIN)
        .arg("--dry-run")
        .args(&args)
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{context}: pitcrew-wait --dry-run rejected args {args:?} with env {env:?}:\n{stderr}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("  ")),
        "{context}: no target:\n{stdout}"
    );
    assert!(
        !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
        "{context}: a secret reached the output:\n{stdout}{stderr}"
    );
}

/// Whether `name` is a `PITCREW_*` variable the binary reads (from its `--help`).
fn is_env_twin(name: &str) -> bool {
    examples::is_env_twin(BIN, name)
}

#[test]
fn the_binary_accepts_every_wait_container_in_the_examples() {
    let containers = examples::containers_of("pitcrew/wait");
    assert!(containers.len() >= 6, "the wait patterns: {}", containers.len());
    for (pod, container) in &containers {
        assert_eq!(
            container.section, "initContainers",
            "{}: wait belongs in initContainers",
            container.context
        );
        check_wait_container(pod, container);
    }
}
