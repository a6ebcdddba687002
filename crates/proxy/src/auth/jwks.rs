//! `--jwks-url`: the identity provider's signing keys, fetched in the background, cached, and
//! refreshed every `--jwks-refresh` and when a token names a `kid` the cache does not know
//! (the provider rotated its keys) — the latter at most once per 30 s, so that tokens with
//! made-up `kid`s cannot make the proxy hammer the provider. A failed fetch keeps the keys it
//! had; a provider that is down at start does not stop the proxy: it retries, and tokens are
//! refused until keys arrive.
//!
//! Only signing keys with a public half are used (RSA, EC P-256/P-384, Ed25519); a symmetric
//! (`oct`) key in a key set is skipped, since a key fetched over the network must never be
//! usable as an HMAC secret. A key's own `alg` is used when it gives one, else the key type's
//! usual one (RS256, ES256/ES384, EdDSA).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use pitcrew_core::shutdown::Shutdown;
use tokio::time::Instant;

use super::jwt::VerifyingKey;
use crate::metrics::ProxyMetrics;

/// The least time between two fetches caused by unknown `kid`s.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(30);

/// How long one fetch may take, connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A key set larger than this is refused (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Retries after a failed fetch start here and double up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The cached key set and how to fetch it again.
pub(crate) struct Jwks {
    url: url::Url,
    /// The URL without a password, for log lines.
    shown: String,
    client: reqwest::Client,
    refresh: Duration,
    min_refetch: Duration,
    keys: RwLock<Arc<Vec<VerifyingKey>>>,
    /// Bumped on each key set swapped in (0: none yet).
    generation: AtomicU64,
    /// When the last fetch started; held during a fetch, so concurrent wishes share one.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    metrics: ProxyMetrics,
}

impl Jwks {
    /// Set up only: the first fetch is [`Jwks::run`]'s, or the first token's.
    pub(crate) fn new(
        url: url::Url,
        client: reqwest::Client,
        refresh: Duration,
        metrics: ProxyMetrics,
    ) -> Jwks {
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        Jwks {
            url,
            shown: shown.to_string(),
            client,
            refresh: refresh.max(Duration::from_secs(1)),
            min_refetch: MIN_REFETCH,
            keys: RwLock::new(Arc::new(Vec::new())),
            generation: AtomicU64::new(0),
            last_attempt: tokio::sync::Mutex::new(None),
            metrics,
        }
    }

    /// Changes the least time between fetches for unknown `kid`s (tests).
    #[cfg(test)]
    pub(crate) fn with_min_refetch(mut self, min_refetch: Duration) -> Jwks {
        self.min_refetch = min_refetch;
        self
    }

    /// The keys in use now.
    pub(crate) fn keys(&self) -> Arc<Vec<VerifyingKey>> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Bumped on each key set swapped in (0: none yet).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a key set was ever fetched.
    pub(crate) fn has_keys(&self) -> bool {
        self.generation.load(Ordering::Acquire) > 0
    }

    /// For a token whose `kid` is not in the cache: fetches now, unless a fetch started less
    /// than the minimum interval ago, and waits for it at most `wait` (the fetch itself goes
    /// on in the background). Returns whether the keys may have changed (this fetch, or one
    /// under way, swapped in a new set in time).
    pub(crate) async fn refresh_for_unknown_kid(self: &Arc<Self>, wait: Duration) -> bool {
        // The common case under a flood of made-up kids: a fetch was tried a moment ago and
        // none is under way. Answer without a task.
        if let Ok(last_attempt) = self.last_attempt.try_lock()
            && !may_fetch(*last_attempt, Instant::now(), self.min_refetch)
        {
            return false;
        }
        let jwks = Arc::clone(self);
        let fetch = tokio::spawn(async move { jwks.refresh_unless_recent().await });
        matches!(tokio::time::timeout(wait, fetch).await, Ok(Ok(true)))
    }

    async fn refresh_unless_recent(&self) -> bool {
        let before = self.generation.load(Ordering::Acquire);
        let mut last_attempt = self.last_attempt.lock().await;
        if self.generation.load(Ordering::Acquire) != before {
            return true;
        }
        if !may_fetch(*last_attempt, Instant::now(), self.min_refetch) {
            return false;
        }
        *last_attempt = Some(Instant::now());
        self.fetch().await.is_ok()
    }

