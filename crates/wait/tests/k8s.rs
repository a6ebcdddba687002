//! `k8s://` targets against a FAKE Kubernetes API server (`support/fake_k8s.rs`): no real API
//! server can run on this machine, so a small HTTPS server answers exactly the requests the
//! client documents (a Job GET, pod and EndpointSlice lists, and their watches as streams of
//! newline-delimited events), checks the bearer token, and lets each test change objects while
//! a watch is open or make the server misbehave (403, 410 Gone, a dropped stream, garbage).
//!
//! Readiness rules, the watch, credentials (token rotation, a missing service-account
//! directory, a CA that does not match) and the exit codes through `run` and the binary. No
//! timing is asserted beyond "well before a generous deadline".

#[path = "support/fake_k8s.rs"]
mod fake_k8s;

use std::path::Path;
use std::time::Duration;

use clap::Parser as _;
use fake_k8s::{FakeApi, Res, WatchPlan};
use pitcrew_core::shutdown::Shutdown;
use pitcrew_wait::cli::Args;
use pitcrew_wait::probe::k8s::K8sSettings;
use pitcrew_wait::probe::{Kind, NotReady, ProbeSettings, Prober};
use pitcrew_wait::target::Target;
use pitcrew_wait::{WaitError, run};
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

/// A token with the characters real ones have (base64url and dots), and more.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl-_~+/=";

fn settings(url: &Url, dir: &Path) -> ProbeSettings {
    ProbeSettings {
        k8s: K8sSettings {
            api_server: Some(url.clone()),
            service_account_dir: Some(dir.to_owned()),
        },
        ..ProbeSettings::default()
    }
}

/// A prober for `target` against the fake, and the parsed target.
fn prober(fake: &FakeApi, target: &str) -> (Prober, Target) {
    let target = Target::parse(target).unwrap();
    let prober = Prober::new(
        settings(&fake.url, &fake.service_account),
        std::slice::from_ref(&target),
    )
    .expect("the prober never fails for k8s targets");
    (prober, target)
}

fn in_secs(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// One attempt judged on what the first read shows: the fake ends the watch (if the attempt
/// gets that far) at once, as a server does when `timeoutSeconds` has passed, so the attempt
/// reports the listed state without waiting for its deadline.
async fn check_briefly(fake: &FakeApi, target: &str) -> Result<(), NotReady> {
    let (prober, target) = prober(fake, target);
    fake.plan_watch(WatchPlan::End);
    let outcome = prober.check(&target, in_secs(60)).await;
    fake.clear_plans();
    outcome
}

fn job(name: &str, spec: &Value, status: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "migrate"}},
        "spec": spec,
        "status": status,
    })
}

fn running_job(active: u64, failed: u64) -> Value {
    job(
        "migrate",
        &json!({"backoffLimit": 6, "completions": 1}),
        &json!({"active": active, "failed": failed}),
    )
}

fn complete_job() -> Value {
    job(
        "migrate",
        &json!({"backoffLimit": 6, "completions": 1}),
        &json!({"succeeded": 1, "conditions": [
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
        ]}),
    )
}

fn failed_job() -> Value {
    job(
        "migrate",
        &json!({"backoffLimit": 6, "completions": 1}),
        &json!({"failed": 7, "conditions": [{
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit"
        }]}),
    )
}

fn pod(name: &str, app: &str, ready: bool) -> Value {
    let condition = if ready {
        json!({"type": "Ready", "status": "True"})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady"})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, "tier": "front"}},
        "status": {"phase": "Running", "conditions": [condition]},
    })
}

fn slice(name: &str, service: &str, ready: &[Option<bool>]) -> Value {
    let endpoints: Vec<Value> = ready
        .iter()
        .enumerate()
        .map(|(index, ready)| {
            let conditions = ready.map_or_else(|| json!({}), |ready| json!({"ready": ready}));
            json!({"addresses": [format!("10.0.0.{index}")], "conditions": conditions})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
    })
}

