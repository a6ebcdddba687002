//! `pitcrew-fetch` against a server that misbehaves on purpose (see `support/fault.rs`):
//! retries, Retry-After, resumes (206 and a changed file), stalls, lying lengths and ranges,
//! credentials across redirects, timeouts and signals. After every failure the destination
//! directory holds nothing new and a file that was there is intact.

mod support;

use std::time::{Duration, Instant};

use support::fault::{FaultServer, Reply};
use support::{Place, data, sha256};

const FAST: [&str; 4] = ["--read-timeout", "2s", "--connect-timeout", "5s"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = FAST.to_vec();
    all.extend_from_slice(extra);
    all
}

#[test]
fn a_500_then_200_is_retried_and_saved() {
    let body = data(10_000);
    let content = body.clone();
    let server = FaultServer::start(move |index, _| {
        if index == 0 {
            Reply::new(500, "<html><body>\n  upstream   exploded\n</body></html>")
        } else {
            Reply::ok(content.clone())
        }
    });
    let place = Place::new();
    let hash = sha256(&body);
    let run = place.run(&args(&[
        "--sha256",
        &hash,
        &server.url("/x.bin"),
        &place.arg("x.bin"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("attempt 1: HTTP 500 Internal Server Error: <html><body> upstream exploded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("saved ") && run.stderr.contains("sha256 ok"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(place.path("x.bin")).unwrap(), body);
    assert_eq!(place.listing(), ["x.bin"]);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_429_waits_as_retry_after_says() {
    let server = FaultServer::start(|index, _| {
        if index == 0 {
            Reply::new(429, "slow down").header("Retry-After", "2")
        } else {
            Reply::ok("ok\n")
        }
    });
    let place = Place::new();
    let started = Instant::now();
    let run = place.run(&args(&[&server.url("/x"), &place.arg("x")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("HTTP 429 Too Many Requests: slow down; retrying in 2s"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[test]
fn a_retry_after_beyond_the_timeout_gives_up_at_once_with_124() {
    let server = FaultServer::start(|_, _| Reply::new(503, "").header("Retry-After", "3600"));
    let place = Place::new();
    let started = Instant::now();
    let run = place.run(&args(&["--timeout", "60s", &server.url("/x"), &place.arg("x")]));
    assert_eq!(run.code, Some(124), "{}", run.stderr);
    assert!(run.reason.contains("Retry-After"), "{}", run.reason);
    assert!(started.elapsed() < Duration::from_secs(50), "waited for nothing");
    assert!(place.listing().is_empty());
}

#[test]
fn a_dropped_connection_resumes_with_range_and_the_same_running_hash() {
    let body = data(300_000);
    let content = body.clone();
    let server = FaultServer::start(move |index, request| {
        let reply = Reply::resumable(request, &content, "\"v1\"");
        if index == 0 {
            reply.drop_after(100_000)
        } else {
            reply
        }
    });
    let place = Place::new();
    let run = place.run(&args(&[
        "--sha256",
        &sha256(&body),
        &server.url("/big.bin"),
        &place.arg("big.bin"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("resuming at"), "{}", run.stderr);
    assert!(run.stderr.contains("resumed 1 time"), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("big.bin")).unwrap(), body);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("range"), None);
    let resumed_at = requests[1]
        .range_start()
        .expect("the second request asks for a range");
    assert!(resumed_at > 0 && resumed_at <= 100_000, "{resumed_at}");
    assert_eq!(requests[1].header("if-range"), Some("\"v1\""));
}

#[test]
fn a_file_changed_on_the_server_starts_over() {
    let old = data(50_000);
    let new: Vec<u8> = data(60_000).into_iter().rev().collect();
    let (old_served, new_served) = (old.clone(), new.clone());
    let server = FaultServer::start(move |index, request| {
        if index == 0 {
            Reply::resumable(request, &old_served, "\"old\"").drop_after(20_000)
        } else {
            // The If-Range no longer matches: a full 200 with the new content.
            Reply::resumable(request, &new_served, "\"new\"")
        }
    });
    let place = Place::new();
    let run = place.run(&args(&[
        "--sha256",
        &sha256(&new),
        &server.url("/f"),
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("the file changed on the server"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(place.path("f")).unwrap(), new);
    assert_eq!(place.listing(), ["f"]);
}

#[test]
fn a_server_without_ranges_is_downloaded_again_from_the_start() {
    let body = data(40_000);
    let content = body.clone();
    let server = FaultServer::start(move |index, _| {
        let reply = Reply::ok(content.clone());
        if index == 0 {
            reply.drop_after(10_000)
        } else {
            reply
        }
    });
    let place = Place::new();
    let run = place.run(&args(&[
        "--sha256",
        &sha256(&body),
        &server.url("/f"),
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("starting over: the server did not offer a way to resume"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests()[1].header("range"), None);
    assert_eq!(std::fs::read(place.path("f")).unwrap(), body);
}

#[test]
fn a_content_range_that_does_not_match_the_request_starts_over() {
    let body = data(30_000);
    let content = body.clone();
    let server = FaultServer::start(move |index, request| match index {
        0 => Reply::resumable(request, &content, "\"e\"").drop_after(10_000),
        // Answers the range request from byte 0 while calling it 206.
        1 => Reply::new(206, content.clone())
            .header(
                "Content-Range",
                &format!("bytes 0-{}/{}", content.len() - 1, content.len()),
            )
            .header("ETag", "\"e\""),
        _ => Reply::resumable(request, &content, "\"e\""),
    });
    let place = Place::new();
    let run = place.run(&args(&[
        "--sha256",
        &sha256(&body),
        &server.url("/f"),
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("but the server sent Content-Range"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(place.path("f")).unwrap(), body);
}

#[test]
fn a_stalled_body_is_noticed_and_resumed() {
    let body = data(80_000);
    let content = body.clone();
    let server = FaultServer::start(move |index, request| {
        let reply = Reply::resumable(request, &content, "\"s\"");
        if index == 0 {
            reply.stall_after(30_000)
        } else {
            reply
        }
    });
    let place = Place::new();
    let run = place.run(&[
        "--read-timeout",
        "1s",
        "--sha256",
        &sha256(&body),
        &server.url("/f"),
        &place.arg("f"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("no data for 1s (--read-timeout)"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(place.path("f")).unwrap(), body);
}

#[test]
fn a_content_length_that_lies_fails_after_the_retries_and_leaves_nothing() {
    let server = FaultServer::start(|_, _| Reply::ok(data(100)).content_length(1000));
    let place = Place::new();
    std::fs::write(place.path("f"), "previous").unwrap();
    let run = place.run(&args(&["--retries", "1", &server.url("/f"), &place.arg("f")]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.reason.starts_with("f: "), "{}", run.reason);
    assert!(run.reason.contains("gave up after 2 attempts"), "{}", run.reason);
    assert_eq!(place.listing(), ["f"]);
    assert_eq!(std::fs::read(place.path("f")).unwrap(), b"previous");
}

#[test]
fn over_max_size_is_refused_from_content_length_or_while_streaming() {
    // Announced: refused before any byte is written.
    let server = FaultServer::start(|_, _| Reply::ok(data(5000)));
    let place = Place::new();
    let run = place.run(&args(&["--max-size", "1k", &server.url("/f"), &place.arg("f")]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason
            .contains("larger than --max-size 1000 bytes (Content-Length: 5000)"),
        "{}",
        run.reason
    );
    assert_eq!(server.requests().len(), 1, "not retried");
    assert!(place.listing().is_empty());
    // Not announced: the stream is cut as soon as it passes the limit.
    let server = FaultServer::start(|_, _| Reply::ok(data(5000)).close_delimited());
    let run = place.run(&args(&[
        "--max-size",
        "1000",
        "--retries",
        "0",
        &server.url("/f"),
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.contains("larger than --max-size 1000 bytes ("),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
    // A body without a length that ends on time is fine.
    let run = place.run(&args(&["--max-size", "5000", &server.url("/f"), &place.arg("f")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn an_empty_body_fails_unless_min_size_is_0() {
    let server = FaultServer::start(|_, _| Reply::ok(""));
    let place = Place::new();
    let run = place.run(&args(&[&server.url("/empty.csv"), &place.arg("empty.csv")]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason.contains("empty.csv: the body is empty"),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
    let run = place.run(&args(&[
        "--min-size",
        "0",
        &server.url("/empty.csv"),
        &place.arg("empty.csv"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(place.listing(), ["empty.csv"]);
}

#[test]
fn a_404_is_not_retried_and_not_saved() {
    let server = FaultServer::start(|_, _| Reply::new(404, "no such export\n"));
    let place = Place::new();
    std::fs::write(place.path("customers.csv"), "old data").unwrap();
    let run = place.run(&args(&[
        &server.url("/customers.csv"),
        &place.arg("customers.csv"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.reason, "customers.csv: HTTP 404 Not Found: no such export");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(place.listing(), ["customers.csv"]);
    assert_eq!(std::fs::read(place.path("customers.csv")).unwrap(), b"old data");
}

#[test]
fn a_wrong_content_type_is_refused() {
    let server = FaultServer::start(|_, _| {
        Reply::ok("<html>login</html>").header("Content-Type", "text/html; charset=utf-8")
    });
    let place = Place::new();
    let run = place.run(&args(&[
        "--content-type",
        "text/csv",
        &server.url("/x.csv"),
        &place.arg("x.csv"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.reason
            .contains("content type \"text/html; charset=utf-8\", expected text/csv"),
        "{}",
        run.reason
    );
    assert!(place.listing().is_empty());
    let run = place.run(&args(&[
        "--content-type",
        "TEXT/html",
        &server.url("/x.csv"),
        &place.arg("x.csv"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

/// Secrets in the URL, a header and the token file never reach stderr or the termination
/// log, and none of them follows a redirect to another origin.
#[test]
fn secrets_stay_out_of_logs_and_stay_with_their_origin() {
    let other = FaultServer::start(|_, _| Reply::new(403, "denied"));
    let target = other.localhost_url("/elsewhere?X-Amz-Signature=SIGSECRET");
    let server = FaultServer::start(move |_, request| {
        if request.path().starts_with("/start") {
            Reply::new(302, "").header("Location", &target)
        } else {
            Reply::new(404, "")
        }
    });
    let place = Place::new();
    let token = place.aside("token", b"TOKENSECRET\n");
    let url = server
        .url("/start?api_key=QUERYSECRET")
        .replace("http://", "http://app:PASSSECRET@");
    let run = place.run(&args(&[
        "--log-level",
        "debug",
        "--header",
        "X-Api-Key: HEADERSECRET",
        "--bearer-token-file",
        &token,
        &url,
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for shown in [&run.stderr, &run.reason] {
        for secret in [
            "PASSSECRET",
            "TOKENSECRET",
            "HEADERSECRET",
            "QUERYSECRET",
            "SIGSECRET",
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
    assert!(run.stderr.contains("http://app:***@127.0.0.1"), "{}", run.stderr);
    assert!(run.reason.contains("HTTP 403"), "{}", run.reason);
    let first = &server.requests()[0];
    assert_eq!(first.header("authorization"), Some("Bearer TOKENSECRET"));
    assert_eq!(first.header("x-api-key"), Some("HEADERSECRET"));
    let redirected = &other.requests()[0];
    assert_eq!(redirected.header("authorization"), None, "{redirected:?}");
    assert_eq!(redirected.header("x-api-key"), None, "{redirected:?}");
    assert!(place.listing().is_empty());
}

/// User-info becomes basic auth (the password percent-decoded).
#[test]
fn user_info_is_sent_as_basic_auth() {
    let server = FaultServer::start(|_, request| match request.header("authorization") {
        // app:p@ss
        Some("Basic YXBwOnBAc3M=") => Reply::ok("welcome"),
        _ => Reply::new(401, ""),
    });
    let place = Place::new();
    let url = server.url("/x").replace("http://", "http://app:p%40ss@");
    let run = place.run(&args(&[&url, &place.arg("x")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stderr.contains("p%40ss") && !run.stderr.contains("p@ss"),
        "{}",
        run.stderr
    );
}

#[test]
fn too_many_redirects_and_loops_end_with_a_clear_error() {
    let server =
        FaultServer::start(|index, _| Reply::new(302, "").header("Location", &format!("/hop{index}")));
    let place = Place::new();
    let run = place.run(&args(&[
        "--max-redirects",
        "3",
        &server.url("/start"),
        &place.arg("f"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.reason.contains("more than 3 redirects"), "{}", run.reason);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn the_overall_timeout_exits_124_and_leaves_no_temporary_file() {
    let server =
        FaultServer::start(|_, request| Reply::resumable(request, &data(100_000), "\"t\"").stall_after(5000));
    let place = Place::new();
    let started = Instant::now();
    let run = place.run(&[
        "--timeout",
        "2s",
        "--read-timeout",
        "1m",
        &server.url("/f"),
        &place.arg("f"),
    ]);
    assert_eq!(run.code, Some(124), "{}", run.stderr);
    assert!(
        run.reason.contains("timed out after") && run.reason.contains("f (4.9 KiB of 97.7 KiB received"),
        "{}",
        run.reason
    );
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(place.listing().is_empty(), "{:?}", place.listing());
}

#[test]
fn sigterm_mid_download_exits_143_and_leaves_nothing() {
    let server =
        FaultServer::start(|_, request| Reply::resumable(request, &data(100_000), "\"t\"").stall_after(5000));
    let place = Place::new();
    std::fs::write(place.path("f"), "previous").unwrap();
    let child = support::command(&["--read-timeout", "1m", &server.url("/f"), &place.arg("f")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests().is_empty() || place.listing().len() < 2 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM while downloading f"),
        "{stderr}"
    );
    assert_eq!(place.listing(), ["f"]);
    assert_eq!(std::fs::read(place.path("f")).unwrap(), b"previous");
}

#[test]
fn several_files_download_in_parallel_and_one_failure_fails_the_run() {
    let server = FaultServer::start(|_, request| match request.path() {
        "/a.csv" => Reply::ok("a\n"),
        "/b" => Reply::ok("b\n").delay(Duration::from_millis(200)),
        _ => Reply::new(404, ""),
    });
    let place = Place::new();
    let to = place.dest.path().to_str().unwrap().to_owned();
    let named = format!("b.csv={}", server.url("/b"));
    let run = place.run(&args(&["--to", &to, &server.url("/a.csv"), &named]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(place.listing(), ["a.csv", "b.csv"]);
    assert_eq!(std::fs::read(place.path("b.csv")).unwrap(), b"b\n");

    let other = Place::new();
    let to = other.dest.path().to_str().unwrap().to_owned();
    let run = other.run(&args(&[
        "--to",
        &to,
        &server.url("/missing.csv"),
        &server.url("/a.csv"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.reason.starts_with("missing.csv: HTTP 404"), "{}", run.reason);
    assert!(
        !other.listing().iter().any(|name| name.starts_with('.')),
        "{:?}",
        other.listing()
    );
}

#[test]
fn a_checksum_mismatch_keeps_the_old_file_and_names_both_digests() {
    let server = FaultServer::start(|_, _| Reply::ok("tampered\n"));
    let place = Place::new();
    std::fs::write(place.path("customers.csv"), "good\n").unwrap();
    let expected = sha256(b"good data\n");
    let run = place.run(&args(&[
        "--sha256",
        &expected,
        &server.url("/c.csv"),
        &place.arg("customers.csv"),
    ]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        run.reason,
        format!(
            "customers.csv: sha256 mismatch: expected {expected}, got {}",
            sha256(b"tampered\n")
        )
    );
    assert_eq!(place.listing(), ["customers.csv"]);
    assert_eq!(std::fs::read(place.path("customers.csv")).unwrap(), b"good\n");
}

#[test]
fn a_file_that_already_matches_or_exists_is_not_requested() {
    let server = FaultServer::start(|_, _| Reply::ok("new\n"));
    let place = Place::new();
    std::fs::write(place.path("x"), "same\n").unwrap();
    let run = place.run(&args(&[
        "--sha256",
        &sha256(b"same\n"),
        &server.url("/x"),
        &place.arg("x"),
    ]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("already there, sha256 matches"),
        "{}",
        run.stderr
    );
    let run = place.run(&args(&["--if-missing", &server.url("/x"), &place.arg("x")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("--if-missing"), "{}", run.stderr);
    assert!(server.requests().is_empty());
    assert_eq!(std::fs::read(place.path("x")).unwrap(), b"same\n");
    // And without either, it is replaced.
    let run = place.run(&args(&[&server.url("/x"), &place.arg("x")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("x")).unwrap(), b"new\n");
}

#[test]
fn a_checksums_file_is_looked_up_by_name() {
    let server = FaultServer::start(|_, request| match request.path() {
        "/SHA256SUMS" => Reply::ok(format!(
            "{}  a.csv\n{}  b.csv\n",
            sha256(b"a\n"),
            sha256(b"other\n")
        )),
        "/a.csv" => Reply::ok("a\n"),
        "/b.csv" => Reply::ok("b\n"),
        _ => Reply::new(404, ""),
    });
    let place = Place::new();
    let to = place.dest.path().to_str().unwrap().to_owned();
    let sums = server.url("/SHA256SUMS");
    let run = place.run(&args(&["--to", &to, "--checksums", &sums, &server.url("/a.csv")]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("sha256 ok"), "{}", run.stderr);
    let run = place.run(&args(&["--to", &to, "--checksums", &sums, &server.url("/b.csv")]));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.reason.contains("b.csv: sha256 mismatch"), "{}", run.reason);
    let local = place.aside("SUMS", format!("{}  a.csv\n", sha256(b"a\n")).as_bytes());
    let named = format!("c.csv={}", server.url("/a.csv"));
    let run = place.run(&args(&["--to", &to, "--checksums", &local, &named]));
    assert_eq!(
        run.code,
        Some(0),
        "looked up by the URL's name after the destination's: {}",
        run.stderr
    );
    assert_eq!(place.listing(), ["a.csv", "c.csv"]);
}
