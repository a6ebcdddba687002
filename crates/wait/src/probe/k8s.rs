//! `k8s://`: Kubernetes Jobs, Pods and Service endpoints, read from the API server with the
//! pod's service-account credentials.
//!
//! A deliberately small client: three GETs and their watches, JSON read as untyped values. A
//! full client (kube-rs and its generated types) would weigh more than the rest of the tool.
//!
//! Each attempt lists (or, for a Job, gets) the objects and judges them. When they exist but
//! are not ready, it watches from the list's `resourceVersion` and judges again on every
//! event, so a Job that completes or a pod that turns Ready is seen at once rather than at the
//! next poll. The watch ends a moment before the attempt's deadline with the latest state as
//! the reason, and the runner's next attempt lists afresh; a watch that expires (410 Gone), an
//! ERROR event, a stream that ends early or an unreadable line end it the same way.
//!
//! Credentials come from the service-account directory: `token` is read at every attempt
//! (bound tokens are rotated by the kubelet rewriting the file), `ca.crt` once, at the first
//! attempt, and `namespace` when a target names none. None of them is read before an attempt,
//! so `--dry-run` and runs outside a cluster do not fail for want of them. TLS to the API server
//! trusts exactly `ca.crt` (not the system bundle, not `--ca-file`, not `--insecure`): the token
//! goes to whichever server passes that check. The token never appears in a reason or a log
//! line.
//!
//! Only the object's own state decides the [`Kind`]: a Job that does not exist is
//! [`Kind::Unreachable`] (so `--invert k8s://job/x` waits for its deletion), one that exists but
//! is not done is [`Kind::Present`], and everything the API server or the network does wrong
//! (refused, 403, 500, garbage) is [`Kind::Unknown`], which `--invert` never counts as gone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use pitcrew_core::duration::display as human;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{Kind, NotReady, describe_io, printable};
use crate::error::WaitError;
use crate::target::{K8sResource, K8sTarget, MissingJob};

/// Where the service account's files are mounted in every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The manifest that shows the Role a waiting pod needs; 403 reasons point to it.
const RBAC_EXAMPLE: &str = "examples/wait-for-k8s-job.yaml";

/// What to do about missing credentials, appended to those reasons.
const CREDENTIALS_HINT: &str = "the pod runs with automountServiceAccountToken: false, or this is \
not a Kubernetes pod (then pass --k8s-api-server and --k8s-service-account-dir)";

/// A list of pods can be large (thousands of pods of a few KiB each); beyond this something is
/// wrong, and the attempt says so rather than buffering without end.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;

/// One watch event carries one object (etcd caps those at 1.5 MiB by default).
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// What an ERROR event with a 410 means: the watch's resourceVersion is too old, which is
/// routine (compaction), unlike the other reasons a watch ends.
const WATCH_EXPIRED: &str = "the watch expired (410 Gone)";

/// How many not-ready pods a reason names.
const PODS_NAMED: usize = 3;

const USER_AGENT: &str = concat!("pitcrew-wait/", env!("CARGO_PKG_VERSION"));

/// Where `k8s://` targets find the API server and their credentials.
#[derive(Debug, Clone, Default)]
pub struct K8sSettings {
    /// The API server; `None` means `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub api_server: Option<Url>,
    /// The directory holding `token`, `ca.crt` and `namespace`; `None` means
    /// [`SERVICE_ACCOUNT_DIR`].
    pub service_account_dir: Option<PathBuf>,
}

/// The API client; built once, by the prober. Nothing in it fails at construction: missing
/// credentials or a missing server address are reported by each attempt, as fatal.
pub struct K8sProbe {
    /// The API server, or why there is none.
    server: Result<Url, String>,
    dir: PathBuf,
    /// Built at the first attempt that gets that far, from `ca.crt`.
    client: OnceLock<reqwest::Client>,
}

