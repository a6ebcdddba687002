//! Resumes against a real nginx: its Range, ETag and If-Range handling, not a stand-in's. nginx
//! will not drop a connection on cue, so the download goes through a tiny loopback relay (this
//! file) that cuts the first response after a number of bytes and relays every later
//! connection whole. nginx then answers the resume: 206 from where the cut was when the file is
//! unchanged, or 200 with the new file when it changed in between (the If-Range no longer
//! matches).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pitcrew_testkit::nginx::NginxPeer;
use support::{Place, data, sha256};

/// Relays loopback connections to `upstream`; the first response is cut after `cut` bytes,
/// and `on_cut` runs just before the cut.
fn cutting_relay(upstream: u16, cut: usize, on_cut: impl Fn() + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let on_cut = Arc::new(on_cut);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
            let on_cut = Arc::clone(&on_cut);
            std::thread::spawn(move || {
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                    let _ = server_out.shutdown(Shutdown::Write);
                });
                let (mut server_in, mut client_out) = (server, client);
                let limit = if first { cut } else { usize::MAX };
                let mut sent = 0;
                let mut buffer = vec![0; 16 * 1024];
                while sent < limit {
                    let Ok(read) = server_in.read(&mut buffer) else {
                        break;
                    };
                    if read == 0 {
                        break;
                    }
                    let take = read.min(limit - sent);
                    if client_out.write_all(&buffer[..take]).is_err() {
                        break;
                    }
                    sent += take;
                }
                if first {
                    on_cut();
                }
                let _ = client_out.shutdown(Shutdown::Both);
                let _ = server_in.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

/// The status codes nginx logged, in order (combined log format: the field after the request).
fn statuses(nginx: &NginxPeer) -> Vec<String> {
    nginx
        .access_log()
        .lines()
        .filter_map(|line| line.split('"').nth(2))
        .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn a_cut_download_resumes_from_nginx_with_a_206_and_the_same_hash() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let body = data(4 * 1024 * 1024);
    std::fs::write(nginx.files_dir().join("big.bin"), &body).unwrap();
    let relay = cutting_relay(nginx.http_port(), 1024 * 1024, || {});
    let place = Place::new();
    let run = place.run(&[
        "--sha256",
        &sha256(&body),
        &format!("http://127.0.0.1:{relay}/files/big.bin"),
        &place.arg("big.bin"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("big.bin")).unwrap(), body);
    assert!(run.stderr.contains("resuming at"), "{}", run.stderr);
    assert_eq!(statuses(&nginx), ["200", "206"], "{}", nginx.access_log());
    assert_eq!(support::listing(place.dest.path()), ["big.bin"]);
}

#[test]
fn a_file_changed_on_nginx_between_the_cut_and_the_resume_is_fetched_whole_again() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let old = data(4 * 1024 * 1024);
    let new: Vec<u8> = old.iter().rev().copied().collect();
    let path = nginx.files_dir().join("big.bin");
    std::fs::write(&path, &old).unwrap();
    let replacement = new.clone();
    let relay = cutting_relay(nginx.http_port(), 1024 * 1024, move || {
        // A new file (new size and mtime: a new ETag), written aside and renamed in, as a
        // publisher would.
        let aside = path.with_extension("tmp");
        std::fs::write(&aside, [&replacement[..], b"!"].concat()).unwrap();
        std::fs::rename(&aside, &path).unwrap();
    });
    let place = Place::new();
    let mut expected = new;
    expected.push(b'!');
    let run = place.run(&[
        "--sha256",
        &sha256(&expected),
        &format!("http://127.0.0.1:{relay}/files/big.bin"),
        &place.arg("big.bin"),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read(place.path("big.bin")).unwrap(), expected);
    assert!(run.stderr.contains("starting over"), "{}", run.stderr);
    assert_eq!(statuses(&nginx), ["200", "200"], "{}", nginx.access_log());
}