    /// Fetches at once, then every `--jwks-refresh` (after a failure: 1 s, 2 s, … 30 s),
    /// until shutdown.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut retry = FIRST_RETRY;
        let mut attempt = 0u32;
        loop {
            let result = {
                let mut last_attempt = self.last_attempt.lock().await;
                *last_attempt = Some(Instant::now());
                self.fetch().await
            };
            let delay = match result {
                Ok(()) => {
                    attempt = 0;
                    retry = FIRST_RETRY;
                    self.refresh
                }
                Err(problem) => {
                    attempt += 1;
                    let delay = retry.min(self.refresh);
                    let keeping = if self.has_keys() {
                        "keeping the keys fetched before"
                    } else {
                        "JWTs are refused until keys arrive"
                    };
                    tracing::warn!(
                        "attempt {attempt}: JWKS {}: {problem}; {keeping}; retrying in {}s",
                        self.shown,
                        delay.as_secs()
                    );
                    retry = (retry * 2).min(MAX_RETRY);
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    /// One fetch: swaps in the new keys when the answer is a usable key set. Counted in
    /// `pitcrew_proxy_reloads_total{file="jwks"}`.
    async fn fetch(&self) -> Result<(), String> {
        let result = match tokio::time::timeout(FETCH_TIMEOUT, self.download()).await {
            Ok(Ok(bytes)) => parse(&bytes),
            Ok(Err(problem)) => Err(problem),
            Err(_) => Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
        };
        match result {
            Ok(keys) => {
                let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_deref().unwrap_or("-")).collect();
                let old_kids: Vec<String> = self
                    .keys()
                    .iter()
                    .map(|key| key.kid.clone().unwrap_or_else(|| "-".to_owned()))
                    .collect();
                if kids != old_kids {
                    tracing::info!(
                        "JWKS {}: {} keys (kid {})",
                        self.shown,
                        keys.len(),
                        kids.join(", ")
                    );
                }
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.metrics.reload("jwks", true);
                Ok(())
            }
            Err(problem) => {
                self.metrics.reload("jwks", false);
                tracing::debug!("JWKS {}: {problem}", self.shown);
                Err(problem)
            }
        }
    }

    async fn download(&self) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| describe_request_error(&err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| describe_request_error(&err))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("the key set is larger than 1 MiB".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Whether a fetch for an unknown `kid` may start at `now`.
fn may_fetch(last_attempt: Option<Instant>, now: Instant, min_refetch: Duration) -> bool {
    last_attempt.is_none_or(|last| now.saturating_duration_since(last) >= min_refetch)
}

/// A reqwest failure in a few words, without the URL (reqwest's own text names it).
pub(crate) fn describe_request_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    pitcrew_core::tls::describe_error(err)
        .or_else(|| pitcrew_core::tls::layers_below(err))
        .unwrap_or_else(|| "request failed".to_owned())
}

/// The usable signing keys of a JWK set document.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| format!("not JSON ({err})"))?;
    let entries = document
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("not a JWK set (no `keys` array)")?;
    let mut keys = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        // One odd key (a type this build does not know) must not cost the others.
        let jwk: Jwk = match serde_json::from_value(entry.clone()) {
            Ok(jwk) => jwk,
            Err(err) => {
                tracing::debug!("JWKS key {index}: skipped, not understood ({err})");
                continue;
            }
        };
        match verifying_key(&jwk) {
            Ok(key) => keys.push(key),
            Err(why) => tracing::debug!("JWKS key {index}: skipped, {why}"),
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "none of its {} keys is a usable signing key (RSA, EC P-256/P-384, Ed25519)",
            entries.len()
        ));
    }
    Ok(keys)
}