impl K8sProbe {
    /// Takes the API server address (from the settings or the pod's environment) and the
    /// service-account directory; reads no file yet. A `--k8s-api-server` that cannot be used
    /// is a usage error (exit 64) at once; a pod without the in-cluster address is reported by
    /// the attempts, so that `--dry-run` works outside a cluster.
    pub fn new(settings: &K8sSettings) -> Result<K8sProbe, WaitError> {
        let server = match &settings.api_server {
            Some(url) => Ok(check_server_url(url.clone()).map_err(WaitError::Usage)?),
            None => in_cluster_server(
                std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref(),
                std::env::var("KUBERNETES_SERVICE_PORT").ok().as_deref(),
            ),
        };
        Ok(K8sProbe {
            server,
            dir: settings
                .service_account_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR)),
            client: OnceLock::new(),
        })
    }

    /// One attempt: list, judge, and if the objects exist but are not ready, watch them until
    /// they are or `deadline` comes.
    pub async fn check(&self, target: &K8sTarget, deadline: Instant) -> Result<(), NotReady> {
        let server = self
            .server
            .as_ref()
            .map_err(|reason| NotReady::fatal(reason.clone()))?;
        if !self.dir.is_dir() {
            return Err(NotReady::fatal(format!(
                "no service-account credentials: {} does not exist; {CREDENTIALS_HINT}",
                self.dir.display()
            )));
        }
        let namespace = match &target.namespace {
            Some(namespace) => namespace.clone(),
            None => self.read_namespace()?,
        };
        let authorization = self.authorization()?;
        let api = Api {
            client: self.client()?,
            server,
            authorization,
            deadline,
        };
        let mut view = View {
            namespace,
            resource: &target.resource,
            objects: BTreeMap::new(),
        };
        super::http::within_attempt(deadline, async {
            let resource_version = api.list(&mut view).await?;
            let latest = match view.judge() {
                Err(not_ready) if not_ready.kind == Kind::Present => not_ready,
                // Ready, failed, gone, or missing: a watch cannot tell more, and `--invert`
                // wants a missing Job reported at once.
                done => return done,
            };
            api.watch(&mut view, &resource_version, latest).await
        })
        .await
    }

    fn read_namespace(&self) -> Result<String, NotReady> {
        let path = self.dir.join("namespace");
        let namespace = std::fs::read_to_string(&path).map_err(|err| {
            NotReady::fatal(format!(
                "cannot read the pod's namespace from {}: {}; name one in the target \
                 (?namespace=NS), or: {CREDENTIALS_HINT}",
                path.display(),
                describe_io(&err)
            ))
        })?;
        let namespace = namespace.trim();
        if namespace.is_empty() {
            return Err(NotReady::fatal(format!(
                "{} is empty; name the namespace in the target (?namespace=NS)",
                path.display()
            )));
        }
        Ok(namespace.to_owned())
    }

    /// `Bearer TOKEN`, from the token file as it is now: the kubelet rewrites it as the token
    /// rotates, and an hour-old copy would be rejected.
    fn authorization(&self) -> Result<HeaderValue, NotReady> {
        let path = self.dir.join("token");
        let token = std::fs::read_to_string(&path).map_err(|err| {
            NotReady::fatal(format!(
                "cannot read the service-account token {}: {}; {CREDENTIALS_HINT}",
                path.display(),
                describe_io(&err)
            ))
        })?;
        // The file's content is never quoted back: it is the credential.
        let token = token.trim();
        if token.is_empty() {
            return Err(NotReady::fatal(format!(
                "the service-account token {} is empty",
                path.display()
            )));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            NotReady::fatal(format!(
                "the service-account token {} holds characters an HTTP header cannot carry",
                path.display()
            ))
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The HTTP client, trusting only `ca.crt`; built once.
    fn client(&self) -> Result<&reqwest::Client, NotReady> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let path = self.dir.join("ca.crt");
        let tls = crate::tls::config_trusting_only(&path, "service-account CA").map_err(|err| {
            let (crate::tls::TlsError::Unreadable(message)
            | crate::tls::TlsError::Invalid(message)
            | crate::tls::TlsError::Setup(message)) = err;
            NotReady::fatal(format!("{message}; {CREDENTIALS_HINT}"))
        })?;
        let client = reqwest::Client::builder()
            // reqwest recognises the config by its type, so it takes the value, not the Arc.
            .use_preconfigured_tls((*tls).clone())
            // Bounded lookups with typed failures, as for http targets (the API server is
            // usually an IP address, but --k8s-api-server may name a host).
            .dns_resolver(std::sync::Arc::new(super::http::SystemResolver))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| NotReady::fatal(format!("cannot set up the Kubernetes client: {err}")))?;
        Ok(self.client.get_or_init(|| client))
    }
}

