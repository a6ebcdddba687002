//! A fake Kubernetes API server for `tests/k8s.rs`: no real API server can run on this machine
//! (it needs etcd and a control plane), so this one answers exactly the requests pitcrew-wait
//! makes, the way kube-apiserver does, over HTTPS with a throw-away CA:
//!
//! - `GET /apis/batch/v1/namespaces/NS/jobs/NAME` (a Job, or a 404 Status naming it);
//! - `GET /api/v1/namespaces/NS/pods?labelSelector=…` and
//!   `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=…` (lists);
//! - each collection with `watch=1&resourceVersion=RV&timeoutSeconds=N` (jobs with
//!   `fieldSelector=metadata.name=NAME`): a chunked stream of newline-delimited watch events,
//!   every change after RV, ended by the server after `timeoutSeconds`.
//!
//! It checks `Authorization: Bearer TOKEN` against the token the test set (401 otherwise),
//! records every request, and lets a test change objects (each change gets the next
//! resourceVersion and becomes an event) and plan misbehaviour for the next watch or request:
//! 410 Gone, an ERROR event, a garbage line, a stream dropped mid-way, a 403. Anything else is
//! recorded as unexpected, so a test can assert the client asked for nothing else. Label
//! selectors support `key=value` and `key!=value` terms, which is all the tests use.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use url::Url;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The three resources the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Res {
    Job,
    Pod,
    Slice,
}

/// Misbehaviour for the next watch request.
#[derive(Debug, Clone)]
pub enum WatchPlan {
    /// Answer the watch request itself with this status and a Status body.
    Status(u16),
    /// Send an ERROR event with a 410 Status, then end the stream (what kube-apiserver does
    /// when the resourceVersion is too old).
    ExpiredEvent,
    /// Send this raw line before the events.
    Garbage(&'static str),
    /// Break the connection (no final chunk) right after the stream starts.
    Drop,
    /// End the stream at once, cleanly, as when `timeoutSeconds` has passed.
    End,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The path, without the query.
    pub path: String,
    /// The decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The bearer token sent, if any.
    pub token: Option<String>,
}

impl Seen {
    /// Whether this was a watch.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|watch| watch == "1" || watch == "true")
    }
}

struct Event {
    version: u64,
    res: Res,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    token: String,
    version: u64,
    objects: BTreeMap<(Res, String, String), Value>,
    events: Vec<Event>,
    seen: Vec<Seen>,
    unexpected: Vec<String>,
    open_watches: usize,
    watch_plans: VecDeque<WatchPlan>,
    forbidden: bool,
    /// The next GET of a Job answers with this status and raw body instead.
    canned_job: Option<(u16, String)>,
}

