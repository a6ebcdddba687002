//! `s3://` against real S3 servers on loopback: presigned GETs as the download loop makes them
//! (a plain GET, maybe with Range, of `presigned_get`'s URL; `describe_error` on a non-2xx).
//!
//! moto (`MotoPeer`) serves S3 and STS, so web identity runs end to end, but it checks no
//! presigned signature; s3s-fs (`S3sPeer`) verifies SigV4, so the signature itself, wrong
//! secrets and unknown keys are tested there.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pitcrew_core::exit::ExitCode;
use pitcrew_fetch::s3::{
    Credentials, S3Error, S3Object, S3Settings, credentials, describe_error, presigned_get,
};
use pitcrew_testkit::moto::{MotoPeer, S3S_ACCESS_KEY, S3S_SECRET_KEY, S3sPeer};

const BUCKET: &str = "pitcrew-test";
/// Static keys for moto, which takes any.
const MOTO_KEY_ID: &str = "AKIAMOTOTEST00000001";
const MOTO_SECRET: &str = "moto/Secret+Value/abcdefghijklmnopqrstuv";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/session+token==";
const WEB_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln";

fn client() -> reqwest::Client {
    // reqwest is built without a crypto provider; the binary installs ring's the same way.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("build a reqwest client")
}

fn settings(vars: &[(&str, &str)]) -> Result<S3Settings, S3Error> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    S3Settings::from_env(
        &|name| map.get(name).cloned(),
        pitcrew_fetch::s3::DEFAULT_ROLE_SESSION_NAME,
    )
}

fn static_settings(endpoint: &str, key_id: &str, secret: &str) -> S3Settings {
    settings(&[
        ("AWS_ACCESS_KEY_ID", key_id),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_ENDPOINT_URL", endpoint),
    ])
    .expect("valid settings")
}

fn object(bucket: &str, key: &str) -> S3Object {
    S3Object::parse(&format!("s3://{bucket}/{key}")).expect("a valid s3 URL")
}