/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, as client-go builds it: an IPv6
/// host gets brackets.
fn in_cluster_server(host: Option<&str>, port: Option<&str>) -> Result<Url, String> {
    let host = host
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .ok_or_else(|| {
            "no Kubernetes API server address: KUBERNETES_SERVICE_HOST is not set (not running in a \
         Kubernetes pod?); pass --k8s-api-server https://HOST:PORT"
                .to_owned()
        })?;
    let port = port
        .map(str::trim)
        .filter(|port| !port.is_empty())
        .unwrap_or("443");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let url = Url::parse(&format!("https://{host}:{port}")).map_err(|err| {
        format!(
            "KUBERNETES_SERVICE_HOST={host} and KUBERNETES_SERVICE_PORT={port} do not make an \
             API server URL ({err}); pass --k8s-api-server https://HOST:PORT"
        )
    })?;
    check_server_url(url)
}

fn check_server_url(mut url: Url) -> Result<Url, String> {
    if url.scheme() != "https" {
        return Err(format!(
            "--k8s-api-server must be an https:// URL, not {}://: the service-account token is \
             never sent in the clear",
            url.scheme()
        ));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err("--k8s-api-server needs a host, e.g. https://10.96.0.1:443".to_owned());
    }
    // A path is kept (API servers behind a proxy live under one); the rest is ours to set.
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url)
}

/// The objects a target is judged on, keyed by name: the Job (at most one), the pods, or the
/// Service's EndpointSlices. Kept up to date by watch events.
struct View<'a> {
    namespace: String,
    resource: &'a K8sResource,
    objects: BTreeMap<String, Value>,
}

/// A request's verb and resource, for the permission a 403 says is missing.
struct Access<'a> {
    verb: &'static str,
    resource: &'static str,
    /// The API group, as a Role's `apiGroups` names it ("" for the core group).
    group: &'static str,
    namespace: &'a str,
}

impl View<'_> {
    /// The resource's collection: `/apis/batch/v1/namespaces/NS/jobs` and the like.
    fn collection(&self, server: &Url) -> Url {
        let (prefix, plural): (&[&str], &str) = match self.resource {
            K8sResource::Job { .. } => (&["apis", "batch", "v1"], "jobs"),
            K8sResource::Pods { .. } => (&["api", "v1"], "pods"),
            K8sResource::Endpoints { .. } => (&["apis", "discovery.k8s.io", "v1"], "endpointslices"),
        };
        let mut url = server.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            // Checked in `check_server_url`: an https URL with a host always has a path.
            segments
                .pop_if_empty()
                .extend(prefix)
                .extend(["namespaces", self.namespace.as_str(), plural]);
        }
        url
    }

    /// The selector that narrows the collection to this target's objects.
    fn selector(&self) -> (&'static str, String) {
        match self.resource {
            K8sResource::Job { name, .. } => ("fieldSelector", format!("metadata.name={name}")),
            K8sResource::Pods { label_selector } => ("labelSelector", label_selector.clone()),
            K8sResource::Endpoints { name } => {
                ("labelSelector", format!("kubernetes.io/service-name={name}"))
            }
        }
    }

    fn access(&self, verb: &'static str) -> Access<'_> {
        let (resource, group) = match self.resource {
            K8sResource::Job { .. } => ("jobs", "batch"),
            K8sResource::Pods { .. } => ("pods", ""),
            K8sResource::Endpoints { .. } => ("endpointslices", "discovery.k8s.io"),
        };
        Access {
            verb,
            resource,
            group,
            namespace: &self.namespace,
        }
    }

    /// Applies one watch event. `Err` ends the watch, saying why (for the debug log).
    fn apply(&mut self, line: &[u8]) -> Result<(), String> {
        let event: Value = serde_json::from_slice(line)
            .map_err(|err| format!("unreadable watch event ({err}): {}", printable(line)))?;
        let object = &event["object"];
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                let name = object_name(object).ok_or("a watch event without an object name")?;
                if self.wants(name) {
                    self.objects.insert(name.to_owned(), object.clone());
                }
            }
            Some("DELETED") => {
                let name = object_name(object).ok_or("a watch event without an object name")?;
                self.objects.remove(name);
            }
            Some("BOOKMARK") => {}
            Some("ERROR") => {
                return Err(if object["code"].as_u64() == Some(410) {
                    format!("{WATCH_EXPIRED}; the next attempt lists again")
                } else {
                    format!("the watch reported an error: {}", status_message(object))
                });
            }
            _ => return Err(format!("unexpected watch event: {}", printable(line))),
        }
        Ok(())
    }

    /// The field selector already narrows a Job's watch to its name; this keeps a server that
    /// ignored it from slipping another Job in.
    fn wants(&self, name: &str) -> bool {
        match self.resource {
            K8sResource::Job { name: wanted, .. } => name == wanted,
            _ => true,
        }
    }

    /// Ready, or why not.
    fn judge(&self) -> Result<(), NotReady> {
        let namespace = &self.namespace;
        match self.resource {
            K8sResource::Job { name, missing } => {
                judge_job(namespace, name, *missing, self.objects.get(name.as_str()))
            }
            K8sResource::Pods { label_selector } => judge_pods(namespace, label_selector, &self.objects),
            K8sResource::Endpoints { name } => judge_endpoints(namespace, name, &self.objects),
        }
    }
}

