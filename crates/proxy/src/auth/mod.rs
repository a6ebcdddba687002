//! Authentication: client certificates, bearer tokens ([`bearer`]), htpasswd ([`htpasswd`]),
//! JWT ([`jwt`], with [`jwks`]) and forward auth ([`forward`]). Any configured method that
//! accepts a request lets it through; forward auth is asked only when no other method
//! accepted (it costs a network round trip). Without any method every request is let through.
//! `--public-path` prefixes skip authentication (matched on the normalised path, at segment
//! boundaries). Identity headers are set by the proxy only: [`Auth::strip_identity_headers`]
//! removes the client's copies on every request, public ones too.
//!
//! A refusal is a 401 with a `WWW-Authenticate` challenge (`Basic realm="pitcrew"` when
//! htpasswd is configured, `Bearer realm="pitcrew"` for tokens) and a short plain-text reason;
//! forward auth's refusals are the auth service's own answers. No reason ever holds a token,
//! password or secret.

mod bearer;
mod forward;
mod htpasswd;
mod jwks;
mod jwt;
mod watch;

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Full};
use pitcrew_core::shutdown::Shutdown;

use self::bearer::TokenSet;
use self::forward::{Answer, ForwardAuth};
use self::htpasswd::Users;
use self::jwks::Jwks;
use self::jwt::{Jwt, MAX_TOKEN_BYTES};
use self::watch::{Reloadable, Watched};
use crate::config::AuthConfig;
use crate::metrics::ProxyMetrics;
use crate::{Peer, ProxyBody, ProxyError};

/// `X-Forwarded-User`: who the proxy says the client is.
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-forwarded-user");
/// `X-Forwarded-Email`: the JWT's `email` claim.
pub const EMAIL_HEADER: HeaderName = HeaderName::from_static("x-forwarded-email");

/// What [`Auth::check`] decided.
pub enum Decision {
    /// Let through, with these identity headers for the upstream.
    Allow {
        /// Headers to set upstream (after the client's copies were stripped).
        identity: Vec<(HeaderName, HeaderValue)>,
        /// The user, for the access log.
        user: Option<String>,
        /// The method that accepted (`client_cert`, `bearer`, `htpasswd`, `jwt`, `forward`;
        /// `none` without auth).
        method: &'static str,
    },
    /// Refused with this response.
    Deny {
        /// 401 with a challenge, or the auth service's answer, or 503 without one.
        response: http::Response<ProxyBody>,
        /// The method that refused, or `none` (no usable credentials).
        method: &'static str,
        /// Why, for the access log (no secrets).
        reason: String,
    },
}

/// The configured methods.
pub struct Auth {
    enabled: bool,
    client_cert: bool,
    bearer: Option<Arc<Watched<TokenSet>>>,
    htpasswd: Option<Arc<Watched<Users>>>,
    jwt: Option<Jwt>,
    forward: Option<ForwardAuth>,
    /// Normalised `--public-path` prefixes.
    public_paths: Vec<String>,
    /// Every header the proxy may set upstream as identity.
    identity_headers: Vec<HeaderName>,
    metrics: ProxyMetrics,
    /// bcrypt checks at once: each takes a core for tens of milliseconds.
    bcrypt_slots: tokio::sync::Semaphore,
}

