//! End-to-end tests of the `pitcrew/render:dev` image, run with docker the way a pod runs an
//! init container: the image's own uid 65532, a read-only root, a ConfigMap-like volume of
//! templates (with the kubelet's `..data` symlinks) and an emptyDir-like output volume.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use pitcrew_e2e::{Finished, RENDER_IMAGE, ready, run};
use pitcrew_testkit::examples::configmap_volume;

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

/// A pod's volumes on the host: templates (ConfigMap layout), an output dir owned by 65532
/// (as Kubernetes' world-writable emptyDir lets the image's user write), a termination log.
struct Volumes {
    dir: tempfile::TempDir,
}

impl Volumes {
    fn new(templates: &[(&str, &str)]) -> Volumes {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, String> = templates
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        configmap_volume(&dir.path().join("templates"), &data);
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::set_permissions(dir.path().join("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.path().join("termination-log"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("termination-log"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        Volumes { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn termination_log(&self) -> String {
        std::fs::read_to_string(self.path("termination-log")).unwrap()
    }

    /// `docker run --rm --read-only` with the volumes mounted, env, then the image's args.
    fn render(&self, env: &[(&str, &str)], args: &[&str]) -> Finished {
        let mounts = [
            format!("{}:/config-templates:ro", self.path("templates").display()),
            format!("{}:/shared-config", self.path("out").display()),
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
        docker.push(RENDER_IMAGE);
        docker.extend_from_slice(args);
        run(&docker, RUN_DEADLINE)
    }
}

fn stat(path: &Path) -> (u64, i64, i64, u32, u32, u32) {
    let metadata = std::fs::metadata(path).unwrap();
    (
        metadata.ino(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.uid(),
        metadata.gid(),
        metadata.mode() & 0o7777,
    )
}

const ARGS: &[&str] = &[
    "--in",
    "/config-templates",
    "--out",
    "/shared-config",
    "--strict",
    "--secret",
    "jwt-secret=base64:32",
];

#[test]
fn renders_as_uid_65532_on_a_read_only_root_and_a_rerun_keeps_the_secret_and_the_files() {
    if !ready(RENDER_IMAGE) {
        return;
    }
    let volumes = Volumes::new(&[
        (
            "app.yaml",
            "db: ${DB_HOST}\npassword: ${DB_PASSWORD}\njwt: ${jwt_secret}\n",
        ),
        ("static.conf", "no references here\n"),
    ]);
    let password = "s3cr3t&/#?@:x y";
    let env = [("DB_HOST", "postgres.db.svc"), ("DB_PASSWORD", password)];
    let first = volumes.render(&env, ARGS);
    assert_eq!(first.code, 0, "{}", describe(&first));

    let secret_path = volumes.path("out/jwt-secret");
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert_eq!(secret.len(), 44, "32 bytes in base64: {secret:?}");
    let app = std::fs::read_to_string(volumes.path("out/app.yaml")).unwrap();
    assert_eq!(
        app,
        format!("db: postgres.db.svc\npassword: {password}\njwt: {secret}\n")
    );
    let (_, _, _, uid, gid, mode) = stat(&secret_path);
    assert_eq!(
        (uid, gid, mode),
        (65532, 65532, 0o600),
        "the image's user owns the secret, 0600"
    );
    assert_eq!(stat(&volumes.path("out/app.yaml")).3, 65532);
    // The ConfigMap's internals are not outputs.
    let mut names: Vec<String> = std::fs::read_dir(volumes.path("out"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.yaml", "jwt-secret", "static.conf"]);
    for output in [&first.stdout, &first.stderr] {
        assert!(
            !output.contains("s3cr3t") && !output.contains(&secret),
            "a value was logged:\n{}",
            describe(&first)
        );
    }

    // The pod restarts: the init container runs again on the same emptyDir.
    let before = [
        stat(&secret_path),
        stat(&volumes.path("out/app.yaml")),
        stat(&volumes.path("out/static.conf")),
    ];
    let second = volumes.render(&env, ARGS);
    assert_eq!(second.code, 0, "{}", describe(&second));
    let after = [
        stat(&secret_path),
        stat(&volumes.path("out/app.yaml")),
        stat(&volumes.path("out/static.conf")),
    ];
    assert_eq!(
        before, after,
        "a re-run must not rewrite identical outputs nor the secret"
    );
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);

    // A changed value: app.yaml is replaced, the secret still kept.
    let third = volumes.render(&[("DB_HOST", "other.db.svc"), ("DB_PASSWORD", password)], ARGS);
    assert_eq!(third.code, 0, "{}", describe(&third));
    assert!(
        std::fs::read_to_string(volumes.path("out/app.yaml"))
            .unwrap()
            .contains("db: other.db.svc\n")
    );
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);
    assert_eq!(stat(&secret_path), before[0]);
}

#[test]
fn a_missing_variable_fails_with_78_names_it_and_writes_nothing() {
    if !ready(RENDER_IMAGE) {
        return;
    }
    let volumes = Volumes::new(&[
        ("a.yaml", "host: ${DB_HOST}\n"),
        (
            "b.yaml",
            "user: ${DB_USER}\nport: ${DB_PORT:?the database port is required}\n",
        ),
    ]);
    let finished = volumes.render(&[("DB_HOST", "db")], ARGS);
    assert_eq!(finished.code, 78, "{}", describe(&finished));
    for needle in ["DB_USER", "DB_PORT", "the database port is required", "b.yaml"] {
        assert!(
            finished.stderr.contains(needle),
            "{needle} not named:\n{}",
            describe(&finished)
        );
    }
    let log = volumes.termination_log();
    assert!(log.contains("DB_USER"), "termination log: {log:?}");
    let left: Vec<_> = std::fs::read_dir(volumes.path("out")).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing may be written, not even the secret: {left:?}"
    );
}

#[test]
fn writing_to_the_read_only_root_is_a_clear_error_with_74() {
    if !ready(RENDER_IMAGE) {
        return;
    }
    let volumes = Volumes::new(&[("app.yaml", "x: ${X:-1}\n")]);
    let finished = volumes.render(
        &[],
        &["--in", "/config-templates/app.yaml", "--out", "/etc/app.yaml"],
    );
    assert_eq!(finished.code, 74, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("/etc/app.yaml"),
        "{}",
        describe(&finished)
    );
    assert!(finished.stderr.contains("read-only"), "{}", describe(&finished));
    assert!(volumes.termination_log().contains("/etc/app.yaml"));
}

/// The GNU envsubst drop-in: `envsubst < in > out` with only the image changed.
#[test]
fn filters_stdin_to_stdout_like_envsubst() {
    if !ready(RENDER_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    // No `$$`: pitcrew-render makes it one `$`, GNU keeps both (a documented difference).
    std::fs::write(
        &input,
        "user=$USER_NAME home=${HOME_DIR} keep=$1 ${1} \\$X unset=$NOPE\n",
    )
    .unwrap();
    let output = std::process::Command::new("docker")
        .args(["run", "--rm", "-i", "--read-only", "--network", "none"])
        .args(["-e", "USER_NAME=app", "-e", "HOME_DIR=/home/app", RENDER_IMAGE])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gnu = std::process::Command::new("envsubst")
        .env_clear()
        .envs([("USER_NAME", "app"), ("HOME_DIR", "/home/app")])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .expect("GNU envsubst (Debian gettext-base, installed by cargo xtask test)");
    let ours = String::from_utf8_lossy(&output.stdout);
    assert!(
        ours.starts_with("user=app home=/home/app keep=$1 ${1} \\"),
        "{ours}"
    );
    assert_eq!(ours, String::from_utf8_lossy(&gnu.stdout), "GNU envsubst differs");
}
