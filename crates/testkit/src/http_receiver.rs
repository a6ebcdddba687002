//! An HTTP receiver for pitcrew-tail's ndjson, Loki and Elasticsearch sinks: a real HTTP/1.1
//! server (hyper on tokio, its own thread and runtime) on `127.0.0.1:0` that records every
//! request (method, path with query, headers, body — gunzipped when `Content-Encoding: gzip`)
//! and can be scripted to misbehave: answer a status for the next K requests, hang, close the
//! connection without answering, answer garbage, answer an Elasticsearch bulk response with
//! given per-item statuses, stop listening (an outage) and come back on the SAME port.
//!
//! No real Elasticsearch or Loki runs here (neither is packaged for Debian, and both need far
//! more memory than a test machine should spend): the tests check the documented request
//! formats field by field instead, and the default answers are the documented success
//! answers (`204` for Loki pushes, a bulk response with `"errors":false` and one `201` item per
//! document for `_bulk`, `200` otherwise).

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What the receiver does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// The documented success answer for the path (see the module docs).
    Default,
    /// This status, with a short text body and the given headers (e.g. `Retry-After`).
    Status(u16, Vec<(String, String)>),
    /// This status and body.
    Body(u16, String),
    /// Never answer (until the receiver stops or is dropped).
    Hang,
    /// Read the request, then close the connection without answering.
    Close,
    /// An Elasticsearch bulk answer with one item per status (`"errors"` true when any is not
    /// 2xx; failed items carry an `error` object with a type and a reason).
    Bulk(Vec<u16>),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// Path and query, e.g. `/loki/api/v1/push`.
    pub path: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped when it was gzip-encoded.
    pub body: Vec<u8>,
    /// The status answered; `None` when the request was hung up on or left hanging.
    pub status: Option<u16>,
}

impl ReceivedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether it was answered with a 2xx.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<ReceivedRequest>,
    script: VecDeque<Action>,
}

/// A control request; the sender is told when it is done (a std channel: callers block on
/// it, from inside a runtime or not).
enum Command {
    Stop(std::sync::mpsc::Sender<()>),
    Start(std::sync::mpsc::Sender<()>),
}

/// The running receiver; stopped when dropped.
pub struct HttpReceiver {
    port: u16,
    state: Arc<Mutex<State>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpReceiver {
    /// Starts listening on a free port of 127.0.0.1.
    pub fn start() -> HttpReceiver {
        // Bound here, served on a thread with its own runtime: callers may be inside a
        // runtime (async tests) or not.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("cannot bind 127.0.0.1:0 for the HTTP receiver");
        listener
            .set_nonblocking(true)
            .expect("cannot make the listener non-blocking");
        let port = listener.local_addr().expect("no local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (commands, receiver) = mpsc::unbounded_channel();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("http-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot build the receiver's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("cannot serve the listener");
                    serve(listener, port, shared, receiver).await;
                });
            })
            .expect("cannot start the receiver's thread");
        HttpReceiver {
            port,
            state,
            commands: Some(commands),
            thread: Some(thread),
        }
    }

    /// The port (the same across [`HttpReceiver::stop`] and [`HttpReceiver::resume`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next requests get `action`, `count` times (after what is scripted already).
    pub fn script(&self, action: Action, count: usize) {
        let mut state = self.lock();
        state.script.extend(std::iter::repeat_n(action, count));
    }

    /// Forgets what is scripted: requests get the default answers again.
    pub fn clear_script(&self) {
        self.lock().script.clear();
    }

    /// The next `count` requests get `status` (with an empty header list).
    pub fn fail_next(&self, status: u16, count: usize) {
        self.script(Action::Status(status, Vec::new()), count);
    }

    /// Stops listening and drops every open connection (an outage); returns once done.
    pub fn stop(&self) {
        self.command(Command::Stop);
    }

    /// Listens again on the same port; returns once listening.
    pub fn resume(&self) {
        self.command(Command::Start);
    }

    fn command(&self, make: fn(std::sync::mpsc::Sender<()>) -> Command) {
        let (done, wait) = std::sync::mpsc::channel();
        self.commands
            .as_ref()
            .expect("receiver running")
            .send(make(done))
            .expect("the receiver's thread is gone");
        wait.recv().expect("the receiver's thread is gone");
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    /// Waits (up to `deadline`) until `done` holds for the requests so far; returns them.
    /// Panics with what was received when it never does.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[ReceivedRequest]) -> bool,
    ) -> Vec<ReceivedRequest> {
        let start = Instant::now();
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                start.elapsed() < deadline,
                "HTTP receiver: {what} did not happen within {deadline:?}; got {} requests: {:?}",
                requests.len(),
                requests
                    .iter()
                    .map(|r| (r.method.clone(), r.path.clone(), r.status))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        // Closing the command channel ends the server loop.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    port: u16,
    state: Arc<Mutex<State>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        let accept = async {
            match &listener {
                Some(listener) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Stop(done)) => {
                    listener = None;
                    connections.abort_all();
                    while connections.join_next().await.is_some() {}
                    let _ = done.send(());
                }
                Some(Command::Start(done)) => {
                    listener = Some(bind_again(port).await);
                    let _ = done.send(());
                }
            },
            accepted = accept => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |request| handle(request, Arc::clone(&state)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Binds `port` again; the old socket may linger briefly.
async fn bind_again(port: u16) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(err) if start.elapsed() < Duration::from_secs(10) => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("HTTP receiver cannot listen on port {port} again: {err}"),
        }
    }
}