fn verifying_key(jwk: &Jwk) -> Result<VerifyingKey, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".to_owned());
    }
    let usual = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("an EC key on an unsupported curve".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("an OKP key on an unsupported curve".to_owned()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key (never accepted from a URL)".to_owned());
        }
    };
    let algorithm = match jwk.common.key_algorithm {
        None => usual,
        Some(declared) => {
            let algorithm = match declared {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                other => return Err(format!("alg {other} is not a signing algorithm accepted here")),
            };
            // A key's alg must fit its type: an RSA key declared ES256 is a broken key set.
            let fits = match usual {
                Algorithm::RS256 => matches!(
                    algorithm,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                _ => algorithm == usual,
            };
            if !fits {
                return Err(format!("alg {declared} does not fit the key type"));
            }
            algorithm
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|err| format!("unusable ({err})"))?;
    Ok(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn refetch_at_most_once_per_interval() {
        let start = Instant::now();
        assert!(may_fetch(None, start, MIN_REFETCH));
        assert!(!may_fetch(Some(start), start, MIN_REFETCH));
        assert!(!may_fetch(
            Some(start),
            start + Duration::from_secs(29),
            MIN_REFETCH
        ));
        assert!(may_fetch(Some(start), start + MIN_REFETCH, MIN_REFETCH));
        // A clock that went backwards (it cannot with Instant, but) never allows early.
        assert!(!may_fetch(
            Some(start + Duration::from_secs(5)),
            start,
            MIN_REFETCH
        ));
    }

    fn rsa_jwk() -> serde_json::Value {
        serde_json::from_slice(&crate::auth::jwt::tests::rsa_data("test-only-rsa-jwk.json")).unwrap()
    }

    #[test]
    fn parses_and_skips() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let set = serde_json::json!({"keys": [
            rsa_jwk(),
            ec_jwk(&ec, "ec-1"),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa_jwk()["n"], "e": "AQAB"},
            {"kty": "RSA", "kid": "lies", "alg": "ES256", "n": rsa_jwk()["n"], "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": rsa_jwk()["n"], "e": "AQAB"},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "weird"},
            "not an object",
        ]});
        let keys = parse(&serde_json::to_vec(&set).unwrap()).unwrap();
        let found: Vec<(Option<&str>, Algorithm)> = keys
            .iter()
            .map(|key| (key.kid.as_deref(), key.algorithm))
            .collect();
        assert_eq!(
            found,
            [
                (Some("test-only-rsa"), Algorithm::RS256),
                (Some("ec-1"), Algorithm::ES256)
            ]
        );
    }

    #[test]
    fn garbage_is_refused() {
        for (body, expected) in [
            (&b"<html>oops</html>"[..], "not JSON"),
            (b"{\"keys\": 3}", "no `keys` array"),
            (b"[]", "no `keys` array"),
            (b"{\"keys\": []}", "none of its 0 keys"),
            (
                b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
                "none of its 1 keys",
            ),
            (b"", "not JSON"),
        ] {
            let err = parse(body).err().unwrap();
            assert!(err.contains(expected), "{err}");
        }
    }

    /// The provider rotates its key: a token with the new `kid` makes the proxy fetch again
    /// (here with no minimum interval), and the old key is gone from the set.
    #[tokio::test]
    async fn unknown_kid_fetches_the_rotated_set() {
        use jsonwebtoken::{EncodingKey, Header};
        let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
            return;
        };
        let (metrics, _registry) = ProxyMetrics::new();
        let tls = pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), []).unwrap();
        let client = super::super::http_client(&tls, false).unwrap();
        let url: url::Url = nginx.http_url("/files/jwks.json").parse().unwrap();
        let jwks = Arc::new(
            Jwks::new(url, client, Duration::from_secs(600), metrics.clone())
                .with_min_refetch(Duration::ZERO),
        );
        let mut config = crate::config::JwtConfig {
            jwks_url: Some(nginx.http_url("/files/jwks.json").parse().unwrap()),
            ..crate::config::JwtConfig::default()
        };
        config.clock_skew = Duration::from_secs(30);
        let jwt = crate::auth::jwt::Jwt::load(&config, Some(Arc::clone(&jwks))).unwrap();
        let old = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let new = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let token = |key_pair: &rcgen::KeyPair, kid: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.to_owned());
            let claims = serde_json::json!({"sub": kid, "exp": crate::auth::jwt::tests::now() + 600});
            let key = EncodingKey::from_ec_pem(key_pair.serialize_pem().as_bytes()).unwrap();
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        let write = |set: serde_json::Value| {
            std::fs::write(nginx.files_dir().join("jwks.json"), set.to_string()).unwrap();
        };
        write(serde_json::json!({"keys": [ec_jwk(&old, "old")]}));
        assert_eq!(
            jwt.verify(&token(&old, "old")).await.unwrap().sub.as_deref(),
            Some("old")
        );
        write(serde_json::json!({"keys": [ec_jwk(&new, "new")]}));
        assert_eq!(
            jwt.verify(&token(&new, "new")).await.unwrap().sub.as_deref(),
            Some("new")
        );
        assert_eq!(
            jwt.verify(&token(&old, "old")).await.unwrap_err(),
            "jwt: unknown key id (kid)"
        );
        // Each unknown kid fetched once more: the old token's look found nothing new.
        assert_eq!(jwks.generation.load(Ordering::Acquire), 3);
    }

    /// The public half of a P-256 key as a JWK.
    pub(crate) fn ec_jwk(key_pair: &rcgen::KeyPair, kid: &str) -> serde_json::Value {
        use base64::Engine as _;
        let raw = key_pair.public_key_raw();
        assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                           "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
    }
}
