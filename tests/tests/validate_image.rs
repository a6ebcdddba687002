//! End-to-end tests of the `pitcrew/validate:dev` image, run with docker the way a pod runs an
//! init container: the image's own uid 65532, a read-only root, the config and a TLS Secret
//! mounted read-only, the termination log a file the test reads.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use pitcrew_e2e::{Finished, VALIDATE_IMAGE, ready, run};

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["listen", "database"],
  "properties": {
    "listen": {"type": "string", "pattern": "^:[0-9]+$"},
    "database": {
      "type": "object",
      "required": ["host", "pool"],
      "properties": {"pool": {"type": "integer", "minimum": 1}}
    }
  }
}"#;

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

/// The pod's volumes on the host, readable by uid 65532 (a Secret volume's default mode is
/// 0644).
struct Volumes {
    dir: tempfile::TempDir,
}

impl Volumes {
    fn new(config: &str) -> Volumes {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["config", "tls"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("config/config.json"), config).unwrap();
        std::fs::write(dir.path().join("config/config.schema.json"), SCHEMA).unwrap();
        let certs = pitcrew_testkit::certs::write(&dir.path().join("tls"), &["webapp.default.svc"]);
        std::fs::set_permissions(&certs.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = dir.path().join("termination-log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        Volumes { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn validate(&self, env: &[(&str, &str)], args: &[&str]) -> Finished {
        let mounts = [
            format!("{}:/config:ro", self.path("config").display()),
            format!("{}:/tls:ro", self.path("tls").display()),
            format!("{}:/dev/termination-log", self.path("termination-log").display()),
        ];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut docker: Vec<&str> = vec!["--rm", "--read-only", "--network", "none"];
        for mount in &mounts {
            docker.extend(["-v", mount]);
        }
        for pair in &env {
            docker.extend(["-e", pair]);
        }
        docker.push(VALIDATE_IMAGE);
        docker.extend_from_slice(args);
        run(&docker, RUN_DEADLINE)
    }
}

const ARGS: &[&str] = &[
    "--schema",
    "/config/config.schema.json",
    "/config/config.json",
    "--cert",
    "/tls/server.pem",
    "--key",
    "/tls/server.key",
    "--ca",
    "/tls/ca.pem",
    "--dns-name",
    "webapp.default.svc",
    "--min-validity",
    "7d",
    "--env",
    "DATABASE_PASSWORD",
];

/// A value a careless log line would show.
const PASSWORD: &str = "pa$$w0rd&x=1 y";

#[test]
fn a_valid_config_and_certificate_pass_as_uid_65532_on_a_read_only_root() {
    if !ready(VALIDATE_IMAGE) {
        return;
    }
    let volumes = Volumes::new(r#"{"listen": ":8080", "database": {"host": "db", "pool": 5}}"#);
    let finished = volumes.validate(&[("DATABASE_PASSWORD", PASSWORD)], ARGS);
    assert_eq!(finished.code, 0, "{}", describe(&finished));
    assert!(!finished.stderr.contains(PASSWORD), "{}", describe(&finished));
}

#[test]
fn every_problem_is_reported_in_one_run_and_the_termination_log_says_so() {
    if !ready(VALIDATE_IMAGE) {
        return;
    }
    // Two schema violations, a name the certificate does not cover, an unset variable.
    let volumes = Volumes::new(r#"{"listen": "8080", "database": {"host": "db", "pool": 0}}"#);
    let mut args = ARGS.to_vec();
    args.extend(["--dns-name", "other.example", "--env", "API_TOKEN"]);
    let finished = volumes.validate(&[("DATABASE_PASSWORD", PASSWORD)], &args);
    assert_eq!(finished.code, 1, "{}", describe(&finished));
    for needle in ["/listen", "/database/pool", "other.example", "API_TOKEN"] {
        assert!(
            finished.stderr.contains(needle),
            "{needle} not reported:\n{}",
            describe(&finished)
        );
    }
    assert!(!finished.stderr.contains(PASSWORD), "{}", describe(&finished));
    let log = std::fs::read_to_string(volumes.path("termination-log")).unwrap();
    assert!(!log.trim().is_empty(), "the termination log is empty");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn a_missing_file_exits_66_and_names_it() {
    if !ready(VALIDATE_IMAGE) {
        return;
    }
    let volumes = Volumes::new("{}");
    let finished = volumes.validate(&[], &["/config/absent.yaml"]);
    assert_eq!(finished.code, 66, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("/config/absent.yaml"),
        "{}",
        describe(&finished)
    );
}