/// One attempt's connection to the API server.
struct Api<'a> {
    client: &'a reqwest::Client,
    server: &'a Url,
    authorization: HeaderValue,
    deadline: Instant,
}

impl Api<'_> {
    /// Fills `view` from a GET of the Job or a list of the pods or slices, and returns the
    /// `resourceVersion` to watch from.
    async fn list(&self, view: &mut View<'_>) -> Result<String, NotReady> {
        let mut url = view.collection(self.server);
        let job = match view.resource {
            K8sResource::Job { name, .. } => Some(name.as_str()),
            _ => None,
        };
        if let Some(name) = job {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.push(name);
            }
        } else {
            let (key, selector) = view.selector();
            url.query_pairs_mut().append_pair(key, &selector);
        }
        let access = view.access(if job.is_some() { "get" } else { "list" });
        let started = Instant::now();
        let response = self.get(url, &access, started).await?;
        let status = response.status();
        let body = self.read_body(response, &access, started).await?;
        if status == StatusCode::NOT_FOUND && job.is_some_and(|name| is_not_found(&body, name)) {
            // The view stays empty: the Job does not exist.
            return Ok(String::new());
        }
        if !status.is_success() {
            return Err(api_error(status, &body, &access));
        }
        let found: Value = serde_json::from_slice(&body).map_err(|err| {
            NotReady::unknown(format!(
                "the API server's answer to {} {} is not JSON: {err}",
                access.verb, access.resource
            ))
        })?;
        let resource_version = found
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // An answer that is not what was asked for (a proxy's page, a wrong path prefix) must
        // not pass as "no such Job" or "no pods": with ?missing=ready the first would be ready.
        let not_it = || {
            NotReady::unknown(format!(
                "the API server's answer to {} {} is not {}: {}",
                access.verb,
                access.resource,
                if job.is_some() { "the Job" } else { "a list" },
                printable(&body[..body.len().min(200)])
            ))
        };
        if let Some(name) = job {
            if found["kind"] != "Job" || object_name(&found) != Some(name) {
                return Err(not_it());
            }
            view.objects.insert(name.to_owned(), found);
        } else {
            let items = match &found["items"] {
                Value::Array(items) => items.as_slice(),
                Value::Null if found["metadata"].is_object() => &[],
                _ => return Err(not_it()),
            };
            for item in items {
                if let Some(name) = object_name(item) {
                    view.objects.insert(name.to_owned(), item.clone());
                }
            }
        }
        Ok(resource_version)
    }

    /// Watches from `resource_version`, judging `view` at every event; returns as soon as it
    /// is ready or its state changes kind (a Job deleted or failed), else with the latest
    /// state a moment before the deadline.
    async fn watch(
        &self,
        view: &mut View<'_>,
        resource_version: &str,
        mut latest: NotReady,
    ) -> Result<(), NotReady> {
        let now = Instant::now();
        // End a little early so the latest state, not the runner's "no answer within", is
        // what the attempt reports.
        let margin = (self.deadline.saturating_duration_since(now) / 10).min(Duration::from_millis(250));
        let end = self.deadline.checked_sub(margin).unwrap_or(self.deadline);
        let left = end.saturating_duration_since(now);
        if left.is_zero() || resource_version.is_empty() {
            return Err(latest);
        }
        // The server ends the watch about when this attempt gives up on it.
        let seconds = left.as_millis().div_ceil(1000).max(1);
        let mut url = view.collection(self.server);
        let (key, selector) = view.selector();
        url.query_pairs_mut()
            .append_pair(key, &selector)
            .append_pair("watch", "1")
            .append_pair("resourceVersion", resource_version)
            .append_pair("timeoutSeconds", &seconds.to_string());
        let access = view.access("watch");
        let response = match tokio::time::timeout_at(end, self.get(url, &access, now)).await {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => return Err(with_note(latest, &failure.reason)),
            Err(_) => return Err(latest),
        };
        let status = response.status();
        if !status.is_success() {
            if status == StatusCode::GONE {
                tracing::debug!(
                    "watch of {} expired (410 Gone); listing again next attempt",
                    access.resource
                );
                return Err(latest);
            }
            let body = match tokio::time::timeout_at(end, read_limited(response, MAX_EVENT_BYTES)).await {
                Ok(Ok(body)) => body,
                _ => Vec::new(),
            };
            let failure = api_error(status, &body, &access);
            return Err(with_note(latest, &failure.reason));
        }
        let resource = access.resource;
        tracing::debug!("watching {resource} from resourceVersion {resource_version}");
        let mut response = response;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout_at(end, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => {
                    tracing::debug!("the watch of {resource} ended; listing again next attempt");
                    return Err(latest);
                }
                Ok(Err(err)) => {
                    tracing::debug!(
                        "the watch of {resource} broke: {}",
                        super::http::describe_failure(&err)
                    );
                    return Err(latest);
                }
                Err(_) => return Err(latest),
            };
            pending.extend_from_slice(&chunk);
            while let Some(newline) = pending.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = pending.drain(..=newline).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(why) = view.apply(&line) {
                    if why.starts_with(WATCH_EXPIRED) {
                        tracing::debug!("{why}");
                    } else {
                        // Not what an API server sends: worth a word, since it keeps
                        // watches short.
                        tracing::warn!("watching {resource}: {why}; listing again next attempt");
                    }
                    return Err(latest);
                }
                match view.judge() {
                    Ok(()) => return Ok(()),
                    Err(state) if state.kind != Kind::Present => return Err(state),
                    Err(state) => latest = state,
                }
            }
            if pending.len() > MAX_EVENT_BYTES {
                tracing::debug!("a watch event over {MAX_EVENT_BYTES} bytes; listing again next attempt");
                return Err(latest);
            }
        }
    }

    /// Sends a GET with the token, bounded by the attempt's deadline.
    async fn get(
        &self,
        url: Url,
        access: &Access<'_>,
        started: Instant,
    ) -> Result<reqwest::Response, NotReady> {
        let request = self
            .client
            .get(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .send();
        match tokio::time::timeout_at(self.deadline, request).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(NotReady::unknown(format!(
                "cannot reach the API server {}: {}",
                self.origin(),
                super::http::describe_failure(&err)
            ))),
            Err(_) => Err(NotReady::unknown(format!(
                "no answer from the API server {} within {} ({} {})",
                self.origin(),
                human(started.elapsed()),
                access.verb,
                access.resource
            ))),
        }
    }

    async fn read_body(
        &self,
        response: reqwest::Response,
        access: &Access<'_>,
        started: Instant,
    ) -> Result<Vec<u8>, NotReady> {
        match tokio::time::timeout_at(self.deadline, read_limited(response, MAX_LIST_BYTES)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(reason)) => Err(NotReady::unknown(format!(
                "reading the API server's answer to {} {}: {reason}",
                access.verb, access.resource
            ))),
            Err(_) => Err(NotReady::unknown(format!(
                "the API server's answer to {} {} was still arriving after {}",
                access.verb,
                access.resource,
                human(started.elapsed())
            ))),
        }
    }

    /// `https://host:port`, for reasons (no path, no credentials).
    fn origin(&self) -> String {
        self.server.origin().ascii_serialization()
    }
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| super::http::describe_failure(&err))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("more than {} MiB", limit / (1024 * 1024)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The latest state of the objects, plus why the watch could not go on ("…; cannot watch:
/// forbidden: …").
fn with_note(mut latest: NotReady, note: &str) -> NotReady {
    let _ = write!(latest.reason, "; cannot watch: {note}");
    latest
}

/// A 404 that the API server gives for this very Job, not one from a wrong URL or a proxy:
/// with `?missing=ready` a stray 404 would otherwise count as "the Job finished".
fn is_not_found(body: &[u8], name: &str) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|status| {
        status["kind"] == "Status" && status["reason"] == "NotFound" && status["details"]["name"] == name
    })
}

