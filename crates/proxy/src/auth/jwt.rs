//! JWT verification: `--jwt-secret-file` (HS256), `--jwt-key-file` (PEM public keys or
//! certificates: RS256, ES256/ES384, EdDSA) and `--jwks-url` ([`super::jwks`]), with `iss`,
//! `aud` (any of), `exp` (required) and `nbf` checked with `--jwt-clock-skew` of leeway.
//!
//! The algorithm is the KEY's, never the token's: each key verifies only with the one
//! algorithm it was loaded for, so `alg: none` is refused outright, an HS256 token is refused
//! when only public keys are configured (the HS/RS confusion attack: an HMAC made with the RSA
//! public key's PEM bytes as the secret), and an RS256 token when only a secret is. The
//! header's `alg` and `kid` only pick which of the configured keys to try.
//!
//! Identity: `sub` (X-Forwarded-User) and `email` (X-Forwarded-Email; not when the token
//! says `email_verified: false`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest as _, Sha256};

use super::jwks::Jwks;
use super::watch::Watched;
use crate::ProxyError;
use crate::config::JwtConfig;

/// Longer tokens are refused before any decoding: real ones are a few KiB at most (a header
/// of many group claims), and decoding costs time in proportion.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How long a request with an unknown `kid` waits for the key set to be fetched again: a
/// provider that does not answer must not hold every such request for the whole fetch timeout.
const UNKNOWN_KID_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Shorter HS256 secrets are accepted with a warning: RFC 7518 asks for at least the hash size.
const SHORT_SECRET: usize = 32;

/// How many verified tokens are remembered (about 100 bytes each) before the memory is emptied.
const REMEMBERED: usize = 1024;

/// One key and the one algorithm it verifies.
pub(crate) struct VerifyingKey {
    /// The JWKS `kid`; `None` for keys from files (they match any `kid`).
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// What a valid token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) sub: Option<String>,
    pub(crate) email: Option<String>,
}

/// The configured JWT keys and claim rules.
pub(crate) struct Jwt {
    pub(crate) secret: Option<Arc<Watched<Vec<VerifyingKey>>>>,
    pub(crate) key_file: Option<Arc<Watched<Vec<VerifyingKey>>>>,
    pub(crate) jwks: Option<Arc<Jwks>>,
    /// One [`Validation`] per algorithm, each allowing that algorithm alone.
    validations: HashMap<Algorithm, Validation>,
    /// `--jwt-clock-skew` in seconds.
    leeway: u64,
    /// Tokens that verified, so that a client sending the same token on every request pays
    /// for the signature once (an RSA or ECDSA check is 30 to 60 us; a lookup, one SHA-256).
    remembered: Mutex<Remembered>,
}

/// Verified tokens by the SHA-256 of their bytes, for one set of keys.
#[derive(Default)]
struct Remembered {
    /// Which keys verified them: any change (a reload, a JWKS fetch) forgets them all.
    keys: KeysInUse,
    tokens: HashMap<[u8; 32], (Verified, u64)>,
}

impl Remembered {
    /// The identity of a token verified with these `keys`, while it is still valid at `now`
    /// (Unix seconds).
    fn lookup(&self, digest: &[u8; 32], keys: KeysInUse, now: u64) -> Option<Verified> {
        if self.keys != keys {
            return None;
        }
        let (verified, valid_until) = self.tokens.get(digest)?;
        (now <= *valid_until).then(|| verified.clone())
    }

    fn remember(&mut self, digest: [u8; 32], keys: KeysInUse, verified: Verified, valid_until: u64) {
        if self.keys != keys || self.tokens.len() >= REMEMBERED {
            self.tokens.clear();
            self.keys = keys;
        }
        self.tokens.insert(digest, (verified, valid_until));
    }
}

/// The generations of the key sets in use (secret file, key file, JWKS).
type KeysInUse = (u64, u64, u64);

/// The outcome of a verification that did the work: the identity and `exp`.
type Checked = Result<(Verified, Option<u64>), String>;