/// The client's credentials, as the `Authorization` header gives them.
enum Credentials {
    None,
    Bearer(String),
    Basic {
        user: String,
        password: Vec<u8>,
    },
    /// Present but unusable, with why.
    Unusable(&'static str),
}

/// Why nothing accepted, for the 401.
struct Refusal {
    method: &'static str,
    /// For the access log.
    reason: String,
    /// For the client (without a hint at which user names exist).
    public: String,
}

impl Auth {
    /// Loads every configured file now (66 when missing or unreadable, 78 when refused),
    /// checks the `--public-path` prefixes (64 when one cannot be normalised), and builds
    /// the HTTP client for the JWKS URL and the auth service. Nothing is fetched yet: see
    /// [`Auth::run`].
    // async in the agreed interface (the caller awaits it in its start-up sequence), though
    // loading needs no await today.
    #[allow(clippy::unused_async)]
    pub async fn load(
        config: &AuthConfig,
        client_tls: &pitcrew_core::tls::Tls,
        metrics: &ProxyMetrics,
    ) -> Result<Arc<Auth>, ProxyError> {
        let public_paths = config
            .public_paths
            .iter()
            .map(|prefix| {
                crate::path::normalise(prefix)
                    .map_err(|err| ProxyError::Usage(format!("--public-path {prefix:?}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let jwks_url = config.jwt.as_ref().and_then(|jwt| jwt.jwks_url.as_ref());
        let forward_url = config.forward.as_ref().map(|forward| &forward.url);
        for (flag, url) in [("--jwks-url", jwks_url), ("--auth-service", forward_url)] {
            if let Some(url) = url
                && !matches!(url.scheme(), "http" | "https")
            {
                return Err(ProxyError::Usage(format!(
                    "{flag}: the scheme {:?} is not http or https",
                    url.scheme()
                )));
            }
        }
        let client = if jwks_url.is_some() || forward_url.is_some() {
            let any_https = [jwks_url, forward_url]
                .into_iter()
                .flatten()
                .any(|url| url.scheme() == "https");
            Some(http_client(client_tls, any_https)?)
        } else {
            None
        };
        let bearer = config
            .bearer_tokens_file
            .as_deref()
            .map(|path| {
                Watched::load(path, "--bearer-tokens-file", "bearer_tokens", bearer::parse).map(Arc::new)
            })
            .transpose()?;
        let htpasswd = config
            .htpasswd_file
            .as_deref()
            .map(|path| Watched::load(path, "--htpasswd-file", "htpasswd", htpasswd::parse).map(Arc::new))
            .transpose()?;
        let jwt = match &config.jwt {
            Some(jwt_config) => {
                let jwks = match (&jwt_config.jwks_url, &client) {
                    (Some(url), Some(client)) => Some(Arc::new(Jwks::new(
                        url.clone(),
                        client.clone(),
                        jwt_config.jwks_refresh,
                        metrics.clone(),
                    ))),
                    _ => None,
                };
                Some(Jwt::load(jwt_config, jwks)?)
            }
            None => None,
        };
        let forward = match (&config.forward, &client) {
            (Some(forward), Some(client)) => Some(ForwardAuth::new(forward, client.clone())),
            _ => None,
        };
        let mut identity_headers = vec![USER_HEADER, EMAIL_HEADER];
        if let Some(forward) = &forward {
            for name in forward.response_headers() {
                if !identity_headers.contains(name) {
                    identity_headers.push(name.clone());
                }
            }
        }
        let slots = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(Arc::new(Auth {
            enabled: config.any(),
            client_cert: config.client_cert_auth,
            bearer,
            htpasswd,
            jwt,
            forward,
            public_paths,
            identity_headers,
            metrics: metrics.clone(),
            bcrypt_slots: tokio::sync::Semaphore::new(slots),
        }))
    }

    /// Whether any method is configured.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Reloads the credential files when they change and keeps the JWKS fresh, until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut files: Vec<Arc<dyn Reloadable>> = Vec::new();
        if let Some(bearer) = &self.bearer {
            files.push(Arc::clone(bearer) as Arc<dyn Reloadable>);
        }
        if let Some(htpasswd) = &self.htpasswd {
            files.push(Arc::clone(htpasswd) as Arc<dyn Reloadable>);
        }
        if let Some(jwt) = &self.jwt {
            for file in [&jwt.secret, &jwt.key_file].into_iter().flatten() {
                files.push(Arc::clone(file) as Arc<dyn Reloadable>);
            }
        }
        let jwks = self.jwt.as_ref().and_then(|jwt| jwt.jwks.clone());
        let refresh = async {
            if let Some(jwks) = jwks {
                jwks.run(shutdown.clone()).await;
            }
        };
        tokio::join!(
            watch::watch_files(files, self.metrics.clone(), shutdown.clone()),
            refresh
        );
        // With nothing to watch or fetch the above return at once; `run` still lasts until
        // shutdown, as a caller that selects on it expects.
        let mut shutdown = shutdown;
        shutdown.recv().await;
    }

    /// Removes every identity header the proxy may set (`X-Forwarded-User`,
    /// `X-Forwarded-Email`, the `--auth-response-header` names): only the proxy says who a
    /// client is.
    pub fn strip_identity_headers(&self, headers: &mut http::HeaderMap) {
        for name in &self.identity_headers {
            headers.remove(name);
        }
    }

    /// The `--public-path` prefix `normalised_path` falls under (the longest, when several
    /// do), if any. A prefix matches itself and what lies below it at a segment boundary:
    /// `/healthz` matches `/healthz` and `/healthz/x`, not `/healthzz`.
    pub fn public_prefix(&self, normalised_path: &str) -> Option<&str> {
        self.public_paths
            .iter()
            .filter(|prefix| {
                normalised_path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
            })
            .max_by_key(|prefix| prefix.len())
            .map(String::as_str)
    }

    /// Judges a request (headers only; never reads the body), and counts the decision in
    /// `pitcrew_proxy_auth_total{method,result}`.
    pub async fn check(&self, request: &http::request::Parts, peer: &Peer) -> Decision {
        if !self.enabled {
            return Decision::Allow {
                identity: Vec::new(),
                user: None,
                method: "none",
            };
        }
        let (decision, result) = self.decide(request, peer).await;
        let method = match &decision {
            Decision::Allow { method, .. } | Decision::Deny { method, .. } => *method,
        };
        self.metrics.auth_decision(method, result);
        decision
    }

    /// The decision and its `result` label: `allowed`, `denied`, or `error` (the auth service
    /// did not answer).
    async fn decide(&self, request: &http::request::Parts, peer: &Peer) -> (Decision, &'static str) {
        const ALLOWED: &str = "allowed";
        const DENIED: &str = "denied";
        if self.client_cert
            && let Some(cert) = &peer.client_cert
            && let Some(allow) = allow("client_cert", Some(&cert.name), None)
        {
            return (allow, ALLOWED);
        }
        let credentials = credentials(&request.headers);
        let token_given = matches!(credentials, Credentials::Bearer(_));
        let refusal = match credentials {
            Credentials::Bearer(token) => match self.check_token(&token).await {
                Ok(decision) => return (decision, ALLOWED),
                Err(refusal) => refusal,
            },
            Credentials::Basic { user, password } => match self.check_basic(&user, &password).await {
                Ok(decision) => return (decision, ALLOWED),
                Err(refusal) => refusal,
            },
            Credentials::None => {
                let reason = if self.client_cert
                    && self.bearer.is_none()
                    && self.jwt.is_none()
                    && self.htpasswd.is_none()
                {
                    "no client certificate"
                } else {
                    "no credentials"
                };
                Refusal::plain("none", reason.to_owned())
            }
            Credentials::Unusable(reason) => Refusal::plain("none", reason.to_owned()),
        };
        if let Some(forward) = &self.forward {
            return match forward.ask(request, peer, &self.identity_headers).await {
                Answer::Allow { identity, user } => (
                    Decision::Allow {
                        identity,
                        user,
                        method: "forward",
                    },
                    ALLOWED,
                ),
                Answer::Deny {
                    status,
                    headers,
                    body,
                    reason,
                } => (
                    Decision::Deny {
                        response: response(status, &headers, body),
                        method: "forward",
                        reason,
                    },
                    DENIED,
                ),
                Answer::Unavailable { reason } => (
                    Decision::Deny {
                        response: response(
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            &[(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; charset=utf-8"),
                            )],
                            Bytes::from_static(b"authentication service unavailable\n"),
                        ),
                        method: "forward",
                        reason,
                    },
                    "error",
                ),
            };
        }
        (self.unauthorized(refusal, token_given), DENIED)
    }

    /// A bearer token: the token file first (a digest compare), then JWT.
    async fn check_token(&self, token: &str) -> Result<Decision, Refusal> {
        if let Some(bearer) = &self.bearer
            && let Some(name) = bearer.get().find(token)
            && let Some(allow) = allow("bearer", Some(name), None)
        {
            return Ok(allow);
        }
        let looks_like_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
        if let Some(jwt) = &self.jwt
            && (looks_like_jwt || self.bearer.is_none())
        {
            return match jwt.verify(token).await {
                Ok(verified) => allow("jwt", verified.sub.as_deref(), verified.email.as_deref())
                    .ok_or_else(|| Refusal::plain("jwt", "jwt: identity not usable".to_owned())),
                Err(reason) => Err(Refusal::plain("jwt", reason)),
            };
        }
        if self.bearer.is_some() {
            return Err(Refusal::plain("bearer", "bearer: unknown token".to_owned()));
        }
        Err(Refusal::plain(
            "none",
            "bearer token given, but no token method is configured".to_owned(),
        ))
    }

    /// Basic credentials against the htpasswd file.
    async fn check_basic(&self, user: &str, password: &[u8]) -> Result<Decision, Refusal> {
        let Some(htpasswd) = &self.htpasswd else {
            return Err(Refusal::plain(
                "none",
                "Basic credentials given, but no --htpasswd-file is configured".to_owned(),
            ));
        };
        let users = htpasswd.get();
        match users.verify(user, password, &self.bcrypt_slots).await {
            Ok(()) => allow("htpasswd", Some(user), None)
                .ok_or_else(|| Refusal::plain("htpasswd", "htpasswd: user name not usable".to_owned())),
            Err(refusal) => Err(Refusal {
                method: "htpasswd",
                reason: refusal.reason().to_owned(),
                public: "wrong user name or password".to_owned(),
            }),
        }
    }

    /// The 401 answer, with the challenges of the configured methods.
    fn unauthorized(&self, refusal: Refusal, token_given: bool) -> Decision {
        let mut headers = Vec::new();
        if self.htpasswd.is_some() {
            headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pitcrew\", charset=\"UTF-8\""),
            ));
        }
        if self.bearer.is_some() || self.jwt.is_some() || self.htpasswd.is_none() {
            let challenge = if token_given {
                "Bearer realm=\"pitcrew\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"pitcrew\""
            };
            headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)));
        }
        headers.push((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ));
        let body = format!("unauthorized: {}\n", refusal.public);
        Decision::Deny {
            response: response(http::StatusCode::UNAUTHORIZED, &headers, Bytes::from(body)),
            method: refusal.method,
            reason: refusal.reason,
        }
    }
}