/// An answer other than 2xx as a reason: 401 and 403 say what to fix; the rest quote the API
/// server's Status message.
fn api_error(status: StatusCode, body: &[u8], access: &Access<'_>) -> NotReady {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|value| value["kind"] == "Status")
        .map_or_else(|| printable(body), |value| status_message(&value));
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message
    };
    match status {
        StatusCode::UNAUTHORIZED => NotReady::unknown(format!(
            "unauthorized: the API server rejected the service-account token (expired, or its \
             service account deleted?): {message}"
        )),
        StatusCode::FORBIDDEN => {
            let group = if access.group.is_empty() {
                String::new()
            } else {
                format!(" (apiGroup {})", access.group)
            };
            NotReady::unknown(format!(
                "forbidden: the service account cannot {} {} in namespace {}; grant get, list, \
                 watch on {}{group} (see {RBAC_EXAMPLE}); API server: {message}",
                access.verb, access.resource, access.namespace, access.resource
            ))
        }
        _ => NotReady::unknown(format!(
            "the API server answered {} {} with HTTP {}: {message}",
            access.verb,
            access.resource,
            status.as_u16()
        )),
    }
}

/// A Status object's message, printable and bounded.
fn status_message(status: &Value) -> String {
    let text = status["message"]
        .as_str()
        .or_else(|| status["reason"].as_str())
        .unwrap_or_default();
    printable(text.as_bytes())
}

