//! `pitcrew-fetch` against a real nginx (http and https with a test CA, static files with
//! ETag and Range support) and the bad inputs of issue 7's table that need no fault server:
//! malformed URL, unknown scheme, DNS failure, refused connection, TLS without the private CA,
//! an unwritable destination. After each failure the destination holds nothing new.

mod support;

use pitcrew_testkit::nginx::NginxPeer;
use support::{Place, data, sha256};

fn nginx_with(files: &[(&str, &[u8])]) -> Option<NginxPeer> {
    let nginx = NginxPeer::start()?;
    for (name, content) in files {
        std::fs::write(nginx.files_dir().join(name), content).unwrap();
    }
    Some(nginx)
}

#[test]
fn help_shows_a_pod_spec_example_and_the_exit_codes() {
    let output = support::command(&["--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for wanted in [
        "initContainers:",
        "Exit codes:",
        "124  timed out",
        "PITCREW_FETCH_SHA256",
        "PITCREW_FETCH_CA_FILE",
    ] {
        assert!(help.contains(wanted), "{wanted}: {help}");
    }
}

#[test]
fn a_big_file_over_http_is_saved_verified_and_not_fetched_twice() {
    let body = data(3 * 1024 * 1024);
    let Some(nginx) = nginx_with(&[("big.bin", &body)]) else {
        return;
    };
    let place = Place::new();
    let hash = sha256(&body);
    let url = nginx.http_url("/files/big.bin");
    let run = place.run(&[
        "--sha256",
        &hash,
        "--mode",
        "0640",
        &url,
        &place.arg("sub/dir/big.bin"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let saved = place.path("sub/dir/big.bin");
    assert_eq!(std::fs::read(&saved).unwrap(), body);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o640);
    assert!(run.stderr.contains("created the directory"), "{}", run.stderr);
    assert!(
        run.stderr.contains("big.bin: 3.0 MiB in") && run.stderr.contains("sha256 ok"),
        "{}",
        run.stderr
    );
    assert_eq!(support::listing(&place.path("sub/dir")), ["big.bin"]);
    let requests = nginx.access_log().lines().count();
    let run = place.run(&["--sha256", &hash, &url, &place.arg("sub/dir/big.bin")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("already there, sha256 matches"),
        "{}",
        run.stderr
    );
    assert_eq!(nginx.access_log().lines().count(), requests, "a request was made");
}

#[test]
fn https_works_with_the_private_ca_and_fails_clearly_without_it() {
    let Some(nginx) = nginx_with(&[("x.csv", b"a,b\n1,2\n")]) else {
        return;
    };
    let place = Place::new();
    std::fs::write(place.path("x.csv"), "old").unwrap();
    let url = nginx.https_url("/files/x.csv");
    let run = place.run(&[&url, &place.arg("x.csv")]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason
            .starts_with("x.csv: TLS error: invalid peer certificate"),
        "{}",
        run.reason
    );
    assert!(
        !run.stderr.contains("attempt 1"),
        "a certificate problem is not retried: {}",
        run.stderr
    );
    assert_eq!(place.listing(), ["x.csv"]);
    assert_eq!(std::fs::read(place.path("x.csv")).unwrap(), b"old");
    let ca = nginx.ca_pem_path();
    let run = place.run(&[
        "--ca-file",
        ca.to_str().unwrap(),
        "--content-type",
        "text/csv",
        &url,
        &place.arg("x.csv"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("x.csv")).unwrap(), b"a,b\n1,2\n");
    // The env twin works too; a missing CA file is exit 66.
    let run = place.run_with(
        &[&url, &place.arg("x.csv")],
        &[("PITCREW_FETCH_CA_FILE", "/nonexistent/ca.pem")],
    );
    assert_eq!(run.code, Some(66), "{}", run.stderr);
}

#[test]
fn an_https_to_http_redirect_is_refused_unless_allowed() {
    let Some(nginx) = nginx_with(&[("x.json", b"{}\n")]) else {
        return;
    };
    let place = Place::new();
    let ca = nginx.ca_pem_path();
    let url = nginx.https_url("/to-plain/x.json");
    let run = place.run(&["--ca-file", ca.to_str().unwrap(), &url, &place.arg("x.json")]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.reason.contains("from https to plain http"), "{}", run.reason);
    assert!(place.listing().is_empty());
    let run = place.run(&[
        "--ca-file",
        ca.to_str().unwrap(),
        "--allow-https-downgrade",
        &url,
        &place.arg("x.json"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn nginx_404_and_the_destination_stays_as_it_was() {
    let Some(nginx) = nginx_with(&[]) else { return };
    let place = Place::new();
    std::fs::write(place.path("keep"), "kept").unwrap();
    let run = place.run(&[&nginx.http_url("/files/missing.csv"), &place.arg("missing.csv")]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.starts_with("missing.csv: HTTP 404 Not Found: <html>"),
        "{}",
        run.reason
    );
    assert_eq!(place.listing(), ["keep"]);
}

#[test]
fn several_files_from_nginx_with_a_checksums_file() {
    let Some(nginx) = nginx_with(&[("a.csv", b"a\n"), ("b.csv", b"b\n")]) else {
        return;
    };
    let sums = format!("{}  a.csv\nSHA256 (b.csv) = {}\n", sha256(b"a\n"), sha256(b"b\n"));
    std::fs::write(nginx.files_dir().join("SHA256SUMS"), sums).unwrap();
    let place = Place::new();
    let to = place.dest.path().to_str().unwrap().to_owned();
    let run = place.run(&[
        "--to",
        &to,
        "--parallel",
        "2",
        "--checksums",
        &nginx.http_url("/files/SHA256SUMS"),
        &nginx.http_url("/files/a.csv"),
        &nginx.http_url("/files/b.csv"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(place.listing(), ["a.csv", "b.csv"]);
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would take it as a URL. The error names the flag and exits 64, without that tip.
#[test]
fn an_unknown_flag_gets_no_double_dash_tip() {
    let place = Place::new();
    let run = place.run(&["--bogus", "http://127.0.0.1:1/x", &place.arg("x")]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(
        run.stderr.contains("unexpected argument '--bogus' found"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("as a value"), "{}", run.stderr);
    assert!(place.listing().is_empty());
}

#[test]
fn malformed_urls_and_unknown_schemes_exit_64_before_anything() {
    let place = Place::new();
    for (url, wanted) in [
        ("http://app:hunter2@[::1/x", "invalid URL"),
        ("ftp://files.example/x", "unknown scheme \"ftp\""),
        ("just-a-path", "no scheme"),
    ] {
        let run = place.run(&[url, &place.arg("x")]);
        assert_eq!(run.code, Some(64), "{url}: {}", run.stderr);
        assert!(run.reason.contains(wanted), "{url}: {}", run.reason);
        assert!(
            !run.stderr.contains("hunter2") && !run.reason.contains("hunter2"),
            "{}",
            run.stderr
        );
    }
    let to = place.dest.path().to_str().unwrap().to_owned();
    let run = place.run(&["--to", &to, "../escape=http://127.0.0.1:1/x"]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    let run = place.run(&["--to", &to, "http://127.0.0.1:1/a/x", "http://127.0.0.1:1/b/x"]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(
        run.reason.contains("two URLs would be saved as \"x\""),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
}

/// `.invalid` never resolves (RFC 6761) and is answered without a query leaving the machine.
#[test]
fn a_name_that_does_not_resolve_fails_clearly() {
    let place = Place::new();
    let run = place.run(&[
        "--retries",
        "1",
        "http://nonexistent.invalid/x.csv",
        &place.arg("x.csv"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.contains("cannot resolve nonexistent.invalid"),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
}

/// Regression: the directories made for DEST stayed behind when the download failed.
#[test]
fn a_failed_download_removes_the_directories_it_made_and_keeps_the_others() {
    let port = pitcrew_testkit::free_port();
    let place = Place::new();
    std::fs::create_dir(place.path("input")).unwrap();
    let run = place.run(&[
        "--retries",
        "0",
        &format!("http://127.0.0.1:{port}/x"),
        &place.arg("input/new dir/deeper/x.csv"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("created the directory"), "{}", run.stderr);
    assert_eq!(place.listing(), ["input"], "what was there stays");
    assert!(
        support::listing(&place.path("input")).is_empty(),
        "made directories stay"
    );
}

#[test]
fn a_refused_connection_is_retried_then_fails() {
    let port = pitcrew_testkit::free_port();
    let place = Place::new();
    let run = place.run(&[
        "--retries",
        "1",
        &format!("http://127.0.0.1:{port}/x"),
        &place.arg("x"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("attempt 1: cannot connect: connection refused"),
        "{}",
        run.stderr
    );
    assert!(
        run.reason
            .contains("connection refused (gave up after 2 attempts"),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
}

#[test]
fn an_unwritable_destination_exits_74_and_sends_no_request() {
    let place = Place::new();
    std::fs::write(place.path("plain-file"), "x").unwrap();
    let port = pitcrew_testkit::free_port();
    let run = place.run(&[
        &format!("http://127.0.0.1:{port}/x"),
        &place.arg("plain-file/sub/x"),
    ]);
    assert_eq!(run.code, Some(74), "{}", run.stderr);
    assert!(
        run.reason.starts_with("x: cannot create directory"),
        "{}",
        run.reason
    );
    assert_eq!(place.listing(), ["plain-file"]);
}

#[test]
fn unreadable_inputs_exit_66_and_bad_values_78() {
    let place = Place::new();
    let url = "http://127.0.0.1:1/x";
    for (args, code) in [
        (vec!["--bearer-token-file", "/nonexistent/token"], 66),
        (vec!["--checksums", "/nonexistent/SHA256SUMS"], 66),
        (vec!["--sha256", "abc"], 78),
        (vec!["--header", "Authorization Bearer SECRETVALUE"], 78),
    ] {
        let mut all = args.clone();
        all.extend([url, "/nonexistent/x"]);
        let run = place.run(&all);
        assert_eq!(run.code, Some(code), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("SECRETVALUE"), "{}", run.stderr);
    }
}

/// A slow download logs its progress (bytes, total, rate) and, when --timeout passes, exits
/// 124 naming how far it got, leaving nothing behind. nginx's /slow.json trickles at 1 KiB/s.
#[test]
fn a_slow_download_logs_progress_then_times_out_cleanly() {
    let Some(nginx) = nginx_with(&[]) else { return };
    let place = Place::new();
    let run = place.run(&[
        "--timeout",
        "3s",
        "--progress-interval",
        "500ms",
        &nginx.http_url("/slow.json"),
        &place.arg("slow.json"),
    ]);
    assert_eq!(run.code, Some(124), "{}", run.stderr);
    assert!(
        run.stderr.contains(" of 2.0 MiB (0%), "),
        "no progress line: {}",
        run.stderr
    );
    assert!(
        run.reason.contains("slow.json (") && run.reason.contains("of 2.0 MiB received"),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty(), "{:?}", place.listing());
    // --quiet drops the progress lines.
    let run = place.run(&[
        "--quiet",
        "--timeout",
        "2s",
        "--progress-interval",
        "500ms",
        &nginx.http_url("/slow.json"),
        &place.arg("slow.json"),
    ]);
    assert_eq!(run.code, Some(124), "{}", run.stderr);
    assert!(!run.stderr.contains(" of 2.0 MiB ("), "{}", run.stderr);
}
