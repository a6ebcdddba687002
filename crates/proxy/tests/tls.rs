//! TLS termination against the binary: ALPN h2 and http/1.1, the certificate swapped without
//! a restart when its Secret changes (the kubelet's `..data` symlink swap), a bad new pair
//! refused with the old one kept, and client certificates (required, optional, as identity).

use std::path::Path;
use std::sync::Arc;

mod support;
use support::{
    Pki, Proxy, echo_nginx, echoed, h1_send, h2_send, request, tls_connect, tls_connector, wait_until,
};

/// Publishes `cert` and `key` as a Secret volume does: a new timestamped directory, then the
/// `..data` symlink swapped to it atomically; `tls.crt` and `tls.key` point through `..data`.
fn publish(dir: &Path, version: &str, cert: &str, key: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), cert).unwrap();
    std::fs::write(data.join("tls.key"), key).unwrap();
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if !dir.join(name).exists() {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
}

/// The DER of the first certificate in a PEM text.
fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The certificate the proxy serves to a new connection.
async fn served(connector: &tokio_rustls::TlsConnector, proxy: &Proxy) -> Vec<u8> {
    let stream = tls_connect(connector, proxy.addr()).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work).join().unwrap()
}

#[tokio::test]
async fn https_serves_http2_and_http1_by_alpn() {
    let Some(nginx) = blocking(echo_nginx) else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "server");
    let (cert, key) = pki.issue_files("server", "localhost", &["localhost", "127.0.0.1"], false);
    let upstream = nginx.http_url("");
    let proxy = blocking(move || {
        Proxy::start(
            "https://",
            &[
                "--upstream",
                &upstream,
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        )
    });
    let h2 = tls_connector(&[&pki.ca_file], &[b"h2", b"http/1.1"], None);
    let stream = tls_connect(&h2, proxy.addr()).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let answer = h2_send(stream, request("https://localhost/echo", &[]))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.version), (200, http::Version::HTTP_2));
    assert_eq!(echoed(&answer.body, "proto"), "https");
    assert_eq!(echoed(&answer.body, "xhost"), "localhost");

    let h1 = tls_connector(&[&pki.ca_file], &[b"http/1.1"], None);
    let stream = tls_connect(&h1, proxy.addr()).await.unwrap();
    let answer = h1_send(stream, request("/echo", &[("host", "localhost")]))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.version), (200, http::Version::HTTP_11));
    assert_eq!(echoed(&answer.body, "proto"), "https");

    // Without ALPN the first bytes decide: HTTP/1.1 here.
    let plain = tls_connector(&[&pki.ca_file], &[], None);
    let stream = tls_connect(&plain, proxy.addr()).await.unwrap();
    let answer = h1_send(stream, request("/echo", &[("host", "localhost")]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);

    // Plain HTTP on the TLS port gets nowhere, and the proxy carries on.
    let raw = support::raw_exchange(proxy.addr(), b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(raw.as_ref().is_none_or(|answer| answer.status != 200), "{raw:?}");
    let stream = tls_connect(&h1, proxy.addr()).await.unwrap();
    assert_eq!(
        h1_send(stream, request("/echo", &[("host", "localhost")]))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn the_certificate_follows_a_secret_swap_and_a_bad_pair_keeps_the_old_one() {
    let Some(nginx) = blocking(pitcrew_testkit::nginx::NginxPeer::start) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let pki = Pki::new(dir.path(), "server");
    let (first_cert, first_key) = pki.issue("first", &["localhost"], false);
    let (second_cert, second_key) = pki.issue("second", &["localhost"], false);
    let (third_cert, _) = pki.issue("third", &["localhost"], false);
    publish(&secret, "2026_01_01", &first_cert, &first_key);
    let upstream = nginx.http_url("");
    let (cert, key) = (secret.join("tls.crt"), secret.join("tls.key"));
    let proxy = Arc::new(blocking(move || {
        Proxy::start(
            "https://",
            &[
                "--upstream",
                &upstream,
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        )
    }));
    let connector = tls_connector(&[&pki.ca_file], &[b"http/1.1"], None);
    assert_eq!(served(&connector, &proxy).await, der(&first_cert));
    // A connection made before the swap, used after it.
    let early = tls_connect(&connector, proxy.addr()).await.unwrap();
    let (mut early, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(early))
        .await
        .unwrap();
    tokio::spawn(connection);

    publish(&secret, "2026_02_01", &second_cert, &second_key);
    let deadline = std::time::Instant::now() + support::DEADLINE;
    while served(&connector, &proxy).await != der(&second_cert) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served:\n{}",
            proxy.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let answer = early
        .send_request(request("/healthz", &[("host", "a")]))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // A certificate whose key is not in the Secret: refused, the second pair stays.
    publish(&secret, "2026_03_01", &third_cert, &second_key);
    let watched = Arc::clone(&proxy);
    blocking(move || {
        wait_until(
            "the bad pair is refused",
            || {
                watched
                    .stderr()
                    .contains("still serving the previous certificate")
            },
            || watched.stderr(),
        );
    });
    assert_eq!(served(&connector, &proxy).await, der(&second_cert));
    let stderr = proxy.stderr();
    assert!(stderr.contains("does not match the certificate"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    let metrics = proxy.metrics();
    assert!(
        metrics.contains(r#"pitcrew_proxy_reloads_total{file="tls_cert",result="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"pitcrew_proxy_reloads_total{file="tls_cert",result="failed"} 1"#),
        "{metrics}"
    );
}

/// The proxy with mTLS (`mode`: required or optional), the server CA, the client CA, and a
/// stranger CA whose client certificates must not pass.
struct Mtls {
    proxy: Proxy,
    server: Pki,
    client: Pki,
    stranger: Pki,
    dir: tempfile::TempDir,
    _nginx: pitcrew_testkit::nginx::NginxPeer,
}

fn mtls(extra: &'static [&'static str]) -> Option<Mtls> {
    let nginx = echo_nginx()?;
    let dir = tempfile::tempdir().unwrap();
    let server = Pki::new(dir.path(), "server");
    let client = Pki::new(dir.path(), "client");
    let stranger = Pki::new(dir.path(), "stranger");
    let (cert, key) = server.issue_files("server", "localhost", &["localhost"], false);
    let mut args = vec![
        "--upstream".to_owned(),
        nginx.http_url(""),
        "--tls-cert".to_owned(),
        cert.to_str().unwrap().to_owned(),
        "--tls-key".to_owned(),
        key.to_str().unwrap().to_owned(),
        "--client-ca-file".to_owned(),
        client.ca_file.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start("https://", &args);
    Some(Mtls {
        proxy,
        server,
        client,
        stranger,
        dir,
        _nginx: nginx,
    })
}

impl Mtls {
    /// A GET /echo with the client certificate issued by `issuer` (or none): the answer, or
    /// the error that stopped it.
    async fn get(&self, issuer: Option<&Pki>, name: &str) -> Result<support::HyperAnswer, String> {
        let files = issuer.map(|pki| pki.issue_files(name, name, &[&format!("{name}.svc")], true));
        let connector = tls_connector(
            &[&self.server.ca_file],
            &[b"http/1.1"],
            files.as_ref().map(|(cert, key)| (cert.as_path(), key.as_path())),
        );
        let stream = tls_connect(&connector, self.proxy.addr())
            .await
            .map_err(|err| err.to_string())?;
        h1_send(stream, request("/echo", &[("host", "localhost")]))
            .await
            .map_err(|err| err.to_string())
    }
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one() {
    let Some(setup) = blocking(|| mtls(&[])) else {
        return;
    };
    let answer = setup.get(Some(&setup.client), "billing").await.unwrap();
    assert_eq!(answer.status, 200);
    // Transport only without --client-cert-auth: no identity header.
    assert_eq!(echoed(&answer.body, "user"), "");
    let refused = setup.get(None, "anonymous").await;
    assert!(refused.is_err(), "a client without a certificate got {refused:?}");
    let refused = setup.get(Some(&setup.stranger), "stranger").await;
    assert!(refused.is_err(), "a certificate from another CA got {refused:?}");
    // The proxy is still serving after the refusals.
    assert_eq!(
        setup.get(Some(&setup.client), "billing").await.unwrap().status,
        200
    );
    let _ = &setup.dir;
}

#[tokio::test]
async fn optional_client_certificates_let_clients_without_one_in() {
    let Some(setup) = blocking(|| mtls(&["--client-cert", "optional"])) else {
        return;
    };
    assert_eq!(setup.get(None, "anonymous").await.unwrap().status, 200);
    assert_eq!(
        setup.get(Some(&setup.client), "billing").await.unwrap().status,
        200
    );
    let refused = setup.get(Some(&setup.stranger), "stranger").await;
    assert!(refused.is_err(), "a certificate from another CA got {refused:?}");
}

#[tokio::test]
async fn a_client_certificate_is_the_identity_with_client_cert_auth() {
    let Some(setup) = blocking(|| mtls(&["--client-cert-auth"])) else {
        return;
    };
    let answer = setup.get(Some(&setup.client), "billing").await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(echoed(&answer.body, "user"), "billing");
}