/// How trying a set of keys ended.
enum Tried {
    /// No key of this set fitted the header's `alg` and `kid`.
    Nothing,
    /// Keys fitted, but no signature matched.
    BadSignature,
    /// A definitive answer: valid, or refused for a reason other than the signature.
    Decided(Checked),
}

impl Jwt {
    /// Loads the secret and key files now (66/78 on failure). The JWKS is given by the caller,
    /// already set up (it is fetched in the background).
    pub(crate) fn load(config: &JwtConfig, jwks: Option<Arc<Jwks>>) -> Result<Jwt, ProxyError> {
        if config.secret_file.is_none() && config.key_file.is_none() && jwks.is_none() {
            return Err(ProxyError::Usage(
                "JWT verification needs a key: --jwt-secret-file, --jwt-key-file or --jwks-url".to_owned(),
            ));
        }
        let secret = config
            .secret_file
            .as_deref()
            .map(|path| Watched::load(path, "--jwt-secret-file", "jwt_secret", parse_secret).map(Arc::new))
            .transpose()?;
        let key_file = config
            .key_file
            .as_deref()
            .map(|path| Watched::load(path, "--jwt-key-file", "jwt_key", parse_key_file).map(Arc::new))
            .transpose()?;
        Ok(Jwt {
            secret,
            key_file,
            jwks,
            validations: validations(config),
            leeway: config.clock_skew.as_secs(),
            remembered: Mutex::new(Remembered::default()),
        })
    }

    /// Verifies `token` (the part after `Bearer `). The error is the reason for the access
    /// log and the 401 body: it never holds the token.
    pub(crate) async fn verify(&self, token: &str) -> Result<Verified, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("jwt: token longer than 16 KiB".to_owned());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        let keys = self.keys_in_use();
        let hit = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lookup(&digest, keys, now);
        if let Some(verified) = hit {
            return Ok(verified);
        }
        let (verified, exp) = self.verify_signature_and_claims(token).await?;
        // Remembered only when the keys did not change meanwhile: a token verified with keys
        // that a reload has just removed must not outlive them.
        if let Some(exp) = exp
            && self.keys_in_use() == keys
        {
            self.remembered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remember(digest, keys, verified.clone(), exp.saturating_add(self.leeway));
        }
        Ok(verified)
    }

    fn keys_in_use(&self) -> KeysInUse {
        let generation = |file: &Option<Arc<Watched<Vec<VerifyingKey>>>>| {
            file.as_ref().map_or(0, |file| file.generation())
        };
        (
            generation(&self.secret),
            generation(&self.key_file),
            self.jwks.as_ref().map_or(0, |jwks| jwks.generation()),
        )
    }

    async fn verify_signature_and_claims(&self, token: &str) -> Checked {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("jwt: token longer than 16 KiB".to_owned());
        }
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err("jwt: not a JWT (three dot-separated parts)".to_owned());
        }
        let header = header(token)?;
        let mut tried_any = false;
        for keys in [&self.secret, &self.key_file].into_iter().flatten() {
            match self.try_keys(&keys.get(), &header, token) {
                Tried::Nothing => {}
                Tried::BadSignature => tried_any = true,
                Tried::Decided(outcome) => return outcome,
            }
        }
        if let Some(jwks) = &self.jwks {
            let keys = jwks.keys();
            let kid_known = header
                .kid
                .as_ref()
                .is_none_or(|kid| keys.iter().any(|key| key.kid.as_ref() == Some(kid)));
            match self.try_keys(&keys, &header, token) {
                Tried::Nothing => {}
                Tried::BadSignature => tried_any = true,
                Tried::Decided(outcome) => return outcome,
            }
            // A new signing key (the IdP rotated) or no key set yet: fetch now, at most once
            // per interval, and look again.
            if (!kid_known || keys.is_empty()) && jwks.refresh_for_unknown_kid(UNKNOWN_KID_WAIT).await {
                match self.try_keys(&jwks.keys(), &header, token) {
                    Tried::Nothing => {}
                    Tried::BadSignature => tried_any = true,
                    Tried::Decided(outcome) => return outcome,
                }
            }
            if !tried_any {
                if !jwks.has_keys() {
                    return Err("jwt: no keys from the JWKS URL yet".to_owned());
                }
                if header.kid.is_some() && !jwks.keys().iter().any(|key| key.kid == header.kid) {
                    return Err("jwt: unknown key id (kid)".to_owned());
                }
            }
        }
        if tried_any {
            Err("jwt: bad signature".to_owned())
        } else {
            Err(format!(
                "jwt: algorithm {:?} is not accepted by the configured keys",
                header.alg
            ))
        }
    }

    fn try_keys(&self, keys: &[VerifyingKey], header: &jsonwebtoken::Header, token: &str) -> Tried {
        let mut tried = Tried::Nothing;
        let fitting = keys.iter().filter(|key| {
            key.algorithm == header.alg
                && match (&key.kid, &header.kid) {
                    (Some(key_id), Some(token_kid)) => key_id == token_kid,
                    _ => true,
                }
        });
        for key in fitting {
            let Some(validation) = self.validations.get(&key.algorithm) else {
                continue;
            };
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, validation) {
                Ok(data) => {
                    let exp = data.claims.get("exp").and_then(serde_json::Value::as_f64);
                    // `exp` is required and checked: a number of seconds, maybe with a fraction.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let exp = exp.map(|exp| exp.floor().max(0.0) as u64);
                    return Tried::Decided(identity(&data.claims).map(|verified| (verified, exp)));
                }
                Err(err) => match err.kind() {
                    // This key did not sign it (or cannot be used): another key may have.
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::InvalidKeyFormat
                    | ErrorKind::InvalidAlgorithm => tried = Tried::BadSignature,
                    kind => return Tried::Decided(Err(describe(kind))),
                },
            }
        }
        tried
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The token's header; `alg: none` (any case) gets its own refusal, an unknown `alg` another.
fn header(token: &str) -> Result<jsonwebtoken::Header, String> {
    const MALFORMED: &str = "jwt: malformed header";
    let encoded = token.split('.').next().unwrap_or_default();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| MALFORMED.to_owned())?;
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| MALFORMED.to_owned())?;
    let alg = value
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| MALFORMED.to_owned())?;
    if alg.eq_ignore_ascii_case("none") {
        return Err("jwt: alg none refused".to_owned());
    }
    // RFC 7515 4.1.11: extensions marked critical must be understood, and none is here.
    if value.get("crit").is_some() {
        return Err("jwt: critical header extensions (crit) not supported".to_owned());
    }
    jsonwebtoken::decode_header(token).map_err(|_| {
        format!(
            "jwt: algorithm {} is not supported",
            pitcrew_core::text::printable(alg.as_bytes(), 20)
        )
    })
}