fn assert_not_ready(outcome: Result<(), NotReady>, kind: Kind, reason: &str) {
    let err = outcome.expect_err(reason);
    assert_eq!((err.kind, err.reason.as_str()), (kind, reason));
}

/// The requests of each kind the fake saw: (GETs and lists, watches).
fn counts(fake: &FakeApi) -> (usize, usize) {
    let seen = fake.seen();
    let watches = seen.iter().filter(|seen| seen.is_watch()).count();
    (seen.len() - watches, watches)
}

#[tokio::test]
async fn a_job_that_completes_while_the_watch_is_open_is_seen_through_the_watch() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, running_job(1, 0));
    let (prober, target) = prober(&fake, "k8s://job/migrate");
    let started = Instant::now();
    let (outcome, ()) = tokio::join!(prober.check(&target, in_secs(120)), async {
        fake.watch_opened().await;
        fake.put(Res::Job, complete_job());
    });
    outcome.expect("the completed Job is ready");
    // One GET, one watch, in one attempt: the completion came through the watch.
    assert_eq!(counts(&fake), (1, 1), "{:?}", fake.seen());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it did not wait for the deadline"
    );
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/apis/batch/v1/namespaces/shop/jobs/migrate");
    let watch = &seen[1];
    assert_eq!(watch.path, "/apis/batch/v1/namespaces/shop/jobs");
    assert_eq!(watch.query["fieldSelector"], "metadata.name=migrate");
    assert_eq!(
        watch.query["resourceVersion"], "1",
        "from the GET's resourceVersion"
    );
    let seconds: u64 = watch.query["timeoutSeconds"].parse().unwrap();
    assert!((1..=120).contains(&seconds), "{seconds}");
    assert!(seen.iter().all(|seen| seen.token.as_deref() == Some(TOKEN)));
    assert!(fake.unexpected().is_empty(), "{:?}", fake.unexpected());
}

#[tokio::test]
async fn a_failed_job_is_fatal_with_its_reason_whether_listed_or_watched() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, failed_job());
    let reason = "Job shop/migrate failed: BackoffLimitExceeded: Job has reached the specified backoff limit";
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate").await,
        Kind::Fatal,
        reason,
    );

    fake.put(Res::Job, running_job(1, 5));
    let (prober, target) = prober(&fake, "k8s://job/migrate");
    let (outcome, ()) = tokio::join!(prober.check(&target, in_secs(120)), async {
        fake.watch_opened().await;
        fake.put(Res::Job, failed_job());
    });
    assert_not_ready(outcome, Kind::Fatal, reason);
}

/// Regression for k8s-wait-for #45 and #53: it counted failed pods against a Job, so one that
/// succeeded on a retry was waited for forever. A Job still retrying is not failed either.
#[tokio::test]
async fn a_job_that_succeeded_on_a_retry_is_complete_and_one_still_retrying_is_not_failed() {
    let fake = FakeApi::start(TOKEN).await;
    let mut retried = complete_job();
    retried["status"]["failed"] = json!(2);
    fake.put(Res::Job, retried);
    check_briefly(&fake, "k8s://job/migrate")
        .await
        .expect("complete despite 2 failed pods");
    fake.put(Res::Job, running_job(1, 2));
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate").await,
        Kind::Present,
        "Job shop/migrate: 1 active, 0 succeeded, 2 failed (backoffLimit 6)",
    );
}

/// Regression for k8s-wait-for #68: it scraped the pod counts from `kubectl describe`, and when
/// that output changed, a Job with "1 Active / 0 Succeeded / 0 Failed" passed as done. Here
/// only the conditions decide, and counting successes would not do either: one success of
/// `completions: 3` is not complete.
#[tokio::test]
async fn a_running_job_is_not_done_and_one_success_of_three_completions_is_not_complete() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, running_job(1, 0));
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate").await,
        Kind::Present,
        "Job shop/migrate: 1 active, 0 succeeded, 0 failed (backoffLimit 6)",
    );
    fake.put(
        Res::Job,
        job(
            "migrate",
            &json!({"backoffLimit": 6, "completions": 3, "parallelism": 1}),
            &json!({"active": 1, "succeeded": 1}),
        ),
    );
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate").await,
        Kind::Present,
        "Job shop/migrate: 1 active, 1 of 3 succeeded, 0 failed (backoffLimit 6)",
    );
}