/// What the download loop does for one attempt: presign, GET (maybe with Range), and on a
/// non-2xx read a few KiB and describe them.
async fn fetch(
    settings: &S3Settings,
    credentials: &Credentials,
    object: &S3Object,
    range: Option<&str>,
) -> Result<(u16, Vec<u8>), (u16, String)> {
    let url = presigned_get(
        settings,
        credentials,
        object,
        SystemTime::now(),
        Duration::from_secs(300),
    )
    .expect("presign");
    let mut request = client().get(url);
    if let Some(range) = range {
        request = request.header(reqwest::header::RANGE, range);
    }
    let response = request.send().await.expect("the S3 peer answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("read the body").to_vec();
    if (200..300).contains(&status) {
        Ok((status, body))
    } else {
        let head = &body[..body.len().min(4096)];
        Err((status, describe_error(status, head)))
    }
}

async fn static_credentials(settings: &S3Settings) -> Credentials {
    credentials(settings, &client())
        .await
        .expect("static credentials")
}

fn moto() -> Option<MotoPeer> {
    let peer = MotoPeer::start()?;
    peer.create_bucket(BUCKET);
    Some(peer)
}

fn s3s() -> Option<S3sPeer> {
    let peer = S3sPeer::start()?;
    peer.create_bucket(BUCKET);
    Some(peer)
}

/// Keys that break careless encoders: spaces, `+` (a space in form encoding), unicode, `?` and
/// `#` (which end a path), `%` (which starts an escape), and an encoded-looking dot.
const AWKWARD_KEYS: &[&str] = &[
    "dir/a b.txt",
    "plus+sign+",
    "ünïcødé/€ 日本.csv",
    "q?x=1&y=2#frag",
    "100%/%2e%20",
    "~tilde/(paren)!*'$,;=:@",
];

#[tokio::test]
async fn moto_presigned_get_returns_the_object() {
    let Some(peer) = moto() else { return };
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    peer.put_object(BUCKET, "data/customers.csv", &body);
    let settings = static_settings(&peer.endpoint(), MOTO_KEY_ID, MOTO_SECRET);
    let credentials = static_credentials(&settings).await;
    let fetched = fetch(
        &settings,
        &credentials,
        &object(BUCKET, "data/customers.csv"),
        None,
    )
    .await
    .unwrap_or_else(|err| panic!("{err:?}\n{}", peer.log()));
    assert_eq!(fetched, (200, body));
}

#[tokio::test]
async fn moto_range_on_a_presigned_url_returns_the_part() {
    let Some(peer) = moto() else { return };
    peer.put_object(BUCKET, "file.bin", b"0123456789abcdef");
    let settings = static_settings(&peer.endpoint(), MOTO_KEY_ID, MOTO_SECRET);
    let credentials = static_credentials(&settings).await;
    let target = object(BUCKET, "file.bin");
    let part = fetch(&settings, &credentials, &target, Some("bytes=10-"))
        .await
        .unwrap();
    assert_eq!(part, (206, b"abcdef".to_vec()));
    let part = fetch(&settings, &credentials, &target, Some("bytes=2-4"))
        .await
        .unwrap();
    assert_eq!(part, (206, b"234".to_vec()));
}

#[tokio::test]
async fn moto_awkward_keys_reach_the_right_object() {
    let Some(peer) = moto() else { return };
    let settings = static_settings(&peer.endpoint(), MOTO_KEY_ID, MOTO_SECRET);
    let credentials = static_credentials(&settings).await;
    // Each object holds its own key, so a key that reached another object is caught too.
    let mut keys = AWKWARD_KEYS.to_vec();
    keys.extend(["/leading-slash", "double//slash"]);
    for key in &keys {
        peer.put_object(BUCKET, key, key.as_bytes());
    }
    for key in keys {
        let fetched = fetch(&settings, &credentials, &object(BUCKET, key), None).await;
        assert_eq!(
            fetched,
            Ok((200, key.as_bytes().to_vec())),
            "key {key:?}\n{}",
            peer.log()
        );
    }
}

#[tokio::test]
async fn moto_missing_key_is_no_such_key() {
    let Some(peer) = moto() else { return };
    peer.put_object(BUCKET, "present", b"x");
    let settings = static_settings(&peer.endpoint(), MOTO_KEY_ID, MOTO_SECRET);
    let credentials = static_credentials(&settings).await;
    // Case matters: `Present` is not `present`.
    let (status, described) = fetch(&settings, &credentials, &object(BUCKET, "Present"), None)
        .await
        .unwrap_err();
    assert_eq!(status, 404);
    assert!(described.starts_with("NoSuchKey: "), "{described}");
    assert!(described.contains("check the key"), "{described}");
}

#[tokio::test]
async fn moto_missing_bucket_is_no_such_bucket() {
    let Some(peer) = moto() else { return };
    let settings = static_settings(&peer.endpoint(), MOTO_KEY_ID, MOTO_SECRET);
    let credentials = static_credentials(&settings).await;
    let (status, described) = fetch(&settings, &credentials, &object("no-such-bucket", "k"), None)
        .await
        .unwrap_err();
    assert_eq!(status, 404);
    assert!(described.starts_with("NoSuchBucket: "), "{described}");
    assert!(described.contains("check the bucket name"), "{described}");
}

#[tokio::test]
async fn moto_session_token_is_sent_and_the_object_fetched() {
    let Some(peer) = moto() else { return };
    peer.put_object(BUCKET, "k", b"with a token");
    let settings = settings(&[
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_ENDPOINT_URL_S3", &peer.endpoint()),
        ("AWS_REGION", "eu-west-1"),
    ])
    .unwrap();
    assert_eq!(settings.credential_source(), "static keys with a session token");
    let credentials = static_credentials(&settings).await;
    let url = presigned_get(
        &settings,
        &credentials,
        &object(BUCKET, "k"),
        SystemTime::now(),
        Duration::from_secs(60),
    )
    .unwrap();
    let token = url
        .query_pairs()
        .find(|(name, _)| name == "X-Amz-Security-Token")
        .map(|(_, value)| value.into_owned());
    assert_eq!(token.as_deref(), Some(SESSION_TOKEN));
    assert!(
        url.query_pairs()
            .any(|(name, value)| name == "X-Amz-Credential" && value.contains("/eu-west-1/s3/"))
    );
    let fetched = fetch(&settings, &credentials, &object(BUCKET, "k"), None).await;
    assert_eq!(fetched, Ok((200, b"with a token".to_vec())));
}

fn web_identity_settings(endpoint: &str, token_file: &std::path::Path) -> S3Settings {
    settings(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/fetcher"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "eu-west-1"),
    ])
    .expect("valid web identity settings")
}

