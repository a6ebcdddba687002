//! End-to-end tests of the `pitcrew/fetch:dev` image, run with docker the way a pod runs an
//! init container: the image's own uid 65532, a read-only root, an emptyDir-like volume to
//! download into, a private CA mounted like a ConfigMap, and a real nginx on the host's
//! loopback (`--network host`).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::time::Duration;

use pitcrew_e2e::{Container, FETCH_IMAGE, Finished, ready, run};
use pitcrew_testkit::nginx::NginxPeer;

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

/// The pod's volumes on the host: `data` (world-writable, as an emptyDir is to the image's
/// user), `ca` (the test CA), the termination log.
struct Volumes {
    dir: tempfile::TempDir,
}

impl Volumes {
    fn new(nginx: &NginxPeer) -> Volumes {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::set_permissions(dir.path().join("data"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(dir.path().join("ca")).unwrap();
        std::fs::copy(nginx.ca_pem_path(), dir.path().join("ca/ca.pem")).unwrap();
        let log = dir.path().join("termination-log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        Volumes { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn docker_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["--read-only", "--network", "host"].map(String::from).to_vec();
        for mount in [
            format!("{}:/data", self.path("data").display()),
            format!("{}:/ca:ro", self.path("ca").display()),
            format!("{}:/dev/termination-log", self.path("termination-log").display()),
        ] {
            args.extend(["-v".to_owned(), mount]);
        }
        args
    }

    fn fetch(&self, args: &[&str]) -> Finished {
        let mut docker = vec!["--rm".to_owned()];
        docker.extend(self.docker_args());
        docker.push(FETCH_IMAGE.to_owned());
        docker.extend(args.iter().map(|arg| (*arg).to_owned()));
        let docker: Vec<&str> = docker.iter().map(String::as_str).collect();
        run(&docker, RUN_DEADLINE)
    }

    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("data"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn sha256_hex(path: &std::path::Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn downloads_over_https_with_a_private_ca_as_uid_65532_and_a_rerun_makes_no_request() {
    if !ready(FETCH_IMAGE) {
        return;
    }
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let body: Vec<u8> = (0..2_000_000_u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(nginx.files_dir().join("customers.csv"), &body).unwrap();
    let hash = sha256_hex(&nginx.files_dir().join("customers.csv"));
    let volumes = Volumes::new(&nginx);
    let url = nginx.https_url("/files/customers.csv");
    let args = [
        "--ca-file",
        "/ca/ca.pem",
        "--sha256",
        &hash,
        &url,
        "/data/input/customers.csv",
    ];
    let first = volumes.fetch(&args);
    assert_eq!(first.code, 0, "{}", describe(&first));
    let saved = volumes.path("data/input/customers.csv");
    assert_eq!(std::fs::read(&saved).unwrap(), body);
    assert_eq!(std::fs::metadata(&saved).unwrap().uid(), 65532);

    // The pod restarts: the file is there with the right hash, so no request is made.
    let requests = nginx.access_log().lines().count();
    let second = volumes.fetch(&args);
    assert_eq!(second.code, 0, "{}", describe(&second));
    assert_eq!(nginx.access_log().lines().count(), requests, "a request was made");

    // Without the CA: a TLS error, exit 1, nothing new in the volume.
    std::fs::remove_file(&saved).unwrap();
    let refused = volumes.fetch(&[&url, "/data/input/customers.csv"]);
    assert_eq!(refused.code, 1, "{}", describe(&refused));
    let log = std::fs::read_to_string(volumes.path("termination-log")).unwrap();
    assert!(
        log.contains("TLS") || log.contains("certificate"),
        "termination log: {log:?}"
    );
    assert_eq!(volumes.listing(), ["input"]);
    assert!(
        std::fs::read_dir(volumes.path("data/input"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn sigterm_mid_download_exits_143_and_leaves_nothing_behind() {
    if !ready(FETCH_IMAGE) {
        return;
    }
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let volumes = Volumes::new(&nginx);
    // /slow.json trickles at 1 KiB/s: the download is surely still running when stopped.
    let url = nginx.http_url("/slow.json");
    let mut docker: Vec<String> = volumes.docker_args();
    docker.push(FETCH_IMAGE.to_owned());
    docker.extend([
        "--progress-interval".into(),
        "1s".into(),
        url,
        "/data/slow.json".into(),
    ]);
    let docker: Vec<&str> = docker.iter().map(String::as_str).collect();
    let container = Container::start("fetch-sigterm", &docker);
    container.wait_for_log("slow.json:", Duration::from_secs(60));
    container.signal("TERM");
    let code = container.wait_exit(Duration::from_secs(30));
    assert_eq!(code, 143, "{}", container.logs());
    assert!(
        volumes.listing().is_empty(),
        "left behind: {:?}",
        volumes.listing()
    );
}
