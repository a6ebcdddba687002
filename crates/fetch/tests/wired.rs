//! The binary end to end through the s3 and extract paths, as a pod runs it: `s3://` against
//! real S3 servers (moto for S3 and STS, s3s-fs where the signature must be checked) and
//! `--extract` of real archives (made by GNU tar, zip and, for the hostile ones, Python's
//! tarfile) served by nginx. After each failure the destination holds nothing new.

mod support;

use std::process::Command;

use pitcrew_testkit::moto::{MotoPeer, S3S_ACCESS_KEY, S3sPeer};
use pitcrew_testkit::nginx::NginxPeer;
use support::{Place, Run, sha256};

const BUCKET: &str = "app-config";
const KEY_ID: &str = "AKIAWIREDTEST0000001";
const SECRET: &str = "wired/Secret+Key/abcdefghijklmnopqrstuv";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjWIRED/session+token==";

/// Runs the binary with the AWS variables given and every other AWS_* variable removed.
fn run_s3(place: &Place, args: &[&str], aws: &[(&str, &str)]) -> Run {
    let mut env: Vec<(&str, &str)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .map(|(name, _)| (Box::leak(name.into_boxed_str()) as &str, ""))
        .collect();
    env.extend_from_slice(aws);
    place.run_with(args, &env)
}

fn assert_no_secret(run: &Run) {
    for secret in [SECRET, SESSION_TOKEN, "X-Amz-Signature", "X-Amz-Security-Token"] {
        assert!(
            !run.stderr.contains(secret) && !run.reason.contains(secret),
            "{secret} leaked:\n{}\n{}",
            run.stderr,
            run.reason
        );
    }
}

#[test]
fn an_s3_object_is_saved_verified_with_static_keys_and_a_session_token() {
    let Some(moto) = MotoPeer::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let body = br#"{"listen": ":8080", "database": {"host": "db", "pool": 5}}"#;
    moto.put_object(BUCKET, "prod/config file+1.json", body);
    let place = Place::new();
    let endpoint = moto.endpoint();
    let run = run_s3(
        &place,
        &[
            "--sha256",
            &sha256(body),
            "--content-type",
            "application/json",
            "s3://app-config/prod/config file+1.json",
            &place.arg("config.json"),
        ],
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("config.json")).unwrap(), body);
    assert!(
        run.stderr.contains("s3://app-config/prod/config file+1.json"),
        "{}",
        run.stderr
    );
    assert_no_secret(&run);
    assert_eq!(support::listing(place.dest.path()), ["config.json"]);
}

#[test]
fn a_missing_s3_key_fails_with_no_such_key_and_leaves_nothing() {
    let Some(moto) = MotoPeer::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let place = Place::new();
    std::fs::write(place.path("config.json"), "old").unwrap();
    let endpoint = moto.endpoint();
    let run = run_s3(
        &place,
        &["s3://app-config/prod/absent.json", &place.arg("config.json")],
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL", &endpoint),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.contains("NoSuchKey"),
        "termination log: {}",
        run.reason
    );
    assert_no_secret(&run);
    assert_eq!(support::listing(place.dest.path()), ["config.json"]);
    assert_eq!(std::fs::read_to_string(place.path("config.json")).unwrap(), "old");
}