impl Refusal {
    /// A refusal whose reason may be shown to the client as it is.
    fn plain(method: &'static str, reason: String) -> Refusal {
        Refusal {
            method,
            public: reason.clone(),
            reason,
        }
    }
}

/// An Allow with `X-Forwarded-User` (and `-Email`); `None` when a value cannot be a header.
fn allow(method: &'static str, user: Option<&str>, email: Option<&str>) -> Option<Decision> {
    let mut identity = Vec::new();
    if let Some(user) = user {
        identity.push((USER_HEADER, HeaderValue::from_str(user).ok()?));
    }
    if let Some(email) = email {
        identity.push((EMAIL_HEADER, HeaderValue::from_str(email).ok()?));
    }
    Some(Decision::Allow {
        identity,
        user: user.map(str::to_owned),
        method,
    })
}

/// The credentials of the `Authorization` header. A token in the query string
/// (`?access_token=`) is never looked at: URLs end up in logs.
fn credentials(headers: &http::HeaderMap) -> Credentials {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::None;
    };
    if values.next().is_some() {
        return Credentials::Unusable("more than one Authorization header");
    }
    // Checked before any decoding, so a huge header costs nothing more.
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Credentials::Unusable("Authorization header longer than 16 KiB");
    }
    let Ok(value) = value.to_str() else {
        return Credentials::Unusable("Authorization header is not ASCII");
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim_matches(' ');
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Credentials::Unusable("empty bearer token");
        }
        if rest.contains(' ') {
            return Credentials::Unusable("malformed bearer token (spaces)");
        }
        return Credentials::Bearer(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let Ok(decoded) = engine.decode(rest) else {
            return Credentials::Unusable("malformed Basic credentials (not base64)");
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return Credentials::Unusable("malformed Basic credentials (no `:`)");
        };
        let Ok(user) = String::from_utf8(decoded[..colon].to_vec()) else {
            return Credentials::Unusable("malformed Basic credentials (user name not UTF-8)");
        };
        return Credentials::Basic {
            user,
            password: decoded[colon + 1..].to_vec(),
        };
    }
    Credentials::Unusable("Authorization scheme not accepted")
}

fn response(
    status: http::StatusCode,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> http::Response<ProxyBody> {
    let mut response = http::Response::new(
        Full::new(body)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().append(name.clone(), value.clone());
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One client for the JWKS URL and the auth service: TLS from pitcrew-core (verified with the
/// shared roots and `--ca-file`, unless `--insecure`), redirects never followed (a redirect
/// from the auth service is an answer for the client; from the JWKS URL, a misconfiguration).
fn http_client(tls: &pitcrew_core::tls::Tls, any_https: bool) -> Result<reqwest::Client, ProxyError> {
    // `https()` warns once when the CA bundle is missing: noise without an https URL.
    let config = if any_https {
        tls.https()
    } else {
        tls.client_config(pitcrew_core::tls::Verify::Nothing, None)
    };
    pitcrew_core::tls::log_proxies("auth service and JWKS requests");
    reqwest::Client::builder()
        // reqwest recognises the config by its type, so it takes the value, not the Arc.
        .use_preconfigured_tls((*config).clone())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pitcrew-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| {
            ProxyError::Runtime(format!(
                "cannot set up the HTTP client for the auth service and JWKS: {}",
                pitcrew_core::tls::layers_below(&err).unwrap_or_else(|| "unknown reason".to_owned())
            ))
        })
}
