//! A small HTTP/1.1 server for the faults nginx will not make on purpose: dropping the
//! connection after N body bytes, answering a resume with 206 or with 200 and a new ETag, 429
//! with Retry-After, 500 then 200, stalling mid-body, a Content-Length that lies, a
//! Content-Range that does not match the request, a redirect to another origin.
//!
//! Hand-written on tokio rather than built on hyper because the point is to break the
//! protocol in controlled ways (announce 100 bytes and send 40, cut a body off, never finish)
//! that a correct server library will not let a handler do. One request per connection
//! (`Connection: close`), which is all a downloader needs. The script is a closure from the
//! request (and how many came before it) to a [`Reply`]; every request is recorded so tests
//! can check what was sent (Range, If-Range, which credentials went where).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A request as received: the request line and the headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET /path HTTP/1.1`.
    pub line: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The path of the request line.
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or_default()
    }

    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }

    /// The start of a `Range: bytes=N-` request.
    pub fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse()
            .ok()
    }
}

/// What happens after the part of the body that is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Close the connection.
    Close,
    /// Keep it open and send nothing more (a stalled server).
    Stall,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    content_length: Option<u64>,
    close_delimited: bool,
    send: Option<usize>,
    after: After,
    delay_head: Duration,
}

impl Reply {
    /// `status` with `body` and a truthful Content-Length.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            content_length: None,
            close_delimited: false,
            send: None,
            after: After::Close,
            delay_head: Duration::ZERO,
        }
    }

    /// 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200, body)
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Announces this Content-Length whatever the body's real length.
    #[must_use]
    pub fn content_length(mut self, length: u64) -> Reply {
        self.content_length = Some(length);
        self
    }

    /// Sends no Content-Length: the body ends when the connection closes (HTTP/1.0 style).
    #[must_use]
    pub fn close_delimited(mut self) -> Reply {
        self.close_delimited = true;
        self
    }

    /// Sends only the first `bytes` of the body, then closes.
    #[must_use]
    pub fn drop_after(mut self, bytes: usize) -> Reply {
        self.send = Some(bytes);
        self.after = After::Close;
        self
    }

    /// Sends only the first `bytes` of the body, then goes silent.
    #[must_use]
    pub fn stall_after(mut self, bytes: usize) -> Reply {
        self.send = Some(bytes);
        self.after = After::Stall;
        self
    }

    /// Waits this long before sending anything.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay_head = delay;
        self
    }

    /// A resumable answer to `request` for a file with `body` and `etag`, as a correct server
    /// gives it: 206 with Content-Range when the request has a Range and an If-Range equal to
    /// `etag`, else 200 with the whole body.
    pub fn resumable(request: &Request, body: &[u8], etag: &str) -> Reply {
        let len = body.len() as u64;
        match request.range_start() {
            Some(start) if request.header("if-range") == Some(etag) && start < len => {
                let start_index = usize::try_from(start).unwrap();
                Reply::new(206, body[start_index..].to_vec())
                    .header("Content-Range", &format!("bytes {start}-{}/{len}", len - 1))
                    .header("ETag", etag)
                    .header("Accept-Ranges", "bytes")
            }
            _ => Reply::ok(body.to_vec())
                .header("ETag", etag)
                .header("Accept-Ranges", "bytes"),
        }
    }
}

type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// A running fault server; it lives as long as the test process (tests are short).
pub struct FaultServer {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FaultServer {
    /// Starts a server on 127.0.0.1 answering the n-th request (from 0) with `script(n, req)`.
    pub fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> FaultServer {
        let script: Arc<Script> = Arc::new(script);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let script = Arc::clone(&script);
                    let recorded = Arc::clone(&recorded);
                    tokio::spawn(async move {
                        let _ = serve(stream, &*script, &recorded).await;
                    });
                }
            });
        });
        FaultServer { address, requests }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.address.port())
    }

    /// `http://localhost:PORT{path}`: the same server as another origin.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.address.port())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    script: &Script,
    recorded: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Ok(());
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let request = Request { line, headers };
    let index = {
        let mut all = recorded.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    let reply = script(index, &request);
    tokio::time::sleep(reply.delay_head).await;
    let mut out = format!("HTTP/1.1 {} Scripted\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if !reply.close_delimited {
        let length = reply.content_length.unwrap_or(reply.body.len() as u64);
        let _ = write!(out, "Content-Length: {length}\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    let sent = reply.send.unwrap_or(reply.body.len()).min(reply.body.len());
    stream.write_all(&reply.body[..sent]).await?;
    stream.flush().await?;
    if reply.after == After::Stall && reply.send.is_some() {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let _ = stream.shutdown().await;
    Ok(())
}