/// `sub` and `email` from valid claims; a value that cannot travel in a header is refused
/// rather than dropped (the upstream would see an anonymous request).
fn identity(claims: &serde_json::Value) -> Result<Verified, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        match claims.get(name) {
            Some(serde_json::Value::String(value)) => {
                if value.chars().any(char::is_control) || http::HeaderValue::from_str(value).is_err() {
                    Err(format!(
                        "jwt: the {name} claim has characters a header cannot carry"
                    ))
                } else {
                    Ok(Some(value.clone()))
                }
            }
            _ => Ok(None),
        }
    };
    // An address the provider says it has not verified is not passed on as the holder's.
    let email = match claims.get("email_verified") {
        Some(serde_json::Value::Bool(false)) => None,
        _ => text("email")?,
    };
    Ok(Verified {
        sub: text("sub")?,
        email,
    })
}

/// A refusal in a few words (jsonwebtoken's own texts are longer, and some quote values).
fn describe(kind: &ErrorKind) -> String {
    let reason = match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidSubject => "wrong subject",
        ErrorKind::MissingRequiredClaim(claim) => {
            return format!(
                "jwt: claim {} missing or not a valid value",
                pitcrew_core::text::printable(claim.as_bytes(), 10)
            );
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            "malformed token"
        }
        _ => "token refused",
    };
    format!("jwt: {reason}")
}

