//! What the binary's tests share: a GET on the admin server, and a child process that is
//! killed if a test fails half-way.

use std::process::Child;

/// A GET on 127.0.0.1:`port`: status and body, `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    pitcrew_testkit::http_client::request(address, "GET", path, b"")
        .ok()
        .map(|answer| (answer.status, answer.body))
}

/// The sidecar under test: killed and reaped when dropped (a failed test leaves no process).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