#[test]
fn wrong_s3_credentials_fail_with_the_servers_reason_and_no_secret() {
    let Some(s3s) = S3sPeer::start() else {
        return;
    };
    s3s.create_bucket(BUCKET);
    s3s.put_object(BUCKET, "prod/config.json", b"{}");
    let place = Place::new();
    let endpoint = s3s.endpoint();
    let run = run_s3(
        &place,
        &[
            "--retries",
            "1",
            "s3://app-config/prod/config.json",
            &place.arg("config.json"),
        ],
        &[
            ("AWS_ACCESS_KEY_ID", S3S_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL", &endpoint),
        ],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.contains("SignatureDoesNotMatch"),
        "termination log: {}\n{}",
        run.reason,
        run.stderr
    );
    assert_no_secret(&run);
    assert!(support::listing(place.dest.path()).is_empty());
}

#[test]
fn web_identity_credentials_come_from_sts_as_on_eks() {
    let Some(moto) = MotoPeer::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    moto.put_object(BUCKET, "prod/config.json", b"{\"ok\": true}");
    let place = Place::new();
    let token = place.aside("token", b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3aXJlZCJ9.c2ln\n");
    let endpoint = moto.endpoint();
    let run = run_s3(
        &place,
        &["s3://app-config/prod/config.json", &place.arg("config.json")],
        &[
            (
                "AWS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/webapp-config-reader",
            ),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_ENDPOINT_URL", &endpoint),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        std::fs::read(place.path("config.json")).unwrap(),
        b"{\"ok\": true}"
    );
    assert!(!run.stderr.contains("eyJzdWIiOiJ3aXJlZCJ9"), "{}", run.stderr);
}

/// A tree with a space and a nested file, packed by `argv` (run in the tree's parent).
fn pack(nginx: &NginxPeer, name: &str, argv: &[&str]) -> bool {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("site");
    std::fs::create_dir_all(tree.join("assets dir")).unwrap();
    std::fs::write(tree.join("index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(tree.join("assets dir/app.js"), "console.log(1)\n").unwrap();
    let archive = nginx.files_dir().join(name);
    let Ok(status) = Command::new(argv[0])
        .args(&argv[1..])
        .arg(&archive)
        .arg("site")
        .current_dir(work.path())
        .status()
    else {
        return false;
    };
    status.success()
}

#[test]
fn archives_from_nginx_are_extracted_in_every_format_and_sniffed() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let formats: [(&str, &[&str], &str); 4] = [
        ("site.tar", &["tar", "cf"], "tar"),
        ("site.tgz", &["tar", "czf"], "auto"),
        ("site.tar.zst", &["tar", "--zstd", "-cf"], "tar.zst"),
        ("site.zip", &["zip", "-qr"], "auto"),
    ];
    for (name, argv, flag) in formats {
        if !pack(&nginx, name, argv) {
            assert!(!pitcrew_testkit::on_ci(), "cannot make {name} with {argv:?}");
            continue;
        }
        let place = Place::new();
        std::fs::write(place.path("keep.txt"), "kept").unwrap();
        let run = place.run(&[
            "--extract",
            flag,
            &nginx.http_url(&format!("/files/{name}")),
            &place.arg("www"),
        ]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        assert_eq!(
            std::fs::read_to_string(place.path("www/site/assets dir/app.js")).unwrap(),
            "console.log(1)\n",
            "{name}"
        );
        // The archive itself is not left behind; what was there stays.
        assert_eq!(support::listing(place.dest.path()), ["keep.txt", "www"], "{name}");
        assert_eq!(support::listing(&place.path("www")), ["site"], "{name}");
    }
}

#[test]
fn a_hostile_archive_is_refused_and_nothing_of_it_lands_anywhere() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    // GNU tar will not make these; Python's tarfile writes what it is told.
    let script = r#"
import io, sys, tarfile
def add(tar, name, data=b"x", **kw):
    info = tarfile.TarInfo(name); info.size = len(data)
    for k, v in kw.items(): setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))
with tarfile.open(sys.argv[1] + "/dotdot.tar.gz", "w:gz") as tar:
    add(tar, "ok.txt"); add(tar, "../evil.txt")
with tarfile.open(sys.argv[1] + "/absolute.tar", "w") as tar:
    add(tar, "ok.txt"); add(tar, "/tmp/pitcrew-absolute-evil.txt")
with tarfile.open(sys.argv[1] + "/symlink.tar", "w") as tar:
    link = tarfile.TarInfo("out"); link.type = tarfile.SYMTYPE; link.linkname = "../.."
    tar.addfile(link); add(tar, "out/evil.txt")
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(nginx.files_dir())
        .status()
        .expect("python3 runs");
    assert!(status.success());
    for (name, refused) in [
        ("dotdot.tar.gz", "../evil.txt"),
        ("absolute.tar", "/tmp/pitcrew-absolute-evil.txt"),
        ("symlink.tar", "out"),
    ] {
        let place = Place::new();
        std::fs::create_dir(place.path("www")).unwrap();
        std::fs::write(place.path("www/keep.txt"), "kept").unwrap();
        let run = place.run(&[
            "--extract",
            "auto",
            &nginx.http_url(&format!("/files/{name}")),
            &place.arg("www"),
        ]);
        assert_eq!(run.code, Some(1), "{name}: {}", run.stderr);
        assert!(
            run.reason.contains(refused),
            "{name}: termination log {:?} does not name {refused}",
            run.reason
        );
        assert_eq!(support::listing(place.dest.path()), ["www"], "{name}");
        assert_eq!(support::listing(&place.path("www")), ["keep.txt"], "{name}");
        assert!(!place.dest.path().parent().unwrap().join("evil.txt").exists());
        assert!(!std::path::Path::new("/tmp/pitcrew-absolute-evil.txt").exists());
    }
}