fn validations(config: &JwtConfig) -> HashMap<Algorithm, Validation> {
    use Algorithm::{ES256, ES384, EdDSA, HS256, PS256, PS384, PS512, RS256, RS384, RS512};
    [
        HS256, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ]
    .into_iter()
    .map(|algorithm| {
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            // Without this a token with no `iss` at all would pass the issuer check.
            required.push("iss");
        }
        if config.audiences.is_empty() {
            // Else jsonwebtoken refuses every token that has an `aud`.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        (algorithm, validation)
    })
    .collect()
}

/// `--jwt-secret-file`: the bytes, less a trailing newline (as `echo` and editors leave one).
pub(crate) fn parse_secret(path: &Path, bytes: &[u8]) -> Result<(Vec<VerifyingKey>, String), String> {
    let mut secret = bytes;
    while let [rest @ .., b'\n' | b'\r'] = secret {
        secret = rest;
    }
    if secret.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    if secret.len() < SHORT_SECRET {
        tracing::warn!(
            "--jwt-secret-file {}: the secret is {} bytes; HS256 wants at least {SHORT_SECRET} \
             (`openssl rand -base64 32`)",
            path.display(),
            secret.len()
        );
    }
    let key = VerifyingKey {
        kid: None,
        algorithm: Algorithm::HS256,
        key: DecodingKey::from_secret(secret),
    };
    Ok((vec![key], "HS256 secret".to_owned()))
}

/// `--jwt-key-file`: one or more PEM blocks, each a public key (`PUBLIC KEY`, `RSA PUBLIC
/// KEY`) or a certificate; a private key is refused (it does not belong on a verifier).
pub(crate) fn parse_key_file(_: &Path, bytes: &[u8]) -> Result<(Vec<VerifyingKey>, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text (not UTF-8)".to_owned())?;
    let blocks = pem_blocks(text)?;
    if blocks.is_empty() {
        return Err("no PEM block; expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE".to_owned());
    }
    let mut keys = Vec::new();
    let mut kinds = Vec::new();
    for (number, (label, block)) in blocks.iter().enumerate() {
        let number = number + 1;
        if label.contains("PRIVATE") {
            return Err(format!(
                "PEM block {number} is a private key; give the public key or a certificate"
            ));
        }
        if !matches!(label.as_str(), "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE") {
            return Err(format!(
                "PEM block {number} is a {}; expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE",
                pitcrew_core::text::printable(label.as_bytes(), 40)
            ));
        }
        let (algorithm, key) =
            key_from_pem(block).map_err(|problem| format!("PEM block {number}: {problem}"))?;
        kinds.push(format!("{algorithm:?}"));
        keys.push(VerifyingKey {
            kid: None,
            algorithm,
            key,
        });
    }
    let summary = format!("{} keys ({})", keys.len(), kinds.join(", "));
    Ok((keys, summary))
}

/// `(label, whole block text)` for each `-----BEGIN X-----` … `-----END X-----`.
fn pem_blocks(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            if current.is_some() {
                return Err("a PEM block without its END line".to_owned());
            }
            current = Some((label.to_owned(), format!("{line}\n")));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            let Some((begin, mut block)) = current.take() else {
                return Err("a PEM END line without its BEGIN line".to_owned());
            };
            if begin != label {
                return Err("a PEM block whose END line does not match its BEGIN line".to_owned());
            }
            block.push_str(line);
            block.push('\n');
            blocks.push((begin, block));
        } else if let Some((_, block)) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    if current.is_some() {
        return Err("a PEM block without its END line".to_owned());
    }
    Ok(blocks)
}

/// The key in one PEM block and the one algorithm it verifies.
fn key_from_pem(block: &str) -> Result<(Algorithm, DecodingKey), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(block.as_bytes()) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(block.as_bytes()) {
        // The curve is named by its OID in the SubjectPublicKeyInfo.
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        let der = pem_der(block).ok_or("an EC key whose base64 does not decode")?;
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|window| window == needle);
        return if contains(P256) {
            Ok((Algorithm::ES256, key))
        } else if contains(P384) {
            Ok((Algorithm::ES384, key))
        } else {
            Err("an EC key on a curve other than P-256 or P-384".to_owned())
        };
    }
    if let Ok(key) = DecodingKey::from_ed_pem(block.as_bytes()) {
        return Ok((Algorithm::EdDSA, key));
    }
    Err("not an RSA, EC (P-256, P-384) or Ed25519 public key".to_owned())
}