#[tokio::test]
async fn moto_web_identity_end_to_end_and_the_token_file_is_read_at_each_call() {
    let Some(peer) = moto() else { return };
    peer.put_object(BUCKET, "config.json", b"{\"ok\":true}");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // As the kubelet writes it: a JWT and a trailing newline.
    std::fs::write(&token_file, format!("{WEB_TOKEN}\n")).unwrap();
    let settings = web_identity_settings(&peer.endpoint(), &token_file);
    assert_eq!(settings.credential_source(), "web identity");

    let credentials = credentials(&settings, &client())
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", peer.log()));
    let expires = credentials.expires_at().expect("STS answers carry an Expiration");
    assert!(expires > SystemTime::now(), "{expires:?}");
    assert_eq!(format!("{credentials:?}"), "Credentials(***)");
    let url = presigned_get(
        &settings,
        &credentials,
        &object(BUCKET, "config.json"),
        SystemTime::now(),
        Duration::from_secs(60),
    )
    .unwrap();
    // Temporary credentials from STS: an ASIA key id and a session token.
    assert!(
        url.query_pairs()
            .any(|(name, value)| name == "X-Amz-Credential" && value.starts_with("ASIA")),
        "{url}"
    );
    assert!(url.query_pairs().any(|(name, _)| name == "X-Amz-Security-Token"));
    let fetched = fetch(&settings, &credentials, &object(BUCKET, "config.json"), None).await;
    assert_eq!(fetched, Ok((200, b"{\"ok\":true}".to_vec())));

    // The kubelet rotates the file: each call reads it again, so a file gone now is an error
    // now (and not a cached token).
    std::fs::remove_file(&token_file).unwrap();
    let err = credentials_error(&settings).await;
    assert_eq!(err.exit_code(), ExitCode::NoInput);
}