fn object_name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == kind)
}

fn is_true(condition: Option<&Value>) -> bool {
    condition.is_some_and(|condition| condition["status"] == "True")
}

fn count(object: &Value, pointer: &str) -> u64 {
    object.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Complete is ready; Failed ends the wait; the pod counters only describe the progress.
/// k8s-wait-for judged by the counters, scraped from `kubectl describe`: a Job that succeeded
/// on a retry after a failed pod was waited for forever (its issues #45, #53), and when
/// kubectl's output changed, a Job with one active pod passed as done (#68). `succeeded >= 1`
/// would be wrong too: a Job with `completions: 3` is not done after one pod. Since Kubernetes
/// 1.31 the controller sets SuccessCriteriaMet and FailureTarget first, and Complete or Failed
/// only once the Job's pods are gone: the outcome is decided by then, so they count as well.
fn judge_job(namespace: &str, name: &str, missing: MissingJob, job: Option<&Value>) -> Result<(), NotReady> {
    let Some(job) = job else {
        return match missing {
            MissingJob::Wait => Err(NotReady::unreachable(format!(
                "Job {namespace}/{name} does not exist (yet); if it was deleted by \
                 ttlSecondsAfterFinished, add ?missing=ready"
            ))),
            MissingJob::Ready => {
                tracing::debug!("Job {namespace}/{name} does not exist: counted as complete (missing=ready)");
                Ok(())
            }
            MissingJob::Fail => Err(NotReady::fatal(format!(
                "Job {namespace}/{name} does not exist (missing=fail)"
            ))),
        };
    };
    let failed = condition(job, "Failed")
        .filter(|found| is_true(Some(found)))
        .or_else(|| condition(job, "FailureTarget").filter(|found| is_true(Some(found))));
    if let Some(failed) = failed {
        let mut reason = format!("Job {namespace}/{name} failed");
        for part in [&failed["reason"], &failed["message"]] {
            if let Some(text) = part.as_str().filter(|text| !text.trim().is_empty()) {
                let _ = write!(reason, ": {}", printable(text.as_bytes()));
            }
        }
        return Err(NotReady::fatal(reason));
    }
    if is_true(condition(job, "Complete")) || is_true(condition(job, "SuccessCriteriaMet")) {
        return Ok(());
    }
    let (active, succeeded, failed) = (
        count(job, "/status/active"),
        count(job, "/status/succeeded"),
        count(job, "/status/failed"),
    );
    let succeeded = match job.pointer("/spec/completions").and_then(Value::as_u64) {
        Some(completions) if completions > 1 => format!("{succeeded} of {completions} succeeded"),
        _ => format!("{succeeded} succeeded"),
    };
    let limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_u64)
        .map_or_else(String::new, |limit| format!(" (backoffLimit {limit})"));
    let suspended = if job.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        " (suspended)"
    } else {
        ""
    };
    Err(NotReady::present(format!(
        "Job {namespace}/{name}{suspended}: {active} active, {succeeded}, {failed} failed{limit}"
    )))
}