fn pem_der(block: &str) -> Option<Vec<u8>> {
    let body: String = block
        .lines()
        .filter(|line| !line.starts_with("-----") && !line.contains(':'))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    /// The test-only RSA key pair (see tests/data/README.md).
    pub(crate) fn rsa_private_pem() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/test-only-rsa-private.pem"
        ))
        .unwrap()
    }

    pub(crate) fn rsa_data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    pub(crate) fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub(crate) fn sign(
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
        claims: &serde_json::Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).unwrap()
    }

    pub(crate) fn claims() -> serde_json::Value {
        json!({"sub": "alice", "email": "alice@example.com", "iss": "https://issuer.test",
               "aud": "pitcrew", "exp": now() + 600, "nbf": now() - 10})
    }

    /// An unsigned token with this header and claims (for `alg: none` and garbage headers).
    pub(crate) fn unsigned(header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let b64 = |value: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
        };
        format!("{}.{}.", b64(header), b64(claims))
    }

    pub(crate) fn config(dir: &Path, secret: Option<&[u8]>, key: Option<&[u8]>) -> JwtConfig {
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        JwtConfig {
            secret_file: secret.map(|bytes| write("secret", bytes)),
            key_file: key.map(|bytes| write("key.pem", bytes)),
            jwks_url: None,
            jwks_refresh: Duration::from_secs(600),
            issuer: Some("https://issuer.test".to_owned()),
            audiences: vec!["other".to_owned(), "pitcrew".to_owned()],
            clock_skew: Duration::from_secs(30),
        }
    }

    fn rsa_jwt(dir: &Path) -> Jwt {
        Jwt::load(
            &config(dir, None, Some(&rsa_data("test-only-rsa-public.pem"))),
            None,
        )
        .unwrap()
    }

    const SECRET: &[u8] = b"a-long-enough-hs256-secret-for-tests-0123456789";

    #[tokio::test]
    async fn hs256_secret_with_trailing_newline_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = Jwt::load(&config(dir.path(), Some(&[SECRET, b"\r\n"].concat()), None), None).unwrap();
        let token = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(SECRET),
            &claims(),
        );
        let verified = jwt.verify(&token).await.unwrap();
        assert_eq!(verified.sub.as_deref(), Some("alice"));
        assert_eq!(verified.email.as_deref(), Some("alice@example.com"));
        // Signed with the newline: not the same secret.
        let with_newline = [SECRET, b"\n"].concat();
        let token = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&with_newline),
            &claims(),
        );
        assert_eq!(jwt.verify(&token).await.unwrap_err(), "jwt: bad signature");
        // RS256 is not accepted with only a secret.
        let token = sign(
            Algorithm::RS256,
            None,
            &EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap(),
            &claims(),
        );
        assert!(
            jwt.verify(&token)
                .await
                .unwrap_err()
                .contains("RS256 is not accepted")
        );
    }

    #[test]
    fn empty_secret_refused() {
        let dir = tempfile::tempdir().unwrap();
        for secret in [&b""[..], b"\n", b"\r\n\n"] {
            let err = Jwt::load(&config(dir.path(), Some(secret), None), None)
                .err()
                .unwrap();
            assert!(
                matches!(&err, ProxyError::Config(text) if text.contains("empty")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn rs256_from_public_key_pkcs1_and_certificate() {
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let token = sign(Algorithm::RS256, Some("any-kid"), &private, &claims());
        for file in [
            "test-only-rsa-public.pem",
            "test-only-rsa-public-pkcs1.pem",
            "test-only-rsa-cert.pem",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let jwt = Jwt::load(&config(dir.path(), None, Some(&rsa_data(file))), None).unwrap();
            assert_eq!(
                jwt.verify(&token).await.unwrap().sub.as_deref(),
                Some("alice"),
                "{file}"
            );
        }
    }

    #[tokio::test]
    async fn es256_from_public_key_and_certificate() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let private = EncodingKey::from_ec_pem(key_pair.serialize_pem().as_bytes()).unwrap();
        let token = sign(Algorithm::ES256, None, &private, &claims());
        let cert = rcgen::CertificateParams::new(vec!["signer.test".to_owned()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap();
        for pem in [key_pair.public_key_pem(), cert.pem()] {
            let dir = tempfile::tempdir().unwrap();
            let jwt = Jwt::load(&config(dir.path(), None, Some(pem.as_bytes())), None).unwrap();
            assert_eq!(jwt.verify(&token).await.unwrap().sub.as_deref(), Some("alice"));
            // The EC key verifies ES256 only.
            let hs = sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(pem.as_bytes()),
                &claims(),
            );
            assert!(jwt.verify(&hs).await.is_err());
        }
    }

    #[test]
    fn key_file_refusals() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (rsa_private_pem(), "PEM block 1 is a private key"),
            (key_pair.serialize_pem().into_bytes(), "private key"),
            (b"just text\n".to_vec(), "no PEM block"),
            (
                b"-----BEGIN PUBLIC KEY-----\nnotbase64!!\n-----END PUBLIC KEY-----\n".to_vec(),
                "PEM block 1: not an RSA",
            ),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n".to_vec(), "without its END"),
            (
                b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".to_vec(),
                "is a X509 CRL",
            ),
        ];
        for (bytes, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let err = Jwt::load(&config(dir.path(), None, Some(&bytes)), None)
                .err()
                .unwrap();
            assert!(
                matches!(&err, ProxyError::Config(text) if text.contains(expected)),
                "{err}"
            );
            assert!(!err.to_string().contains("MII"), "key material in {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut missing = config(dir.path(), None, None);
        missing.key_file = Some(dir.path().join("absent.pem"));
        assert!(matches!(Jwt::load(&missing, None), Err(ProxyError::NoInput(_))));
    }

    /// A token carrying its own key (`jwk`, `jku`, `x5u` headers; CVE-2018-0114) is checked
    /// against the configured key only.
    #[tokio::test]
    async fn embedded_key_headers_are_ignored() {
        let legit = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let attacker = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let jwt = Jwt::load(
            &config(dir.path(), None, Some(legit.public_key_pem().as_bytes())),
            None,
        )
        .unwrap();
        let attacker_jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(crate::auth::jwks::tests::ec_jwk(&attacker, "evil")).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.jwk = Some(attacker_jwk);
        header.jku = Some("https://evil.test/jwks.json".to_owned());
        header.x5u = Some("https://evil.test/cert.pem".to_owned());
        let key = EncodingKey::from_ec_pem(attacker.serialize_pem().as_bytes()).unwrap();
        let token = encode(&header, &claims(), &key).unwrap();
        assert_eq!(jwt.verify(&token).await.unwrap_err(), "jwt: bad signature");
    }

    /// Several keys in one file (a rotation): a token of either verifies.
    #[tokio::test]
    async fn several_keys_in_one_file() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let file = [
            rsa_data("test-only-rsa-public.pem"),
            ec.public_key_pem().into_bytes(),
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let jwt = Jwt::load(&config(dir.path(), None, Some(&file)), None).unwrap();
        let rs = sign(
            Algorithm::RS256,
            None,
            &EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap(),
            &claims(),
        );
        let es = sign(
            Algorithm::ES256,
            None,
            &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
            &claims(),
        );
        assert!(jwt.verify(&rs).await.is_ok());
        assert!(jwt.verify(&es).await.is_ok());
    }

    /// The security table: each token must be refused, for the stated reason.
    // One table, read top to bottom; splitting it would scatter it.
    #[allow(clippy::too_many_lines)]
    #[tokio::test]
    async fn security_table() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = rsa_jwt(dir.path());
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let public_pem = rsa_data("test-only-rsa-public.pem");
        let with = |change: serde_json::Value| {
            let mut claims = claims();
            for (name, value) in change.as_object().unwrap() {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(name);
                } else {
                    claims[name] = value.clone();
                }
            }
            sign(Algorithm::RS256, None, &private, &claims)
        };
        let good = with(json!({}));
        assert!(jwt.verify(&good).await.is_ok());
        let mut tampered = good.clone();
        let payload_start = tampered.find('.').unwrap() + 1;
        let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &json!({"sub": "admin", "aud": "pitcrew", "iss": "https://issuer.test",
                                        "exp": now() + 600}),
            )
            .unwrap(),
        );
        let payload_end = tampered.rfind('.').unwrap();
        tampered.replace_range(payload_start..payload_end, &evil);

        let table: Vec<(&str, String, &str)> = vec![
            (
                "alg none",
                unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims()),
                "alg none refused",
            ),
            (
                "alg NoNe",
                unsigned(&json!({"alg": "NoNe"}), &claims()),
                "alg none refused",
            ),
            (
                "HS256 signed with the RSA public key's PEM (key confusion)",
                sign(
                    Algorithm::HS256,
                    None,
                    &EncodingKey::from_secret(&public_pem),
                    &claims(),
                ),
                "HS256 is not accepted",
            ),
            ("expired", with(json!({"exp": now() - 120})), "token expired"),
            (
                "not yet valid",
                with(json!({"nbf": now() + 120})),
                "not valid yet",
            ),
            (
                "wrong audience",
                with(json!({"aud": "someone-else"})),
                "wrong audience",
            ),
            ("no audience", with(json!({"aud": null})), "claim aud missing"),
            (
                "wrong issuer",
                with(json!({"iss": "https://evil.test"})),
                "wrong issuer",
            ),
            ("no issuer", with(json!({"iss": null})), "claim iss missing"),
            ("no exp", with(json!({"exp": null})), "claim exp missing"),
            (
                "exp as text",
                with(json!({"exp": "tomorrow"})),
                "claim exp missing",
            ),
            ("payload swapped", tampered, "bad signature"),
            (
                "signature cut",
                good[..good.len() - 10].to_owned(),
                "bad signature",
            ),
            (
                "crit extension",
                {
                    let header = json!({"alg": "RS256", "crit": ["exp"], "exp": 1});
                    let b64 = |value: &serde_json::Value| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(serde_json::to_vec(value).unwrap())
                    };
                    let message = format!("{}.{}", b64(&header), b64(&claims()));
                    // A valid signature over that header: only the crit makes it refused.
                    let signature =
                        jsonwebtoken::crypto::sign(message.as_bytes(), &private, Algorithm::RS256).unwrap();
                    format!("{message}.{signature}")
                },
                "crit",
            ),
            ("garbage", "garbage".to_owned(), "not a JWT"),
            ("garbage with dots", "a.b.c".to_owned(), "malformed header"),
            ("empty parts", "..".to_owned(), "malformed header"),
            (
                "unknown alg",
                unsigned(&json!({"alg": "HS1024\u{1b}[31m"}), &claims()),
                "is not supported",
            ),
            (
                "newline in sub",
                with(json!({"sub": "alice\r\nX-Forwarded-User: admin"})),
                "sub claim has characters",
            ),
            (
                "huge",
                format!("{}.{}.x", "a".repeat(70_000), "b"),
                "longer than 16 KiB",
            ),
        ];
        for (what, token, expected) in table {
            let err = jwt
                .verify(&token)
                .await
                .err()
                .unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(err.contains(expected), "{what}: {err}");
            assert!(!err.contains('\u{1b}'), "{what}: {err:?}");
        }
    }

    #[tokio::test]
    async fn unverified_email_is_not_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = rsa_jwt(dir.path());
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let mut claims = claims();
        claims["email_verified"] = json!(false);
        let verified = jwt
            .verify(&sign(Algorithm::RS256, None, &private, &claims))
            .await
            .unwrap();
        assert_eq!((verified.sub.as_deref(), verified.email), (Some("alice"), None));
        claims["email_verified"] = json!(true);
        let verified = jwt
            .verify(&sign(Algorithm::RS256, None, &private, &claims))
            .await
            .unwrap();
        assert_eq!(verified.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn remembered_tokens_expire_and_go_with_their_keys() {
        let mut remembered = Remembered::default();
        let alice = Verified {
            sub: Some("alice".to_owned()),
            email: None,
        };
        let keys = (1, 0, 0);
        remembered.remember([1; 32], keys, alice.clone(), 1_000);
        assert_eq!(remembered.lookup(&[1; 32], keys, 1_000), Some(alice.clone()));
        assert_eq!(remembered.lookup(&[1; 32], keys, 1_001), None, "expired");
        assert_eq!(remembered.lookup(&[2; 32], keys, 10), None, "another token");
        assert_eq!(remembered.lookup(&[1; 32], (2, 0, 0), 10), None, "other keys");
        // Remembering under new keys forgets the old ones' tokens.
        remembered.remember([2; 32], (2, 0, 0), alice.clone(), 1_000);
        assert_eq!(remembered.lookup(&[1; 32], (2, 0, 0), 10), None);
        // Full: emptied, never grown without bound.
        for index in 0..=REMEMBERED {
            let mut digest = [0; 32];
            digest[..8].copy_from_slice(&(index as u64).to_le_bytes());
            remembered.remember(digest, (2, 0, 0), alice.clone(), 1_000);
        }
        assert!(remembered.tokens.len() <= REMEMBERED);
    }

    /// A key file swapped for another key: a token verified (and remembered) before is
    /// refused at once after the reload.
    #[tokio::test]
    async fn remembered_token_refused_after_its_key_is_replaced() {
        let (metrics, _registry) = crate::metrics::ProxyMetrics::new();
        let dir = tempfile::tempdir().unwrap();
        let jwt = rsa_jwt(dir.path());
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let token = sign(Algorithm::RS256, None, &private, &claims());
        assert!(jwt.verify(&token).await.is_ok());
        assert!(jwt.verify(&token).await.is_ok(), "remembered");
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("key.pem"), other.public_key_pem()).unwrap();
        super::super::watch::Reloadable::reload(jwt.key_file.as_deref().unwrap(), &metrics);
        assert!(
            jwt.verify(&token)
                .await
                .unwrap_err()
                .contains("RS256 is not accepted")
        );
    }

    /// Clock skew: a token expired 10 s ago passes with 30 s of leeway; one from 60 s ago not.
    #[tokio::test]
    async fn clock_skew_leeway() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = rsa_jwt(dir.path());
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let mut claims = claims();
        claims["exp"] = json!(now() - 10);
        claims["nbf"] = json!(now() + 10);
        assert!(
            jwt.verify(&sign(Algorithm::RS256, None, &private, &claims))
                .await
                .is_ok()
        );
        claims["exp"] = json!(now() - 60);
        assert!(
            jwt.verify(&sign(Algorithm::RS256, None, &private, &claims))
                .await
                .is_err()
        );
    }

    /// Audience as a list: any configured one matches.
    #[tokio::test]
    async fn audience_list() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = rsa_jwt(dir.path());
        let private = EncodingKey::from_rsa_pem(&rsa_private_pem()).unwrap();
        let mut claims = claims();
        claims["aud"] = json!(["x", "other"]);
        assert!(
            jwt.verify(&sign(Algorithm::RS256, None, &private, &claims))
                .await
                .is_ok()
        );
        claims["aud"] = json!(["x", "y"]);
        assert!(
            jwt.verify(&sign(Algorithm::RS256, None, &private, &claims))
                .await
                .is_err()
        );
    }

    /// Both a secret and a public key: the confused token meets the real secret and fails.
    #[tokio::test]
    async fn key_confusion_with_secret_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let public_pem = rsa_data("test-only-rsa-public.pem");
        let jwt = Jwt::load(&config(dir.path(), Some(SECRET), Some(&public_pem)), None).unwrap();
        let confused = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&public_pem),
            &claims(),
        );
        assert_eq!(jwt.verify(&confused).await.unwrap_err(), "jwt: bad signature");
    }

    #[test]
    fn jwt_needs_a_key() {
        let config = JwtConfig::default();
        assert!(matches!(Jwt::load(&config, None), Err(ProxyError::Usage(_))));
    }
}