/// The running fake; stopped when dropped.
pub struct FakeApi {
    /// `https://127.0.0.1:PORT`.
    pub url: Url,
    /// The service-account directory: `token`, `ca.crt`, `namespace` (`shop`).
    pub service_account: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApi {
    /// Starts the server on a free loopback port, with a service-account directory whose
    /// `ca.crt` is the server's CA, whose token is `token` and whose namespace is `shop`.
    pub async fn start(token: &str) -> FakeApi {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = pitcrew_testkit::certs::write(dir.path(), &["localhost", "127.0.0.1"]);
        let service_account = dir.path().join("serviceaccount");
        std::fs::create_dir(&service_account).unwrap();
        std::fs::copy(&certs.ca, service_account.join("ca.crt")).unwrap();
        std::fs::write(service_account.join("token"), token).unwrap();
        std::fs::write(service_account.join("namespace"), "shop\n").unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    // A client that rejects our certificate ends here, before any request.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, &request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeApi {
            url: Url::parse(&format!("https://127.0.0.1:{port}")).unwrap(),
            service_account,
            _dir: dir,
            state,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Creates or replaces an object in namespace `shop` (an ADDED or MODIFIED event).
    pub fn put(&self, res: Res, object: Value) {
        self.put_in(res, "shop", object);
    }

    /// Creates or replaces an object in `namespace`.
    pub fn put_in(&self, res: Res, namespace: &str, mut object: Value) {
        let mut state = self.state();
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object["metadata"]["namespace"] = json!(namespace);
        let name = object["metadata"]["name"]
            .as_str()
            .expect("objects have names")
            .to_owned();
        let key = (res, namespace.to_owned(), name);
        let kind = if state.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.objects.insert(key, object.clone());
        state.events.push(Event {
            version,
            res,
            namespace: namespace.to_owned(),
            kind,
            object,
        });
    }

    /// Deletes an object in namespace `shop` (a DELETED event).
    pub fn delete(&self, res: Res, name: &str) {
        let mut state = self.state();
        let Some(mut object) = state.objects.remove(&(res, "shop".to_owned(), name.to_owned())) else {
            panic!("no {res:?} {name} to delete");
        };
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        state.events.push(Event {
            version,
            res,
            namespace: "shop".to_owned(),
            kind: "DELETED",
            object,
        });
    }

    /// The token the server accepts from now on.
    pub fn set_token(&self, token: &str) {
        token.clone_into(&mut self.state().token);
    }

    /// Answers 403 to everything from now on (or no longer).
    pub fn forbid(&self, forbidden: bool) {
        self.state().forbidden = forbidden;
    }

    /// Misbehaves on the next watch request.
    pub fn plan_watch(&self, plan: WatchPlan) {
        self.state().watch_plans.push_back(plan);
    }

    /// Forgets planned misbehaviour that no watch used.
    pub fn clear_plans(&self) {
        self.state().watch_plans.clear();
    }

    /// Answers the next GET of a Job with `status` and `body` as they are.
    pub fn can_job_answer(&self, status: u16, body: &str) {
        self.state().canned_job = Some((status, body.to_owned()));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// Requests that are not among the documented ones.
    pub fn unexpected(&self) -> Vec<String> {
        self.state().unexpected.clone()
    }

    /// Waits (up to 60 s) until a watch stream is open.
    pub async fn watch_opened(&self) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.state().open_watches == 0 {
            assert!(
                Instant::now() < give_up,
                "no watch was opened within 60 s: {:?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes the service-account token file (the kubelet rotating it).
    pub fn write_token_file(&self, token: &str) {
        write_atomically(&self.service_account.join("token"), token);
    }
}

/// Like the kubelet: a new file renamed over the old one.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Kubernetes Status object.
fn status(code: u16, reason: &str, message: &str, details: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    })
}

fn full(status: u16, body: &Value) -> Response<Body> {
    raw(status, body.to_string())
}

fn raw(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap()
}

/// The route a request path names: resource, namespace, and a Job's name.
fn route(path: &str) -> Option<(Res, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", "batch", "v1", "namespaces", ns, "jobs", name] => {
            Some((Res::Job, (*ns).to_owned(), Some((*name).to_owned())))
        }
        ["apis", "batch", "v1", "namespaces", ns, "jobs"] => Some((Res::Job, (*ns).to_owned(), None)),
        ["api", "v1", "namespaces", ns, "pods"] => Some((Res::Pod, (*ns).to_owned(), None)),
        [
            "apis",
            "discovery.k8s.io",
            "v1",
            "namespaces",
            ns,
            "endpointslices",
        ] => Some((Res::Slice, (*ns).to_owned(), None)),
        _ => None,
    }
}

fn plural(res: Res) -> (&'static str, &'static str) {
    match res {
        Res::Job => ("jobs", "batch"),
        Res::Pod => ("pods", ""),
        Res::Slice => ("endpointslices", "discovery.k8s.io"),
    }
}

/// Whether `object` passes the request's label or field selector.
fn selected(object: &Value, query: &BTreeMap<String, String>) -> bool {
    if let Some(field) = query.get("fieldSelector") {
        let Some(name) = field.strip_prefix("metadata.name=") else {
            return false;
        };
        if object["metadata"]["name"] != name {
            return false;
        }
    }
    if let Some(selector) = query.get("labelSelector") {
        let labels = &object["metadata"]["labels"];
        for term in selector.split(',') {
            let matched = if let Some((key, value)) = term.split_once("!=") {
                labels[key.trim()] != value.trim()
            } else if let Some((key, value)) = term.split_once('=') {
                labels[key.trim()] == value.trim()
            } else {
                !labels[term.trim()].is_null()
            };
            if !matched {
                return false;
            }
        }
    }
    true
}

/// One documented request, routed.
struct Call {
    res: Res,
    namespace: String,
    /// A Job's name, for the GET of one Job.
    name: Option<String>,
    query: BTreeMap<String, String>,
    uri: String,
}

impl Call {
    fn verb(&self) -> &'static str {
        if self.query.get("watch").is_some_and(|watch| watch == "1") {
            "watch"
        } else if self.name.is_some() {
            "get"
        } else {
            "list"
        }
    }
}

fn handle(state: &Arc<Mutex<State>>, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
    let token = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut guard = lock(state);
    guard.seen.push(Seen {
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
    });
    if token.as_deref() != Some(guard.token.as_str()) {
        return full(401, &status(401, "Unauthorized", "Unauthorized", &json!({})));
    }
    let documented = request.method() == hyper::Method::GET
        && request
            .headers()
            .get("accept")
            .is_some_and(|accept| accept == "application/json");
    let Some((res, namespace, name)) = route(&path).filter(|_| documented) else {
        guard
            .unexpected
            .push(format!("{} {}", request.method(), request.uri()));
        let message = "the server could not find the requested resource";
        return full(404, &status(404, "NotFound", message, &json!({})));
    };
    let call = Call {
        res,
        namespace,
        name,
        query,
        uri: request.uri().to_string(),
    };
    if guard.forbidden {
        return forbidden(&call);
    }
    match call.verb() {
        "get" => get_job(&mut guard, &call),
        "list" => list(&mut guard, &call),
        _ => watch(state, guard, call),
    }
}