#[tokio::test]
async fn a_missing_job_is_waited_for_counted_as_done_or_fatal_as_missing_says() {
    let fake = FakeApi::start(TOKEN).await;
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate").await,
        Kind::Unreachable,
        "Job shop/migrate does not exist (yet); if it was deleted by ttlSecondsAfterFinished, \
         add ?missing=ready",
    );
    check_briefly(&fake, "k8s://job/migrate?missing=ready")
        .await
        .unwrap();
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate?missing=fail&namespace=batch").await,
        Kind::Fatal,
        "Job batch/migrate does not exist (missing=fail)",
    );
    assert_eq!(counts(&fake), (3, 0), "a missing Job is not watched");
    assert_eq!(
        fake.seen()[2].path,
        "/apis/batch/v1/namespaces/batch/jobs/migrate",
        "?namespace= wins over the pod's own"
    );
}

/// With `?missing=ready`, an answer from something that is not the API server speaking of this
/// Job (a wrong --k8s-api-server path, a proxy) must not pass as "finished and deleted".
#[tokio::test]
async fn an_answer_that_is_not_about_the_job_does_not_count_as_deleted() {
    let fake = FakeApi::start(TOKEN).await;
    fake.can_job_answer(404, "<html><body>404 page not found</body></html>");
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate?missing=ready").await,
        Kind::Unknown,
        "the API server answered get jobs with HTTP 404: <html><body>404 page not found</body></html>",
    );
    // Nor a 200 that is not this Job.
    fake.can_job_answer(200, r#"{"kind": "Status", "status": "Success"}"#);
    assert_not_ready(
        check_briefly(&fake, "k8s://job/migrate?missing=ready").await,
        Kind::Unknown,
        r#"the API server's answer to get jobs is not the Job: {"kind": "Status", "status": "Success"}"#,
    );
}

#[tokio::test]
async fn a_job_deleted_while_watched_is_reported_at_once() {
    let fake = FakeApi::start(TOKEN).await;
    for (target, expected) in [
        ("k8s://job/migrate?missing=ready", None),
        ("k8s://job/migrate", Some(Kind::Unreachable)),
        ("k8s://job/migrate?missing=fail", Some(Kind::Fatal)),
    ] {
        fake.put(Res::Job, running_job(1, 0));
        let (prober, target) = prober(&fake, target);
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(prober.check(&target, in_secs(120)), async {
            fake.watch_opened().await;
            fake.delete(Res::Job, "migrate");
        });
        assert_eq!(outcome.map_err(|err| err.kind).err(), expected, "{target}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{target}: not at the deadline"
        );
    }
}

#[tokio::test]
async fn pods_are_ready_when_every_running_one_is_and_the_last_one_is_seen_through_the_watch() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Pod, pod("web-a", "web", true));
    fake.put(Res::Pod, pod("web-b", "web", false));
    // Not selected: another app.
    fake.put(Res::Pod, pod("db-0", "db", false));
    let target = "k8s://pods?labelSelector=app=web,tier!=back";
    assert_not_ready(
        check_briefly(&fake, target).await,
        Kind::Present,
        "1 of 2 pods ready; web-b: ContainersNotReady",
    );

    let (prober, parsed) = prober(&fake, target);
    let (outcome, ()) = tokio::join!(prober.check(&parsed, in_secs(120)), async {
        fake.watch_opened().await;
        fake.put(Res::Pod, pod("web-b", "web", true));
    });
    outcome.expect("both pods are ready");
    let seen = fake.seen();
    let list = seen.iter().find(|seen| !seen.is_watch()).unwrap();
    assert_eq!(list.path, "/api/v1/namespaces/shop/pods");
    assert_eq!(list.query["labelSelector"], "app=web,tier!=back");
    assert!(fake.unexpected().is_empty(), "{:?}", fake.unexpected());
}

