//! Every `pitcrew/migrate` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: the migrations ConfigMap laid out with its `..data` symlinks, the
//! database host pointed at a real PostgreSQL (with TLS, for an example's `sslmode=require`)
//! and the Secret's user and password, in the URL or in PGPASSWORD, replaced by the test
//! server's. Three copies start
//! at once, as three replicas would on a rollout: each migration is applied once. A fourth run,
//! as after a pod restart, applies nothing.

use std::collections::HashMap;
use std::process::{Command, Output};

use pitcrew_testkit::examples::{self, SECRET};
use pitcrew_testkit::postgres::{PASSWORD, PostgresPeer, USER};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-migrate");

/// Where the examples' database lives in a cluster (a Service's full name, or its short name
/// from the same namespace).
const CLUSTER_HOSTS: &[&str] = &["postgres.database.svc.cluster.local:5432", "postgres:5432"];

fn spawn(args: &[String], env: &HashMap<String, String>) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_migrate_container_in_the_examples_applies_once_with_three_replicas_at_once() {
    let containers = examples::containers_of("pitcrew/migrate");
    assert!(
        !containers.is_empty(),
        "no pitcrew/migrate container in examples/"
    );
    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    let peer = prepared.with_tls(&["127.0.0.1", "localhost"]).start();
    for (index, (pod, container)) in containers.into_iter().enumerate() {
        let context = &container.context;
        assert_eq!(
            container.section, "initContainers",
            "{context}: migrate belongs in initContainers"
        );
        let database = format!("example_{index}");
        peer.psql(&format!("CREATE DATABASE {database} OWNER {USER}"));
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let local = format!("127.0.0.1:{}", peer.port());
        let args: Vec<String> = container
            .redirected_args(volumes.path())
            .into_iter()
            .map(|mut arg| {
                for host in CLUSTER_HOSTS {
                    arg = arg
                        .replace(
                            &format!("{SECRET}:{SECRET}@{host}"),
                            &format!("{USER}:{PASSWORD}@{local}"),
                        )
                        .replace(&format!("{SECRET}@{host}"), &format!("{USER}@{local}"))
                        .replace(&format!("webapp@{host}"), &format!("{USER}@{local}"));
                }
                arg.replace("/webapp?", &format!("/{database}?"))
            })
            .collect();
        assert!(
            args.iter().any(|arg| arg.contains(&format!("@{local}/"))),
            "{context}: the database URL was not pointed at the test server: {args:?}"
        );
        let mut env = container.redirected_env(volumes.path());
        if env.get("PGPASSWORD").is_some_and(|value| value == SECRET) {
            env.insert("PGPASSWORD".into(), PASSWORD.into());
        }
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-migrate"
            );
        }

        let replicas: Vec<_> = (0..3).map(|_| spawn(&args, &env)).collect();
        let mut appliers = 0;
        for replica in replicas {
            let output = replica.wait_with_output().unwrap();
            let log = stderr(&output);
            assert_eq!(output.status.code(), Some(0), "{context}: {args:?}:\n{log}");
            assert!(!log.contains(PASSWORD), "{context}: the password leaked");
            if log.contains(" applied in ") {
                appliers += 1;
            } else {
                assert!(
                    log.contains("no change"),
                    "{context}: neither applied nor unchanged:\n{log}"
                );
            }
        }
        assert_eq!(
            appliers, 1,
            "{context}: exactly one replica applies the migrations"
        );
        let again = spawn(&args, &env).wait_with_output().unwrap();
        let log = stderr(&again);
        assert_eq!(
            again.status.code(),
            Some(0),
            "{context}: the re-run failed:\n{log}"
        );
        assert!(
            log.contains("no change"),
            "{context}: the re-run applied something:\n{log}"
        );
    }
}
