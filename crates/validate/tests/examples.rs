//! Every `pitcrew/validate` container in `examples/` works with the real binary, run the way
//! the kubelet would run it: the pod's volumes made in a temp dir (the schema ConfigMap laid
//! out with `..data`), what the earlier init containers leave (config.json, batch.json) and a
//! TLS Secret
//! for the names the args check put there, Secret env references replaced by a value full of
//! special characters. A good config passes; a broken one fails with every problem named and
//! the secret never shown.

mod common;

use std::collections::HashMap;
use std::process::Command;

use pitcrew_testkit::examples::{self, SECRET};

use common::BIN;

/// The documents the examples check, by file name: one their schema accepts, one it refuses
/// three times, and the JSON pointers of the three problems.
const DOCUMENTS: &[(&str, &str, &str, [&str; 3])] = &[
    (
        "config.json",
        r#"{"listen": ":8080", "database": {"host": "db", "pool": 5}}"#,
        r#"{"listen": "8080", "database": {"host": "", "pool": 500}}"#,
        ["/listen", "/database/host", "/database/pool"],
    ),
    (
        "batch.json",
        r#"{"batch": "2026-02-03", "files": ["orders.csv"], "record_counts": {"orders": 4}}"#,
        r#"{"batch": "yesterday", "files": [], "record_counts": {"orders": -1}}"#,
        ["/batch", "/files", "/record_counts/orders"],
    ),
];

fn run(args: &[String], env: &HashMap<String, String>) -> (Option<i32>, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

#[test]
fn every_validate_container_in_the_examples_passes_a_good_config_and_names_every_problem() {
    let containers = examples::containers_of("pitcrew/validate");
    assert!(
        !containers.is_empty(),
        "no pitcrew/validate container in examples/"
    );
    for (pod, container) in containers {
        let context = &container.context;
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let args = container.redirected_args(volumes.path());
        let env = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-validate"
            );
        }
        // What the Secret volume and the earlier init containers would hold.
        let names: Vec<&str> = args
            .iter()
            .zip(args.iter().skip(1))
            .filter(|(flag, _)| *flag == "--dns-name")
            .map(|(_, name)| name.as_str())
            .collect();
        if let (Some(cert), Some(key)) = (after(&args, "--cert"), after(&args, "--key")) {
            let made = tempfile::tempdir().unwrap();
            let certs = pitcrew_testkit::certs::write(made.path(), &names);
            std::fs::copy(&certs.cert, cert).unwrap();
            std::fs::copy(&certs.key, key).unwrap();
        }
        let (config, (_, good, bad, pointers)) = args
            .iter()
            .find_map(|arg| {
                DOCUMENTS
                    .iter()
                    .find(|(name, ..)| arg.ends_with(name))
                    .map(|document| (arg, document))
            })
            .unwrap_or_else(|| panic!("{context}: no known document among {args:?}"));
        std::fs::create_dir_all(std::path::Path::new(config).parent().unwrap()).unwrap();
        std::fs::write(config, good).unwrap();

        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(0), "{context}: args {args:?}:\n{stderr}");
        assert!(!stderr.contains(SECRET), "{context}: a secret leaked:\n{stderr}");

        std::fs::write(config, bad).unwrap();
        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(1), "{context}: a broken config passed:\n{stderr}");
        for pointer in pointers {
            assert!(
                stderr.contains(pointer),
                "{context}: {pointer} not reported:\n{stderr}"
            );
        }
        assert!(!stderr.contains(SECRET), "{context}: a secret leaked:\n{stderr}");
    }
}