#[tokio::test]
async fn terminating_and_finished_pods_are_skipped() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Pod, pod("web-new", "web", true));
    let mut old = pod("web-old", "web", false);
    old["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    fake.put(Res::Pod, old);
    let mut done = pod("web-job", "web", false);
    done["status"]["phase"] = json!("Succeeded");
    fake.put(Res::Pod, done);
    let mut evicted = pod("web-evicted", "web", false);
    evicted["status"]["phase"] = json!("Failed");
    fake.put(Res::Pod, evicted);
    check_briefly(&fake, "k8s://pods?labelSelector=app=web")
        .await
        .unwrap();

    fake.delete(Res::Pod, "web-new");
    assert_not_ready(
        check_briefly(&fake, "k8s://pods?labelSelector=app=web").await,
        Kind::Present,
        "no pod matches app=web in namespace shop (3 finished or terminating pods skipped)",
    );
    assert_not_ready(
        check_briefly(&fake, "k8s://pods?labelSelector=app=nothing").await,
        Kind::Present,
        "no pod matches app=nothing in namespace shop",
    );
}

#[tokio::test]
async fn endpoints_are_ready_when_any_endpoint_is() {
    let fake = FakeApi::start(TOKEN).await;
    // Another Service's ready endpoints do not count.
    fake.put(Res::Slice, slice("web-1", "web", &[Some(true)]));
    let target = "k8s://endpoints/api";
    assert_not_ready(
        check_briefly(&fake, target).await,
        Kind::Present,
        "no endpoints for Service shop/api",
    );
    fake.put(Res::Slice, slice("api-1", "api", &[Some(false), Some(false)]));
    assert_not_ready(
        check_briefly(&fake, target).await,
        Kind::Present,
        "Service shop/api has 2 endpoints, none ready",
    );

    let (prober, parsed) = prober(&fake, target);
    let (outcome, ()) = tokio::join!(prober.check(&parsed, in_secs(120)), async {
        fake.watch_opened().await;
        // A second slice whose endpoint has no `ready` condition: that means ready.
        fake.put(Res::Slice, slice("api-2", "api", &[None]));
    });
    outcome.expect("an endpoint without a ready condition is ready");
    let seen = fake.seen();
    assert!(seen.iter().all(|seen| {
        seen.path == "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
            && seen.query["labelSelector"] == "kubernetes.io/service-name=api"
    }));
}

#[tokio::test]
async fn forbidden_names_the_missing_permission() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, complete_job());
    fake.forbid(true);
    let err = check_briefly(&fake, "k8s://job/migrate").await.unwrap_err();
    assert_eq!(err.kind, Kind::Unknown);
    assert!(
        err.reason.starts_with(
            "forbidden: the service account cannot get jobs in namespace shop; grant get, list, \
             watch on jobs (apiGroup batch) (see examples/wait-for-k8s-job.yaml); API server: \
             jobs is forbidden: User \"system:serviceaccount:shop:waiter\" cannot get"
        ),
        "{}",
        err.reason
    );
    let err = check_briefly(&fake, "k8s://pods?labelSelector=app=web")
        .await
        .unwrap_err();
    assert!(
        err.reason.starts_with("forbidden: the service account cannot list pods in namespace shop; grant get, list, watch on pods (see"),
        "{}",
        err.reason
    );
    let err = check_briefly(&fake, "k8s://endpoints/api").await.unwrap_err();
    assert!(
        err.reason.contains("cannot list endpointslices in namespace shop; grant get, list, watch on endpointslices (apiGroup discovery.k8s.io)"),
        "{}",
        err.reason
    );
    assert!(!err.reason.contains(TOKEN));
}