/// A 403 worded as kube-apiserver words it.
fn forbidden(call: &Call) -> Response<Body> {
    let (resource, group) = plural(call.res);
    let group = if group.is_empty() {
        String::new()
    } else {
        format!(" in API group \"{group}\"")
    };
    let message = format!(
        "{resource} is forbidden: User \"system:serviceaccount:shop:waiter\" cannot {} \
         resource \"{resource}\"{group} in the namespace \"{}\"",
        call.verb(),
        call.namespace
    );
    full(
        403,
        &status(403, "Forbidden", &message, &json!({"kind": resource})),
    )
}

fn get_job(state: &mut State, call: &Call) -> Response<Body> {
    if let Some((code, body)) = state.canned_job.take() {
        return raw(code, body);
    }
    let name = call.name.clone().unwrap_or_default();
    match state
        .objects
        .get(&(call.res, call.namespace.clone(), name.clone()))
    {
        Some(job) => full(200, job),
        None => full(
            404,
            &status(
                404,
                "NotFound",
                &format!("jobs.batch \"{name}\" not found"),
                &json!({"name": name, "group": "batch", "kind": "jobs"}),
            ),
        ),
    }
}

fn list(state: &mut State, call: &Call) -> Response<Body> {
    let query = &call.query;
    let complete = match call.res {
        Res::Job => false,
        Res::Pod => query.keys().eq(["labelSelector"]),
        Res::Slice => {
            query.keys().eq(["labelSelector"])
                && query["labelSelector"].starts_with("kubernetes.io/service-name=")
        }
    };
    if !complete {
        state.unexpected.push(format!("list {}", call.uri));
        return full(400, &status(400, "BadRequest", "unexpected list", &json!({})));
    }
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((kind, ns, _), object)| {
            *kind == call.res && *ns == call.namespace && selected(object, query)
        })
        .map(|(_, object)| object.clone())
        .collect();
    let list = json!({
        "kind": "List",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": state.version.to_string()},
        "items": items,
    });
    full(200, &list)
}

/// A watch: it must say where to start and when to end, and a Job's must name the Job.
fn watch(state: &Arc<Mutex<State>>, mut guard: MutexGuard<'_, State>, call: Call) -> Response<Body> {
    let query = &call.query;
    let from: Option<u64> = query.get("resourceVersion").and_then(|rv| rv.parse().ok());
    let seconds: Option<u64> = query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse().ok())
        .filter(|&seconds| seconds > 0);
    let job_named = query
        .get("fieldSelector")
        .is_some_and(|field| field.starts_with("metadata.name="));
    let (Some(from), Some(seconds), true) = (from, seconds, call.res != Res::Job || job_named) else {
        guard.unexpected.push(format!("watch {}", call.uri));
        return full(400, &status(400, "BadRequest", "unexpected watch", &json!({})));
    };
    let plan = guard.watch_plans.pop_front();
    if let Some(WatchPlan::Status(code)) = plan {
        if code == 403 {
            return forbidden(&call);
        }
        let (reason, message) = if code == 410 {
            ("Expired", "too old resource version: 1 (2)")
        } else {
            ("InternalError", "planned failure")
        };
        return full(code, &status(code, reason, message, &json!({})));
    }
    guard.open_watches += 1;
    drop(guard);

    let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(16);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        stream_events(&state, &sender, &call, from, seconds, plan).await;
        lock(&state).open_watches -= 1;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| (frame, receiver))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap()
}

/// Sends every matching event after `from` as one JSON line, as they happen, until
/// `seconds` pass or the client goes away.
async fn stream_events(
    state: &Mutex<State>,
    sender: &mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
    call: &Call,
    from: u64,
    seconds: u64,
    plan: Option<WatchPlan>,
) {
    let line = |value: &Value| Ok(Frame::data(Bytes::from(format!("{value}\n"))));
    match plan {
        Some(WatchPlan::ExpiredEvent) => {
            let gone = status(410, "Expired", "too old resource version: 1 (2)", &json!({}));
            let _ = sender.send(line(&json!({"type": "ERROR", "object": gone}))).await;
            return;
        }
        Some(WatchPlan::Garbage(text)) => {
            let _ = sender
                .send(Ok(Frame::data(Bytes::from(format!("{text}\n")))))
                .await;
        }
        Some(WatchPlan::Drop) => {
            let _ = sender.send(Err(io::Error::other("dropped on purpose"))).await;
            return;
        }
        Some(WatchPlan::End) => return,
        Some(WatchPlan::Status(_)) | None => {}
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = from;
    while Instant::now() < end && !sender.is_closed() {
        let batch: Vec<(u64, Value)> = lock(state)
            .events
            .iter()
            .filter(|event| {
                event.version > sent
                    && event.res == call.res
                    && event.namespace == call.namespace
                    && selected(&event.object, &call.query)
            })
            .map(|event| (event.version, json!({"type": event.kind, "object": event.object})))
            .collect();
        for (version, event) in batch {
            if sender.send(line(&event)).await.is_err() {
                return;
            }
            sent = version;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