/// A closed connection, for hyper (the service's error makes it hang up).
#[derive(Debug)]
struct HangUp;

impl std::fmt::Display for HangUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted hang-up")
    }
}

impl std::error::Error for HangUp {}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, HangUp> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return Err(HangUp);
    };
    let mut body = body.to_bytes().to_vec();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let gzipped = headers
        .iter()
        .any(|(name, value)| name == "content-encoding" && value.eq_ignore_ascii_case("gzip"));
    if gzipped {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .is_ok()
        {
            body = plain;
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let action = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.script.pop_front().unwrap_or(Action::Default)
    };
    let documents = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .count()
        / 2;
    let (status, answer, extra): (u16, String, Vec<(String, String)>) = match &action {
        Action::Default if path.split('?').next().is_some_and(|p| p.ends_with("/_bulk")) => {
            (200, bulk_answer(&vec![201; documents]), Vec::new())
        }
        Action::Default if path.contains("/loki/") => (204, String::new(), Vec::new()),
        Action::Default => (200, "ok".to_owned(), Vec::new()),
        Action::Status(status, headers) => (*status, format!("scripted status {status}"), headers.clone()),
        Action::Body(status, text) => (*status, text.clone(), Vec::new()),
        Action::Bulk(statuses) => (200, bulk_answer(statuses), Vec::new()),
        Action::Hang | Action::Close => (0, String::new(), Vec::new()),
    };
    let answered = !matches!(action, Action::Hang | Action::Close);
    state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .requests
        .push(ReceivedRequest {
            method: parts.method.as_str().to_owned(),
            path,
            headers,
            body,
            status: answered.then_some(status),
        });
    match action {
        Action::Hang => std::future::pending().await,
        Action::Close => Err(HangUp),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(answer)));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in extra {
                if let (Ok(name), Ok(value)) = (
                    hyper::header::HeaderName::from_bytes(name.as_bytes()),
                    hyper::header::HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            Ok(response)
        }
    }
}

/// `{"took":1,"errors":…,"items":[{"create":{"_index":"x","status":…}}, …]}`.
fn bulk_answer(statuses: &[u16]) -> String {
    let items: Vec<serde_json::Value> = statuses
        .iter()
        .map(|&status| {
            let mut result = serde_json::json!({"_index": "logs", "status": status});
            if !(200..300).contains(&status) {
                result["error"] = serde_json::json!({
                    "type": if status == 429 { "es_rejected_execution_exception" } else { "mapper_parsing_exception" },
                    "reason": format!("scripted item failure {status}"),
                });
            }
            serde_json::json!({ "create": result })
        })
        .collect();
    let errors = statuses.iter().any(|status| !(200..300).contains(status));
    serde_json::json!({"took": 1, "errors": errors, "items": items}).to_string()
}