#[tokio::test]
async fn a_forbidden_watch_leaves_the_listed_state_and_says_what_to_grant() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, running_job(1, 0));
    fake.plan_watch(WatchPlan::Status(403));
    let (prober, target) = prober(&fake, "k8s://job/migrate");
    let err = prober.check(&target, in_secs(120)).await.unwrap_err();
    assert_eq!(err.kind, Kind::Present, "the Job's own state decides the kind");
    assert!(
        err.reason.starts_with(
            "Job shop/migrate: 1 active, 0 succeeded, 0 failed (backoffLimit 6); cannot watch: \
             forbidden: the service account cannot watch jobs"
        ),
        "{}",
        err.reason
    );
}

/// A watch that cannot go on (expired, dropped, garbage) ends the attempt at once with the
/// state last seen, and the next attempt lists again and still finds the change.
#[tokio::test]
async fn a_watch_that_expires_drops_or_sends_garbage_ends_the_attempt_and_the_next_lists_again() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Pod, pod("web-a", "web", false));
    let target = "k8s://pods?labelSelector=app=web";
    let plans = [
        WatchPlan::Status(410),
        WatchPlan::ExpiredEvent,
        WatchPlan::Drop,
        WatchPlan::Garbage("{\"type\": \"MODIFIED\", \"object\": {\"metadata\": {"),
        WatchPlan::Garbage("\u{1b}[31mnot json at all"),
        WatchPlan::Garbage("{\"type\": \"SURPRISE\"}"),
    ];
    for (index, plan) in plans.into_iter().enumerate() {
        fake.plan_watch(plan.clone());
        let (prober, parsed) = prober(&fake, target);
        let started = Instant::now();
        assert_not_ready(
            prober.check(&parsed, in_secs(120)).await,
            Kind::Present,
            "0 of 1 pods ready; web-a: ContainersNotReady",
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{plan:?}: ended at once"
        );
        assert_eq!(
            counts(&fake),
            (index + 1, index + 1),
            "{plan:?}: one list, one watch"
        );
    }
    fake.put(Res::Pod, pod("web-a", "web", true));
    check_briefly(&fake, target)
        .await
        .expect("the next attempt lists again");
}

#[tokio::test]
async fn the_token_is_read_at_every_attempt_and_never_shown() {
    let fake = FakeApi::start("first-token").await;
    fake.put(Res::Job, complete_job());
    fake.write_token_file("first-token\n");
    let (prober, target) = prober(&fake, "k8s://job/migrate");
    prober.check(&target, in_secs(30)).await.expect("first token");

    // The kubelet rotates the token: the same prober sends the new one.
    fake.set_token("second-token");
    fake.write_token_file("second-token");
    prober.check(&target, in_secs(30)).await.expect("second token");
    let tokens: Vec<Option<String>> = fake.seen().into_iter().map(|seen| seen.token).collect();
    assert_eq!(
        tokens,
        [Some("first-token".to_owned()), Some("second-token".to_owned())]
    );

    // A token the server no longer takes: unauthorized, without the token in the reason.
    fake.set_token("third-token");
    let err = prober.check(&target, in_secs(30)).await.unwrap_err();
    assert_eq!(err.kind, Kind::Unknown);
    assert_eq!(
        err.reason,
        "unauthorized: the API server rejected the service-account token (expired, or its \
         service account deleted?): Unauthorized"
    );

    // A token that cannot be a header value is named by its file, not quoted.
    fake.write_token_file("secret\nwith-a-newline");
    let err = prober.check(&target, in_secs(30)).await.unwrap_err();
    assert_eq!(err.kind, Kind::Fatal);
    assert!(
        err.reason
            .ends_with("/token holds characters an HTTP header cannot carry"),
        "{}",
        err.reason
    );
    assert!(!err.reason.contains("secret"), "{}", err.reason);
}

