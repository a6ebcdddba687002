//! Every `pitcrew/fetch` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the pod's volumes made in a temp dir and the paths in the args pointed
//! there, the example's data-lake URL pointed at a local nginx serving the files (and their
//! SHA256SUMS), `s3://` objects put in a local moto with the AWS variables a pod would have.
//! Each container must succeed, then succeed again as after a pod restart without downloading
//! anything twice.

mod support;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;

use pitcrew_testkit::examples;
use pitcrew_testkit::moto::MotoPeer;
use pitcrew_testkit::nginx::NginxPeer;
use support::{BIN, sha256};

/// What the examples' `DATA_SOURCE_URL` names (a cluster-external data lake, or the
/// `data-lake` pod of examples/dependencies); the test serves it from nginx instead, so no
/// name is ever looked up.
const DATA_LAKES: &[&str] = &[
    "https://data-lake.company.com/raw-data",
    "http://data-lake/raw-data",
];

/// A config.json that the example's schema accepts.
const CONFIG_JSON: &str = r#"{"listen": ":8080", "database": {"host": "db", "pool": 5}}"#;

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

#[test]
fn every_fetch_container_in_the_examples_downloads_and_reruns_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/fetch");
    assert!(!containers.is_empty(), "no pitcrew/fetch container in examples/");
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let Some(moto) = MotoPeer::start() else {
        return;
    };
    let files = nginx.files_dir();
    let mut sums = String::new();
    for (name, body) in [
        ("customers.csv", "id,name,email\n1,Ada,ada@example.com\n"),
        ("orders.csv", "id,customer_id,amount\n7,1,19.99\n"),
        (
            "batch.json",
            r#"{"batch": "2026-02-03", "files": ["orders.csv"], "record_counts": {"orders": 1}}"#,
        ),
    ] {
        std::fs::write(files.join(name), body).unwrap();
        let _ = writeln!(sums, "{}  {name}", sha256(body.as_bytes()));
    }
    std::fs::write(files.join("SHA256SUMS"), sums).unwrap();
    let local_lake = nginx.http_url("/files");

    for (pod, container) in containers {
        let context = &container.context;
        assert_eq!(
            container.section, "initContainers",
            "{context}: fetch belongs in initContainers"
        );
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let args: Vec<String> = container
            .redirected_args(volumes.path())
            .into_iter()
            .map(|arg| {
                DATA_LAKES
                    .iter()
                    .fold(arg, |arg, lake| arg.replace(lake, &local_lake))
            })
            .collect();
        assert!(
            !args.iter().any(|arg| arg.contains("://data-lake")),
            "{context}: a data lake URL the test does not know: {args:?}"
        );
        let mut env = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-fetch"
            );
        }
        for arg in &args {
            if let Some(rest) = arg.strip_prefix("s3://") {
                let (bucket, key) = rest.split_once('/').unwrap();
                moto.create_bucket(bucket);
                moto.put_object(bucket, key, CONFIG_JSON.as_bytes());
                // What a Secret (or the EKS web-identity webhook) gives the pod.
                env.insert("AWS_ACCESS_KEY_ID".into(), "AKIAEXAMPLETEST00001".into());
                env.insert("AWS_SECRET_ACCESS_KEY".into(), examples::SECRET.into());
                env.insert("AWS_ENDPOINT_URL".into(), moto.endpoint());
            }
        }

        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(0), "{context}: args {args:?}:\n{stderr}");
        assert!(
            !stderr.contains(examples::SECRET),
            "{context}: a secret leaked:\n{stderr}"
        );
        let saved: Vec<std::path::PathBuf> = args
            .iter()
            .filter(|arg| arg.starts_with(&volumes.path().display().to_string()))
            .map(std::path::PathBuf::from)
            .collect();
        assert!(!saved.is_empty(), "{context}: no destination in {args:?}");
        for path in &saved {
            assert!(path.exists(), "{context}: {} was not made", path.display());
        }

        // The pod restarts: everything is there and verified, so nothing is fetched again.
        let requests = nginx.access_log().lines().count();
        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(0), "{context}: the re-run failed:\n{stderr}");
        let again = nginx.access_log().lines().count();
        // The checksums file itself is fetched again (it may have changed); the data is not.
        let data_requests = nginx
            .access_log()
            .lines()
            .skip(requests)
            .filter(|line| line.contains(".csv"))
            .count();
        assert_eq!(
            data_requests, 0,
            "{context}: re-run downloaded data again ({requests} → {again} requests)"
        );
    }
}