/// Every pod that is running or starting must be Ready, and there must be one. Pods being
/// deleted are skipped (a rollout's old pods), and so are finished ones (Succeeded, or Failed
/// such as evicted pods, which linger until garbage-collected and never turn Ready again).
fn judge_pods(namespace: &str, selector: &str, pods: &BTreeMap<String, Value>) -> Result<(), NotReady> {
    let mut skipped = 0;
    let mut considered = 0;
    let mut not_ready = Vec::new();
    for (name, pod) in pods {
        let deleting = pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|stamp| !stamp.is_null());
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if deleting || matches!(phase, "Succeeded" | "Failed") {
            skipped += 1;
            continue;
        }
        considered += 1;
        let ready = condition(pod, "Ready");
        if !is_true(ready) {
            not_ready.push(format!("{name}: {}", pod_reason(pod, ready, phase)));
        }
    }
    if considered == 0 {
        let skipped = if skipped > 0 {
            format!(" ({skipped} finished or terminating pods skipped)")
        } else {
            String::new()
        };
        return Err(NotReady::present(format!(
            "no pod matches {selector} in namespace {namespace}{skipped}"
        )));
    }
    if not_ready.is_empty() {
        return Ok(());
    }
    let mut reason = format!(
        "{} of {considered} pods ready; {}",
        considered - not_ready.len(),
        not_ready[..not_ready.len().min(PODS_NAMED)].join(", ")
    );
    if not_ready.len() > PODS_NAMED {
        let _ = write!(reason, " and {} more", not_ready.len() - PODS_NAMED);
    }
    Err(NotReady::present(printable(reason.as_bytes())))
}

/// Why a pod is not ready: its Ready condition's reason (or why it is not scheduled, or its
/// phase), and the first container stuck waiting ("app: CrashLoopBackOff"), which is usually
/// what someone reading the log needs.
fn pod_reason(pod: &Value, ready: Option<&Value>, phase: &str) -> String {
    let unscheduled = condition(pod, "PodScheduled").filter(|scheduled| !is_true(Some(scheduled)));
    let reason = ready
        .and_then(|ready| ready["reason"].as_str())
        .or_else(|| unscheduled.and_then(|scheduled| scheduled["reason"].as_str()))
        .filter(|reason| !reason.is_empty())
        .unwrap_or(if phase.is_empty() { "not ready" } else { phase });
    let mut containers = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .into_iter()
        .filter_map(|pointer| pod.pointer(pointer).and_then(Value::as_array))
        .flatten();
    let waiting = containers.find_map(|status| {
        Some((
            status["name"].as_str()?,
            status.pointer("/state/waiting/reason")?.as_str()?,
        ))
    });
    match waiting {
        Some((container, why)) => format!("{reason} ({container}: {why})"),
        None => reason.to_owned(),
    }
}