#[tokio::test]
async fn missing_credentials_are_fatal_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::parse("https://127.0.0.1:1").unwrap();
    let target = Target::parse("k8s://job/migrate").unwrap();
    let check = |dir: &Path| {
        let prober = Prober::new(settings(&url, dir), std::slice::from_ref(&target)).unwrap();
        let target = target.clone();
        async move { prober.check(&target, in_secs(30)).await.unwrap_err() }
    };

    let absent = dir.path().join("serviceaccount");
    let err = check(&absent).await;
    assert_eq!(err.kind, Kind::Fatal);
    assert_eq!(
        err.reason,
        format!(
            "no service-account credentials: {} does not exist; the pod runs with \
             automountServiceAccountToken: false, or this is not a Kubernetes pod (then pass \
             --k8s-api-server and --k8s-service-account-dir)",
            absent.display()
        )
    );

    std::fs::create_dir(&absent).unwrap();
    let err = check(&absent).await;
    assert_eq!(err.kind, Kind::Fatal);
    assert!(
        err.reason.starts_with(&format!(
            "cannot read the pod's namespace from {}: not found; name one in the target",
            absent.join("namespace").display()
        )),
        "{}",
        err.reason
    );
    std::fs::write(absent.join("namespace"), "shop").unwrap();
    let err = check(&absent).await;
    assert!(
        err.reason.starts_with(&format!(
            "cannot read the service-account token {}: not found; the pod runs with \
             automountServiceAccountToken: false",
            absent.join("token").display()
        )),
        "{}",
        err.reason
    );
    std::fs::write(absent.join("token"), TOKEN).unwrap();
    let err = check(&absent).await;
    assert_eq!(err.kind, Kind::Fatal);
    assert!(
        err.reason
            .contains(&format!("{}: not found", absent.join("ca.crt").display())),
        "{}",
        err.reason
    );
    assert!(!err.reason.contains(TOKEN));

    // No --k8s-api-server and no KUBERNETES_SERVICE_HOST (only checkable outside a pod).
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        let settings = ProbeSettings {
            k8s: K8sSettings {
                api_server: None,
                service_account_dir: Some(absent.clone()),
            },
            ..ProbeSettings::default()
        };
        let prober = Prober::new(settings, std::slice::from_ref(&target)).unwrap();
        let err = prober.check(&target, in_secs(30)).await.unwrap_err();
        assert_eq!(err.kind, Kind::Fatal);
        assert!(
            err.reason.contains("KUBERNETES_SERVICE_HOST is not set"),
            "{}",
            err.reason
        );
        assert!(err.reason.contains("--k8s-api-server"), "{}", err.reason);
    }
}

/// The token goes only to a server whose certificate the service account's CA signed.
#[tokio::test]
async fn a_server_the_service_account_ca_did_not_sign_gets_no_token() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, complete_job());
    let other = tempfile::tempdir().unwrap();
    let certs = pitcrew_testkit::certs::write(other.path(), &["localhost", "127.0.0.1"]);
    std::fs::copy(&certs.ca, fake.service_account.join("ca.crt")).unwrap();
    let err = check_briefly(&fake, "k8s://job/migrate").await.unwrap_err();
    assert_eq!(err.kind, Kind::Unknown);
    assert!(
        // Both test CAs share a name, so rustls finds an "issuer" whose signature fails.
        err.reason.starts_with(&format!(
            "cannot reach the API server {}: TLS error: invalid peer certificate",
            fake.url.origin().ascii_serialization()
        )),
        "{}",
        err.reason
    );
    assert!(fake.seen().is_empty(), "no request was sent: {:?}", fake.seen());
}

fn config(args: &[&str]) -> pitcrew_wait::Config {
    Args::try_parse_from(std::iter::once("pitcrew-wait").chain(args.iter().copied()))
        .expect("valid arguments")
        .config()
        .expect("valid config")
}

fn never_stops() -> Shutdown {
    let (trigger, shutdown) = Shutdown::manual();
    std::mem::forget(trigger);
    shutdown
}