async fn credentials_error(settings: &S3Settings) -> S3Error {
    match credentials(settings, &client()).await {
        Ok(credentials) => panic!("expected an error, got {credentials:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn web_identity_token_file_missing_empty_or_a_directory_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    // STS is never reached: port 9 on loopback has nothing listening.
    let missing = dir.path().join("no-such-token");
    let err = credentials_error(&web_identity_settings("http://127.0.0.1:9", &missing)).await;
    assert_eq!(err.exit_code(), ExitCode::NoInput);
    assert!(matches!(err, S3Error::Unreadable(_)));
    let text = err.to_string();
    assert!(
        text.contains("AWS_WEB_IDENTITY_TOKEN_FILE") && text.contains("no-such-token"),
        "{text}"
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = credentials_error(&web_identity_settings("http://127.0.0.1:9", &empty)).await;
    assert!(err.to_string().contains("is empty"), "{err}");
    assert_eq!(err.exit_code(), ExitCode::NoInput);

    let err = credentials_error(&web_identity_settings("http://127.0.0.1:9", dir.path())).await;
    assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
}

#[tokio::test]
async fn sts_unreachable_or_answering_nonsense_is_a_credentials_error_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_TOKEN).unwrap();
    let port = pitcrew_testkit::free_port();
    let err = credentials_error(&web_identity_settings(
        &format!("http://127.0.0.1:{port}"),
        &token_file,
    ))
    .await;
    assert_eq!(err.exit_code(), ExitCode::Failure);
    let text = format!("{err} {err:?}");
    assert!(text.contains("AssumeRoleWithWebIdentity"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains(WEB_TOKEN), "{text}");

    // An nginx is not STS: a 404 page, or a 200 that is not an STS answer.
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    for path in ["/no-such-path/", "/healthz/"] {
        let settings = settings(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/fetcher"),
            ("AWS_ENDPOINT_URL_STS", &nginx.http_url(path)),
        ])
        .unwrap();
        let err = credentials_error(&settings).await;
        assert_eq!(err.exit_code(), ExitCode::Failure, "{err}");
        assert!(!err.to_string().contains(WEB_TOKEN), "{err}");
    }
}

#[tokio::test]
async fn s3s_verifies_our_signatures_for_awkward_keys_and_ranges() {
    let Some(peer) = s3s() else { return };
    let settings = static_settings(&peer.endpoint(), S3S_ACCESS_KEY, S3S_SECRET_KEY);
    let credentials = static_credentials(&settings).await;
    for key in AWKWARD_KEYS {
        peer.put_object(BUCKET, key, key.as_bytes());
    }
    for key in AWKWARD_KEYS {
        let fetched = fetch(&settings, &credentials, &object(BUCKET, key), None).await;
        assert_eq!(fetched, Ok((200, key.as_bytes().to_vec())), "key {key:?}");
    }
    let part = fetch(
        &settings,
        &credentials,
        &object(BUCKET, AWKWARD_KEYS[0]),
        Some("bytes=4-"),
    )
    .await;
    assert_eq!(part, Ok((206, b"a b.txt".to_vec())));
}

#[tokio::test]
async fn s3s_wrong_secret_is_signature_does_not_match_and_shows_no_secret() {
    let Some(peer) = s3s() else { return };
    peer.put_object(BUCKET, "k", b"x");
    let wrong_secret = "Wrong/Secret+Key/0123456789abcdefghijklm";
    let settings = static_settings(&peer.endpoint(), S3S_ACCESS_KEY, wrong_secret);
    let credentials = static_credentials(&settings).await;
    let (status, described) = fetch(&settings, &credentials, &object(BUCKET, "k"), None)
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(described.starts_with("SignatureDoesNotMatch"), "{described}");
    assert!(described.contains("check AWS_SECRET_ACCESS_KEY"), "{described}");
    let shown = format!("{described} {settings:?} {credentials:?}");
    for secret in [wrong_secret, S3S_SECRET_KEY, S3S_ACCESS_KEY] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[tokio::test]
async fn s3s_unknown_access_key_is_refused_with_a_hint() {
    let Some(peer) = s3s() else { return };
    peer.put_object(BUCKET, "k", b"x");
    let settings = static_settings(&peer.endpoint(), "AKIAUNKNOWNKEY000000", S3S_SECRET_KEY);
    let credentials = static_credentials(&settings).await;
    let (status, described) = fetch(&settings, &credentials, &object(BUCKET, "k"), None)
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    // s3s says NotSignedUp where AWS says InvalidAccessKeyId; both get the same hint.
    assert!(described.contains("check AWS_ACCESS_KEY_ID"), "{described}");
    assert!(!described.contains(S3S_SECRET_KEY), "{described}");
}

#[tokio::test]
async fn s3s_an_expired_presigned_url_is_refused() {
    let Some(peer) = s3s() else { return };
    peer.put_object(BUCKET, "k", b"x");
    let settings = static_settings(&peer.endpoint(), S3S_ACCESS_KEY, S3S_SECRET_KEY);
    let credentials = static_credentials(&settings).await;
    let url = presigned_get(
        &settings,
        &credentials,
        &object(BUCKET, "k"),
        SystemTime::now() - Duration::from_secs(3600),
        Duration::from_secs(60),
    )
    .unwrap();
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
}