/// Ready when any endpoint of any of the Service's EndpointSlices is ready; `ready` absent
/// means ready, as the EndpointSlice API defines it.
fn judge_endpoints(namespace: &str, service: &str, slices: &BTreeMap<String, Value>) -> Result<(), NotReady> {
    let mut total = 0;
    for slice in slices.values() {
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            total += 1;
            if endpoint.pointer("/conditions/ready") != Some(&Value::Bool(false)) {
                return Ok(());
            }
        }
    }
    Err(NotReady::present(match total {
        0 => format!("no endpoints for Service {namespace}/{service}"),
        1 => format!("Service {namespace}/{service} has 1 endpoint, not ready"),
        _ => format!("Service {namespace}/{service} has {total} endpoints, none ready"),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_in_cluster_address_comes_from_the_service_variables() {
        let url = in_cluster_server(Some("10.96.0.1"), Some("443")).unwrap();
        assert_eq!(url.as_str(), "https://10.96.0.1/");
        let url = in_cluster_server(Some("fd00:10:96::1"), Some("6443")).unwrap();
        assert_eq!(url.as_str(), "https://[fd00:10:96::1]:6443/");
        let err = in_cluster_server(None, Some("443")).unwrap_err();
        assert!(
            err.contains("KUBERNETES_SERVICE_HOST") && err.contains("--k8s-api-server"),
            "{err}"
        );
        let err = check_server_url(Url::parse("http://127.0.0.1:8001").unwrap()).unwrap_err();
        assert!(err.contains("https://") && err.contains("in the clear"), "{err}");
    }

    #[test]
    fn the_interim_job_conditions_of_kubernetes_1_31_decide_too() {
        let job = |kind: &str| {
            json!({"status": {"conditions": [
                {"type": kind, "status": "True", "reason": "PodFailurePolicy", "message": "exit 42"}
            ]}})
        };
        judge_job("shop", "m", MissingJob::Wait, Some(&job("SuccessCriteriaMet"))).unwrap();
        let err = judge_job("shop", "m", MissingJob::Wait, Some(&job("FailureTarget"))).unwrap_err();
        assert_eq!(err.kind, Kind::Fatal);
        assert_eq!(err.reason, "Job shop/m failed: PodFailurePolicy: exit 42");
        // A condition that is there but not True decides nothing.
        let unsure = json!({"status": {"conditions": [{"type": "Failed", "status": "False"}]}});
        let err = judge_job("shop", "m", MissingJob::Wait, Some(&unsure)).unwrap_err();
        assert_eq!(err.kind, Kind::Present);
        assert_eq!(err.reason, "Job shop/m: 0 active, 0 succeeded, 0 failed");
        let suspended = json!({"spec": {"suspend": true, "completions": 3, "backoffLimit": 2}});
        let err = judge_job("shop", "m", MissingJob::Wait, Some(&suspended)).unwrap_err();
        assert_eq!(
            err.reason,
            "Job shop/m (suspended): 0 active, 0 of 3 succeeded, 0 failed (backoffLimit 2)"
        );
    }

    #[test]
    fn pod_reasons_name_a_stuck_container_and_stay_short() {
        let crashing = |name: &str| {
            (
                name.to_owned(),
                json!({
                    "metadata": {"name": name},
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                        "containerStatuses": [
                            {"name": "sidecar", "state": {"running": {}}},
                            {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                        ]
                    }
                }),
            )
        };
        let pods: BTreeMap<String, Value> = ["a", "b", "c", "d", "e"].into_iter().map(crashing).collect();
        let err = judge_pods("shop", "app=web", &pods).unwrap_err();
        assert_eq!(
            err.reason,
            "0 of 5 pods ready; a: ContainersNotReady (app: CrashLoopBackOff), \
             b: ContainersNotReady (app: CrashLoopBackOff), c: ContainersNotReady (app: \
             CrashLoopBackOff) and 2 more"
        );
        let pending = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        ]}});
        let pods = BTreeMap::from([("p".to_owned(), pending)]);
        let err = judge_pods("shop", "app=web", &pods).unwrap_err();
        assert_eq!(err.reason, "0 of 1 pods ready; p: Unschedulable");
    }

    #[test]
    fn an_endpoint_without_a_ready_condition_is_ready() {
        let slices = BTreeMap::from([(
            "api-x".to_owned(),
            json!({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {}}]}),
        )]);
        judge_endpoints("shop", "api", &slices).unwrap();
        let slices = BTreeMap::from([(
            "api-x".to_owned(),
            json!({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}]}),
        )]);
        let err = judge_endpoints("shop", "api", &slices).unwrap_err();
        assert_eq!(err.reason, "Service shop/api has 1 endpoint, not ready");
    }

    #[test]
    fn a_404_counts_as_a_missing_job_only_when_the_api_server_says_so_for_that_job() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"jobs.batch \"migrate\" not found","reason":"NotFound","details":{"name":"migrate","group":"batch","kind":"jobs"},"code":404}"#;
        assert!(is_not_found(status, "migrate"));
        assert!(!is_not_found(status, "other"));
        assert!(!is_not_found(b"<html>404 Not Found</html>", "migrate"));
        let no_api = br#"{"kind":"Status","reason":"NotFound","details":{},"code":404,"message":"the server could not find the requested resource"}"#;
        assert!(!is_not_found(no_api, "migrate"));
    }
}