#[tokio::test]
async fn run_waits_out_a_retrying_job_and_ends_at_once_when_one_fails() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, running_job(1, 2));
    let url = fake.url.to_string();
    let dir = fake.service_account.display().to_string();
    let args = [
        "--k8s-api-server",
        url.as_str(),
        "--k8s-service-account-dir",
        dir.as_str(),
        "--timeout",
        "5m",
        "--attempt-timeout",
        "2m",
        "k8s://job/migrate",
    ];
    let parsed = config(&args);
    let (outcome, ()) = tokio::join!(run(&parsed, never_stops()), async {
        fake.watch_opened().await;
        fake.put(Res::Job, complete_job());
    });
    let ready = outcome.expect("the Job completed");
    assert_eq!(ready[0].target, "k8s://job/migrate");

    fake.put(Res::Job, running_job(1, 5));
    let started = Instant::now();
    let parsed = config(&args);
    let (outcome, ()) = tokio::join!(run(&parsed, never_stops()), async {
        fake.watch_opened().await;
        fake.put(Res::Job, failed_job());
    });
    let err = outcome.unwrap_err();
    assert!(matches!(err, WaitError::TargetFailed { .. }), "{err:?}");
    assert_eq!(err.exit_code().code(), 1);
    assert!(
        err.to_string()
            .contains("k8s://job/migrate cannot become ready: Job shop/migrate failed: BackoffLimitExceeded"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "not at the timeout");
}

/// `--invert k8s://job/x` waits until the Job is gone (a 404), seen through the watch.
#[tokio::test]
async fn invert_waits_until_the_job_is_deleted() {
    let fake = FakeApi::start(TOKEN).await;
    fake.put(Res::Job, running_job(1, 0));
    let url = fake.url.to_string();
    let dir = fake.service_account.display().to_string();
    let args = [
        "--k8s-api-server",
        url.as_str(),
        "--k8s-service-account-dir",
        dir.as_str(),
        "--timeout",
        "5m",
        "--attempt-timeout",
        "2m",
        "--invert",
        "k8s://job/migrate",
    ];
    let parsed = config(&args);
    let (outcome, ()) = tokio::join!(run(&parsed, never_stops()), async {
        fake.watch_opened().await;
        fake.delete(Res::Job, "migrate");
    });
    let gone = outcome.expect("the Job is gone");
    assert_eq!(
        gone[0].attempts, 1,
        "the deletion came through the first attempt's watch"
    );
    assert_eq!(counts(&fake), (1, 1));
}

#[tokio::test]
async fn the_binary_exits_0_for_a_complete_job_and_1_for_a_failed_one_without_showing_the_token() {
    let fake = FakeApi::start(TOKEN).await;
    let work = tempfile::tempdir().unwrap();
    let termination_log = work.path().join("termination-log");
    let run_binary = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pitcrew-wait"))
            .args(["--k8s-api-server", fake.url.as_str()])
            .arg("--k8s-service-account-dir")
            .arg(&fake.service_account)
            .arg("--termination-log")
            .arg(&termination_log)
            .args(["--timeout", "2m", "--log-level", "debug", "k8s://job/migrate"])
            .env_remove("PITCREW_LOG_FORMAT")
            .env_remove("PITCREW_LOG_LEVEL")
            .output()
    };

    fake.put(Res::Job, complete_job());
    let output = run_binary().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("k8s://job/migrate is ready"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");

    fake.put(Res::Job, failed_job());
    let output = run_binary().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Job shop/migrate failed: BackoffLimitExceeded"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(&termination_log).unwrap();
    assert!(
        log.contains("Job shop/migrate failed: BackoffLimitExceeded"),
        "{log}"
    );
    assert!(!stderr.contains(TOKEN) && !log.contains(TOKEN));

    // Forbidden: the reason, with the permission to grant, is logged; the token is not.
    fake.forbid(true);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pitcrew-wait"))
        .args(["--k8s-api-server", fake.url.as_str()])
        .arg("--k8s-service-account-dir")
        .arg(&fake.service_account)
        .arg("--termination-log")
        .arg(&termination_log)
        .args(["--timeout", "1s", "--log-level", "debug", "k8s://job/migrate"])
        .env_remove("PITCREW_LOG_FORMAT")
        .env_remove("PITCREW_LOG_LEVEL")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("grant get, list, watch on jobs"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
}
