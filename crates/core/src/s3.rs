//! S3 access shared by the pitcrew tools (pitcrew-fetch's `s3://` sources, pitcrew-tail's
//! `s3://` sink): the standard AWS environment (static keys, session token, region,
//! `AWS_ENDPOINT_URL` for S3-compatible stores, web identity on EKS through STS
//! `AssumeRoleWithWebIdentity`) turned into presigned Signature V4 URLs (GET to download, PUT
//! to upload), and S3's XML error answers turned into one safe line.
//!
//! Why presigned URLs rather than signed headers: the HTTP code that uses them then needs
//! nothing S3-specific (a Range header is not part of a presigned signature, so fetch's resumes
//! just work; tail's PUT sends its own Content-Type and Content-Encoding), and one URL serves
//! every attempt until it expires. The signing itself is rusty-s3's (sans-IO, checked against
//! AWS's published example below); this module owns everything around it that users get
//! wrong: which variables win, how keys are encoded into the URL, which addressing style
//! reaches the bucket, and error messages that never carry a secret.
//!
//! One copy for every tool (the guide's rule: shared code moves to core the first time a
//! second tool needs it); behind the `s3` feature so that a tool without S3 links no reqwest.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::exit::ExitCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use quick_xml::events::Event;
use tokio::io::AsyncReadExt;
use url::Url;

/// The region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set, as the AWS SDKs do
/// for S3.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The longest lifetime SigV4 allows for a presigned URL (7 days).
pub const MAX_PRESIGN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// S3's longest object key, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// A web-identity token is a JWT of a few KiB; a bigger file is not one (and must not fill
/// memory, e.g. when the variable points at a device).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// An STS answer is well under a KiB or two; more is not an STS answer.
const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// How long the STS call may take in all.
const STS_TIMEOUT: Duration = Duration::from_secs(30);

/// S3's URI-encoding of a key: every byte except the unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) and `/`, as in the SigV4 canonical URI for S3 (which, unlike other
/// services, is encoded once and not normalised).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A bucket and key, from `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// The bucket name.
    pub bucket: String,
    /// The object key (without a leading `/`).
    pub key: String,
}

impl S3Object {
    /// Parses `s3://bucket/key`, naming the bad part and the expected form on error.
    ///
    /// The key is taken literally, as `aws s3 cp` does: `%20` is the three characters `%20`,
    /// not a space, and `?` or `#` are part of the key. `s3://bucket//key` names the key
    /// `/key`.
    pub fn parse(url: &str) -> Result<S3Object, String> {
        const EXPECTED: &str = "expected s3://BUCKET/KEY";
        let shown = |url: &str| crate::redact::url_password(&shown(url));
        let rest = url
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
            .map(|_| &url[5..])
            .ok_or_else(|| format!("{:?} is not an s3:// URL; {EXPECTED}", shown(url)))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| format!("{:?} names no key; {EXPECTED}", shown(url)))?;
        check_bucket(bucket).map_err(|problem| format!("{:?}: {problem}", shown(url)))?;
        if key.is_empty() {
            return Err(format!(
                "{:?} names no key (a whole bucket cannot be fetched); {EXPECTED}",
                shown(url)
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "{:?}: the key is {} bytes long; S3 keys are at most {MAX_KEY_BYTES}",
                shown(url),
                key.len()
            ));
        }
        // URLs resolve `.` and `..` segments (also written `%2e`) before a request is sent, so
        // such a key would silently fetch another object; refuse it instead.
        if key.split('/').any(|segment| segment == "." || segment == "..") {
            return Err(format!(
                "{:?}: the key has a `.` or `..` path segment, which an HTTP request cannot \
                 carry unchanged; rename the object",
                shown(url)
            ));
        }
        Ok(S3Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for S3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters are legal in keys; escaped, they cannot forge a log line.
        write!(f, "s3://{}/{}", self.bucket, shown(&self.key))
    }
}

/// `text` with control characters escaped, for messages and log lines.
pub fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Bucket names as S3 and the S3-compatible stores accept them: ASCII letters, digits, `.`,
/// `-` and `_` (legacy us-east-1 buckets and some stores allow upper case and `_`). Anything
/// else would need encoding or change the URL's host.
pub fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is empty; expected s3://BUCKET/KEY".into());
    }
    if bucket.len() > 255 {
        return Err(format!(
            "the bucket name is {} characters long; S3 allows 63",
            bucket.len()
        ));
    }
    // `user:password@bucket`: the part before `@` may be a secret, so it is not echoed.
    if bucket.contains('@') {
        return Err(
            "the bucket part has the character '@': s3:// URLs take no user name or \
                    password (credentials come from the AWS_* variables); the value is not shown"
                .into(),
        );
    }
    if let Some(bad) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "bucket {:?} has the character {bad:?}; bucket names have letters, digits, `.`, \
             `-` and `_` only",
            shown(bucket)
        ));
    }
    if bucket.split('.').any(str::is_empty) {
        return Err(format!(
            "bucket {bucket:?} has an empty `.`-separated part; bucket names look like \
             `my-bucket` or `logs.example.com`"
        ));
    }
    Ok(())
}

/// Whether `bucket` can be the first label of a virtual-hosted S3 host name with a valid TLS
/// certificate (`*.s3.REGION.amazonaws.com` covers one label: no dots), as the AWS SDKs decide.
fn virtual_host_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// A value that must never be shown: `Debug` prints `***`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it (a signature, a form field).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the credentials come from.
#[derive(Clone)]
enum Source {
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged at STS.
    WebIdentity {
        token_file: PathBuf,
        role_arn: String,
        session_name: String,
        sts_endpoint: Url,
    },
}

/// Where and as whom to reach S3, read from the AWS environment variables.
///
/// | variable | meaning |
/// |---|---|
/// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` | static keys (win over web identity, as in the AWS SDKs) |
/// | `AWS_SESSION_TOKEN` | with static keys: temporary credentials |
/// | `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN` | web identity (EKS IRSA): exchanged at STS `AssumeRoleWithWebIdentity` |
/// | `AWS_ROLE_SESSION_NAME` | web identity's session name (default: the tool's name, given to [`S3Settings::from_env`]) |
/// | `AWS_REGION`, else `AWS_DEFAULT_REGION` | region (default `us-east-1`) |
/// | `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` | an S3-compatible store: path-style URLs under it |
/// | `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL` | where STS is (default `https://sts.REGION.amazonaws.com/`) |
#[derive(Clone)]
pub struct S3Settings {
    region: String,
    /// A custom endpoint, with a path ending in `/`.
    endpoint: Option<Url>,
    source: Source,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("S3Settings");
        out.field("region", &self.region)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str));
        match &self.source {
            Source::Static { access_key_id, .. } => out
                .field("credentials", &self.credential_source())
                .field("access_key_id", &masked_key_id(access_key_id)),
            Source::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts_endpoint,
            } => out
                .field("credentials", &self.credential_source())
                .field("token_file", token_file)
                .field("role_arn", role_arn)
                .field("session_name", session_name)
                .field("sts_endpoint", &sts_endpoint.as_str()),
        };
        out.finish_non_exhaustive()
    }
}

/// The last four characters of an access key id, as `aws configure list` shows it: enough to
/// tell keys apart in a log without handing one out.
pub fn masked_key_id(access_key_id: &str) -> String {
    let tail: String = access_key_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("****{tail}")
}

impl S3Settings {
    /// Reads the AWS variables through `get` (the process environment in production, a map
    /// in tests). Empty values count as unset; surrounding whitespace (a trailing newline
    /// from a Secret made with `echo`) is dropped. `default_session_name` is the web-identity
    /// session name when `AWS_ROLE_SESSION_NAME` is unset: the tool's name (`pitcrew-fetch`,
    /// `pitcrew-tail`), so CloudTrail shows which tool assumed the role.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        default_session_name: &str,
    ) -> Result<S3Settings, S3Error> {
        let var = |name: &str| {
            get(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|name| var(name).map(|value| (*name, value)))
        };

        let region = match first(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
            Some((name, value)) => check_region(name, value)?,
            None => DEFAULT_REGION.to_owned(),
        };
        let endpoint = first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
            .map(|(name, value)| parse_endpoint(name, &value))
            .transpose()?;

        let key_id = var("AWS_ACCESS_KEY_ID");
        let secret = var("AWS_SECRET_ACCESS_KEY");
        let source = match (key_id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => {
                if let Some(bad) = access_key_id
                    .chars()
                    .find(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(S3Error::Config(format!(
                        "AWS_ACCESS_KEY_ID has the character {bad:?} inside; access key ids \
                         have none"
                    )));
                }
                Source::Static {
                    access_key_id,
                    secret_access_key: Secret(secret_access_key),
                    session_token: var("AWS_SESSION_TOKEN").map(Secret),
                }
            }
            (Some(_), None) => {
                return Err(S3Error::Config(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both (or \
                     neither, to use web identity)"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(S3Error::Config(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both (or \
                     neither, to use web identity)"
                        .into(),
                ));
            }
            (None, None) => web_identity(&var, &region, default_session_name, first)?,
        };
        Ok(S3Settings {
            region,
            endpoint,
            source,
        })
    }

    /// The region URLs are signed for (and, on AWS, the host names are in).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The S3-compatible endpoint from `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, if any
    /// (objects are then addressed path-style under it).
    pub fn endpoint(&self) -> Option<&Url> {
        self.endpoint.as_ref()
    }

    /// Where the credentials come from, for a log line: `"static keys"`,
    /// `"static keys with a session token"` or `"web identity"`.
    pub fn credential_source(&self) -> &'static str {
        match &self.source {
            Source::Static {
                session_token: None, ..
            } => "static keys",
            Source::Static { .. } => "static keys with a session token",
            Source::WebIdentity { .. } => "web identity",
        }
    }

    /// The unsigned URL of `object`: path-style under a custom endpoint; on AWS
    /// `https://BUCKET.s3.REGION.amazonaws.com/KEY`, or path-style
    /// `https://s3.REGION.amazonaws.com/BUCKET/KEY` for bucket names that cannot be a host
    /// label (dots, upper case, `_`). Holds no secret.
    pub fn object_url(&self, object: &S3Object) -> Result<Url, S3Error> {
        check_bucket(&object.bucket).map_err(S3Error::Config)?;
        let key = utf8_percent_encode(&object.key, KEY_ENCODE).to_string();
        let bucket = &object.bucket;
        let (text, path) = if let Some(endpoint) = &self.endpoint {
            (
                format!("{endpoint}{bucket}/{key}"),
                format!("{}{bucket}/{key}", endpoint.path()),
            )
        } else {
            let domain = aws_domain(&self.region);
            let region = &self.region;
            if virtual_host_bucket(bucket) {
                (
                    format!("https://{bucket}.s3.{region}.{domain}/{key}"),
                    format!("/{key}"),
                )
            } else {
                (
                    format!("https://s3.{region}.{domain}/{bucket}/{key}"),
                    format!("/{bucket}/{key}"),
                )
            }
        };
        let url = Url::parse(&text)
            .map_err(|err| S3Error::Config(format!("{object} does not make a valid URL ({err})")))?;
        // The signature covers the path exactly as sent; a URL parser that rewrote it (dot
        // segments) would make S3 answer SignatureDoesNotMatch, or fetch another object.
        if url.path() != path {
            return Err(S3Error::Config(format!(
                "{object} cannot be expressed as a URL unchanged"
            )));
        }
        Ok(url)
    }
}

/// Web identity from `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, or the error that says
/// what to set when there are no credentials at all.
fn web_identity(
    var: &dyn Fn(&str) -> Option<String>,
    region: &str,
    default_session_name: &str,
    first: impl Fn(&[&'static str]) -> Option<(&'static str, String)>,
) -> Result<Source, S3Error> {
    match (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
        (Some(token_file), Some(role_arn)) => {
            if !(role_arn.starts_with("arn:") && role_arn.contains(":role/")) {
                return Err(S3Error::Config(format!(
                    "AWS_ROLE_ARN={:?} is not a role ARN; expected \
                     arn:aws:iam::ACCOUNT:role/NAME",
                    shown(&role_arn)
                )));
            }
            let session_name =
                var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| default_session_name.to_owned());
            let valid_name = (2..=64).contains(&session_name.len())
                && session_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
            if !valid_name {
                return Err(S3Error::Config(format!(
                    "AWS_ROLE_SESSION_NAME={:?} is not a session name; expected 2 to 64 of \
                     letters, digits and +=,.@_-",
                    shown(&session_name)
                )));
            }
            let sts_endpoint = match first(&["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]) {
                Some((name, value)) => parse_endpoint(name, &value)?,
                None => {
                    Url::parse(&format!("https://sts.{region}.{}/", aws_domain(region))).map_err(|err| {
                        S3Error::Config(format!("region {region:?} makes no valid STS host name ({err})"))
                    })?
                }
            };
            Ok(Source::WebIdentity {
                token_file: PathBuf::from(token_file),
                role_arn,
                session_name,
                sts_endpoint,
            })
        }
        (Some(_), None) => Err(S3Error::Config(
            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: web identity needs \
             both (on EKS, check the service account's eks.amazonaws.com/role-arn annotation)"
                .into(),
        )),
        (None, Some(_)) => Err(S3Error::Config(
            "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not: web identity needs both".into(),
        )),
        (None, None) => Err(S3Error::Config(
            "no AWS credentials for s3://: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (plus AWS_SESSION_TOKEN for temporary keys), or AWS_WEB_IDENTITY_TOKEN_FILE and \
             AWS_ROLE_ARN (web identity, as EKS sets them)"
                .into(),
        )),
    }
}

/// A region name: it becomes part of host names on AWS and of every signature.
fn check_region(name: &str, value: String) -> Result<String, S3Error> {
    let valid = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(value)
    } else {
        Err(S3Error::Config(format!(
            "{name}={:?} is not a region name; expected lower-case letters, digits and `-`, \
             e.g. eu-west-1",
            shown(&value)
        )))
    }
}

/// The DNS suffix of AWS's endpoints in `region`'s partition.
fn aws_domain(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// An endpoint URL from variable `name`: http or https, a host, no credentials, query or
/// fragment; its path gets a trailing `/` so that names can be appended under it.
fn parse_endpoint(name: &str, value: &str) -> Result<Url, S3Error> {
    // A value with `@` may carry a password (`http://user:pass@minio:9000`): never echo it.
    let echoed = if value.contains('@') {
        "(value not shown: it has an `@`)".to_owned()
    } else {
        format!("{:?}", shown(value))
    };
    let bad = |why: &str| {
        S3Error::Config(format!(
            "{name}={echoed} {why}; expected e.g. http://minio.storage:9000"
        ))
    };
    let mut url = Url::parse(value).map_err(|err| bad(&format!("is not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds a user name or password; credentials go in AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Credentials to sign with. `Debug` never shows the secret parts.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    expires: Option<SystemTime>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// When these credentials stop working (temporary ones from STS), if known. A download
    /// that outlives them must call [`credentials`] again.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires
    }
}

/// The credentials `settings` name: the static keys, or temporary ones from STS
/// `AssumeRoleWithWebIdentity` with the token file (through `client`). The token file is read
/// afresh at each call: the kubelet rotates it.
pub async fn credentials(settings: &S3Settings, client: &reqwest::Client) -> Result<Credentials, S3Error> {
    match &settings.source {
        Source::Static {
            access_key_id,
            secret_access_key,
            session_token,
        } => Ok(Credentials {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            session_token: session_token.clone(),
            expires: None,
        }),
        Source::WebIdentity {
            token_file,
            role_arn,
            session_name,
            sts_endpoint,
        } => {
            let token = read_token(token_file).await?;
            assume_role_with_web_identity(client, sts_endpoint, role_arn, session_name, &token).await
        }
    }
}

/// The web-identity token, trimmed; a missing, unreadable, empty or oversized file is
/// [`S3Error::Unreadable`].
async fn read_token(path: &std::path::Path) -> Result<Secret, S3Error> {
    let unreadable = |why: String| {
        S3Error::Unreadable(format!(
            "AWS_WEB_IDENTITY_TOKEN_FILE {}: {why}",
            shown(&path.display().to_string())
        ))
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|err| unreadable(format!("cannot open it ({err})")))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| unreadable(format!("cannot read it ({err})")))?;
    if bytes.len() as u64 > MAX_TOKEN_BYTES {
        return Err(unreadable(format!(
            "it is over {MAX_TOKEN_BYTES} bytes, which no web-identity token is"
        )));
    }
    let token = String::from_utf8(bytes)
        .map_err(|_| unreadable("it is not text (a web-identity token is a JWT)".into()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(unreadable("it is empty".into()));
    }
    Ok(Secret(token.to_owned()))
}

/// One unsigned `AssumeRoleWithWebIdentity` call (the token is the proof), as a form POST so
/// that the token is in no URL (and so in no proxy's access log).
async fn assume_role_with_web_identity(
    client: &reqwest::Client,
    sts: &Url,
    role_arn: &str,
    session_name: &str,
    token: &Secret,
) -> Result<Credentials, S3Error> {
    let what = format!("STS AssumeRoleWithWebIdentity for {role_arn} at {sts}");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session_name)
        .append_pair("WebIdentityToken", &token.0)
        .finish();
    let mut response = client
        .post(sts.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .timeout(STS_TIMEOUT)
        .send()
        .await
        .map_err(|err| S3Error::Credentials(format!("{what}: {}", error_chain(&err))))?;
    let status = response.status();
    let mut answer = Vec::new();
    while answer.len() < MAX_STS_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                return Err(S3Error::Credentials(format!(
                    "{what}: the answer broke off ({})",
                    error_chain(&err)
                )));
            }
        }
    }
    let fields = xml_fields(&answer);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    };
    if !status.is_success() {
        let described = match (field("Error/Code"), field("Error/Message")) {
            (Some(code), message) => {
                let message = message.map(sanitized_message).unwrap_or_default();
                format!("{code}: {message}")
            }
            _ => format!("HTTP {status} (not an STS error document)"),
        };
        // An identity provider's message could quote the token it refused.
        let described = described.replace(&token.0, "***");
        return Err(S3Error::Credentials(format!("{what} failed: {described}")));
    }
    let (Some(access_key_id), Some(secret), Some(session_token)) = (
        field("Credentials/AccessKeyId"),
        field("Credentials/SecretAccessKey"),
        field("Credentials/SessionToken"),
    ) else {
        // The answer holds secrets when it is half right: describe, never echo it.
        return Err(S3Error::Credentials(format!(
            "{what}: HTTP {status} but the answer has no complete Credentials \
             (AccessKeyId, SecretAccessKey, SessionToken)"
        )));
    };
    let expires = field("Credentials/Expiration")
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .map(SystemTime::from);
    Ok(Credentials {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: Secret(secret.to_owned()),
        session_token: Some(Secret(session_token.to_owned())),
        expires,
    })
}

/// `err` and its sources, `: `-separated (reqwest's own text is only the outermost layer).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A presigned SigV4 GET URL for `object`, valid for `expires` from `now`. A secret: it is
/// requested, never logged (log the `S3Object` instead).
///
/// Only the `host` header is signed, so the caller may add `Range` (or any other header).
pub fn presigned_get(
    settings: &S3Settings,
    credentials: &Credentials,
    object: &S3Object,
    now: SystemTime,
    expires: Duration,
) -> Result<Url, S3Error> {
    presign(rusty_s3::Method::Get, settings, credentials, object, now, expires)
}

/// A presigned SigV4 PUT URL for `object`, valid for `expires` from `now`: the body is
/// `UNSIGNED-PAYLOAD` and only `host` is signed, so the caller sends any `Content-Type`,
/// `Content-Encoding` or `Content-Length`. A secret like [`presigned_get`]'s.
///
/// Why presigned for an upload too: the uploader is then a plain HTTP PUT with retries, and
/// signing stays one code path for both tools.
pub fn presigned_put(
    settings: &S3Settings,
    credentials: &Credentials,
    object: &S3Object,
    now: SystemTime,
    expires: Duration,
) -> Result<Url, S3Error> {
    presign(rusty_s3::Method::Put, settings, credentials, object, now, expires)
}

fn presign(
    method: rusty_s3::Method,
    settings: &S3Settings,
    credentials: &Credentials,
    object: &S3Object,
    now: SystemTime,
    expires: Duration,
) -> Result<Url, S3Error> {
    if expires < Duration::from_secs(1) || expires > MAX_PRESIGN_LIFETIME {
        return Err(S3Error::Config(format!(
            "a presigned URL lifetime of {expires:?} is outside what SigV4 allows (1s to 7 days)"
        )));
    }
    let url = settings.object_url(object)?;
    sign(method, url, &settings.region, credentials, now, expires)
}

/// Presigns `method` on `url` (whose path is already S3-encoded) for `region`.
fn sign(
    method: rusty_s3::Method,
    url: Url,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
    expires: Duration,
) -> Result<Url, S3Error> {
    let time = jiff::Timestamp::try_from(now)
        .map_err(|err| S3Error::Config(format!("the clock reads {now:?}, which cannot be signed ({err})")))?;
    Ok(rusty_s3::signing::sign(
        &time,
        method,
        url,
        &credentials.access_key_id,
        &credentials.secret_access_key.0,
        credentials.session_token.as_ref().map(|token| token.0.as_str()),
        region,
        expires.as_secs(),
        std::iter::empty(),
        std::iter::empty(),
    ))
}

/// An S3 error response as one short line ("NoSuchKey: The specified key does not exist."),
/// or a generic one for a body that is not S3's XML.
///
/// Only `Code`, `Message` and the region hints are used: S3 error documents can also carry
/// `StringToSign`, `CanonicalRequest`, `SignatureProvided` and `AWSAccessKeyId`, which are
/// dropped. `body` may be cut short (the first few KiB of the answer).
pub fn describe_error(status: u16, body: &[u8]) -> String {
    describe(Operation::Get, status, body)
}

/// [`describe_error`] for an upload (a presigned PUT): the same line, with hints about
/// writing (`s3:PutObject`) rather than reading.
pub fn describe_put_error(status: u16, body: &[u8]) -> String {
    describe(Operation::Put, status, body)
}

/// The `Code` of an S3 (or STS) XML error answer, if the body is one: for callers that act on
/// it, e.g. refreshing credentials on `ExpiredToken`.
pub fn error_code(body: &[u8]) -> Option<String> {
    xml_fields(body)
        .into_iter()
        .find(|(path, value)| path == "Error/Code" && !value.trim().is_empty())
        .map(|(_, value)| sanitized_message(value.trim()))
}

/// Whether an S3 error code says the credentials expired (temporary ones from STS or a
/// session token): new credentials, not a changed request, fix it.
pub fn is_expired_credentials(code: &str) -> bool {
    matches!(code, "ExpiredToken" | "TokenRefreshRequired")
}

/// What a request was doing, for the hints of [`describe_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Get,
    Put,
}

fn describe(operation: Operation, status: u16, body: &[u8]) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .map_or_else(
            || format!("HTTP {status}"),
            |reason| format!("HTTP {status} {reason}"),
        );
    let fields = xml_fields(body);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    };
    let Some(code) = field("Error/Code") else {
        return format!("{reason} (the answer is not an S3 error document)");
    };
    let code = sanitized_message(code);
    let mut line = code.clone();
    if let Some(message) = field("Error/Message") {
        line.push_str(": ");
        line.push_str(&sanitized_message(message));
    }
    line.push_str(" (");
    line.push_str(&reason);
    if let Some(hint) = hint(
        operation,
        &code,
        field("Error/Region").or(field("Error/Endpoint")),
    ) {
        line.push_str("; ");
        line.push_str(&hint);
    }
    line.push(')');
    line
}

/// What to do about an S3 error code.
fn hint(operation: Operation, code: &str, region_hint: Option<&str>) -> Option<String> {
    let text = match code {
        "SignatureDoesNotMatch" => {
            "check AWS_SECRET_ACCESS_KEY: it does not belong to AWS_ACCESS_KEY_ID".into()
        }
        // s3s-based stores say NotSignedUp for an unknown key.
        "InvalidAccessKeyId" | "NotSignedUp" => "check AWS_ACCESS_KEY_ID: the store does not know it (and \
             AWS_ENDPOINT_URL, if the keys are for an S3-compatible store)"
            .into(),
        "ExpiredToken" | "TokenRefreshRequired" => "the session token has expired: renew \
             AWS_SESSION_TOKEN (and the keys issued with it)"
            .into(),
        "InvalidToken" => "check AWS_SESSION_TOKEN: it does not belong to AWS_ACCESS_KEY_ID".into(),
        "AccessDenied" if operation == Operation::Get => "the credentials are valid but may not \
             read this object (they need s3:GetObject on it, and kms:Decrypt for SSE-KMS objects)"
            .into(),
        "AccessDenied" => "the credentials are valid but may not write this key (they need \
             s3:PutObject on it, and kms:GenerateDataKey for a bucket with SSE-KMS by default)"
            .into(),
        "NoSuchBucket" => "check the bucket name, and AWS_REGION/AWS_ENDPOINT_URL".into(),
        "NoSuchKey" if operation == Operation::Get => {
            "check the key: keys are case-sensitive and taken literally".into()
        }
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "AuthorizationQueryParametersError"
        | "IllegalLocationConstraintException" => match region_hint {
            Some(region) => format!(
                "the bucket may be in another region: set AWS_REGION (S3 names {})",
                sanitized_message(region)
            ),
            None => "the bucket may be in another region: set AWS_REGION".into(),
        },
        "RequestTimeTooSkewed" => "this machine's clock is off".into(),
        _ => return None,
    };
    Some(text)
}

/// A message from a server, fit for one log line: control characters out, at most 300
/// characters, and withheld if it quotes signing material (some S3-compatible stores put the
/// string-to-sign into the message).
fn sanitized_message(message: &str) -> String {
    if message.contains("AWS4-HMAC-SHA256") || message.contains("X-Amz-") || message.contains("x-amz-") {
        return "(message withheld: it quotes signing material)".into();
    }
    let mut text: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if message.chars().count() > 300 {
        text.push('…');
    }
    text
}

/// The text of each leaf element of an XML document, as (`Parent/Name` of its last two
/// local names, text), in document order. Tolerant: a document cut short or broken yields
/// what came before the break. Bounded in entries, so a hostile answer cannot fill memory.
fn xml_fields(body: &[u8]) -> Vec<(String, String)> {
    const MAX_FIELDS: usize = 256;
    const MAX_DEPTH: usize = 32;
    let body = String::from_utf8_lossy(body);
    let mut reader = quick_xml::Reader::from_str(&body);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut fields = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                if stack.len() >= MAX_DEPTH {
                    break;
                }
                stack.push(start.local_name().as_ref().to_owned());
                text.clear();
            }
            Ok(Event::Text(chunk)) => text.push_str(&chunk.xml10_content()),
            Ok(Event::CData(chunk)) => text.push_str(&chunk.xml10_content()),
            Ok(Event::GeneralRef(reference)) => match reference.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                Ok(None) => {
                    text.push_str(quick_xml::escape::resolve_predefined_entity(&reference).unwrap_or(""));
                }
                Err(_) => {}
            },
            Ok(Event::End(_)) => {
                let Some(name) = stack.pop() else { break };
                if !text.trim().is_empty() {
                    let path = match stack.last() {
                        Some(parent) => format!("{parent}/{name}"),
                        None => name,
                    };
                    fields.push((path, std::mem::take(&mut text)));
                    if fields.len() >= MAX_FIELDS {
                        break;
                    }
                }
                text.clear();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    fields
}

/// Why S3 cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The AWS environment is incomplete or invalid (exit 78).
    #[error("{0}")]
    Config(String),
    /// A credentials file (the web-identity token) is missing or unreadable (exit 66).
    #[error("{0}")]
    Unreadable(String),
    /// STS refused or failed to give credentials (exit 1).
    #[error("{0}")]
    Credentials(String),
}

impl S3Error {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            S3Error::Config(_) => ExitCode::Config,
            S3Error::Unreadable(_) => ExitCode::NoInput,
            S3Error::Credentials(_) => ExitCode::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

    fn settings(vars: &[(&str, &str)]) -> Result<S3Settings, S3Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        S3Settings::from_env(&|name| map.get(name).cloned(), "pitcrew-test")
    }

    fn config_error(vars: &[(&str, &str)]) -> String {
        match settings(vars) {
            Err(err @ S3Error::Config(_)) => {
                assert_eq!(err.exit_code(), ExitCode::Config);
                err.to_string()
            }
            other => panic!("expected a Config error for {vars:?}, got {other:?}"),
        }
    }

    fn object(bucket: &str, key: &str) -> S3Object {
        S3Object {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn keys() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ]
    }

    fn static_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret(SECRET.into()),
            session_token: token.map(|token| Secret(token.into())),
            expires: None,
        }
    }

    /// Fri, 24 May 2013 00:00:00 GMT, the time of AWS's published example.
    fn example_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    #[test]
    fn parse_takes_bucket_and_literal_key() {
        let parsed = S3Object::parse("s3://my-bucket/dir/a b+c%20?x#y").unwrap();
        assert_eq!(parsed, object("my-bucket", "dir/a b+c%20?x#y"));
        assert_eq!(S3Object::parse("S3://b-1/k").unwrap(), object("b-1", "k"));
        assert_eq!(
            S3Object::parse("s3://bucket//lead").unwrap(),
            object("bucket", "/lead")
        );
        assert_eq!(parsed.to_string(), "s3://my-bucket/dir/a b+c%20?x#y");
    }

    #[test]
    fn parse_refuses_malformed_urls_naming_the_problem() {
        for (url, expected) in [
            ("https://bucket/key", "not an s3:// URL"),
            ("s3:/bucket/key", "not an s3:// URL"),
            ("s3", "not an s3:// URL"),
            ("s3://bucket", "names no key"),
            ("s3://bucket/", "names no key"),
            ("s3:///key", "bucket name is empty"),
            ("s3://user@bucket/key", "character '@'"),
            ("s3://user:hunter2@bucket/key", "character '@'"),
            ("s3://bucket:9000/key", "character ':'"),
            ("s3://bu cket/key", "character ' '"),
            ("s3://bucket..x/key", "empty `.`-separated part"),
            ("s3://../key", "empty `.`-separated part"),
            ("s3://bucket/a/../b", "`..` path segment"),
            ("s3://bucket/./b", "`..` path segment"),
            ("s3://bucket/a/..", "`..` path segment"),
        ] {
            let err = S3Object::parse(url).expect_err(url);
            assert!(err.contains(expected), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
            assert!(err.contains("s3://") || err.contains("bucket"), "{url}: {err}");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1025));
        assert!(S3Object::parse(&long).unwrap_err().contains("at most 1024"));
        assert!(S3Object::parse(&format!("s3://bucket/{}", "k".repeat(1024))).is_ok());
    }

    #[test]
    fn display_escapes_control_characters_so_a_key_cannot_forge_a_log_line() {
        let parsed = S3Object::parse("s3://bucket/a\nlevel=error msg=forged").unwrap();
        assert_eq!(parsed.key, "a\nlevel=error msg=forged");
        assert_eq!(parsed.to_string(), "s3://bucket/a\\nlevel=error msg=forged");
    }

    #[test]
    fn region_defaults_and_precedence() {
        assert_eq!(settings(&keys()).unwrap().region(), "us-east-1");
        let mut vars = keys();
        vars.push(("AWS_DEFAULT_REGION", "eu-west-1"));
        assert_eq!(settings(&vars).unwrap().region(), "eu-west-1");
        vars.push(("AWS_REGION", "eu-central-1"));
        assert_eq!(settings(&vars).unwrap().region(), "eu-central-1");
        // Empty counts as unset.
        let mut vars = keys();
        vars.extend([("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "ap-south-1")]);
        assert_eq!(settings(&vars).unwrap().region(), "ap-south-1");
    }

    #[test]
    fn bad_region_names_the_variable_and_value() {
        for bad in ["US-EAST-1", "eu west 1", "eu-west-1.evil.com", "-a", "eu/west"] {
            let mut vars = keys();
            vars.push(("AWS_REGION", bad));
            let err = config_error(&vars);
            assert!(err.contains("AWS_REGION") && err.contains(bad), "{err}");
        }
        let mut vars = keys();
        vars.push(("AWS_DEFAULT_REGION", "x_y"));
        assert!(config_error(&vars).contains("AWS_DEFAULT_REGION=\"x_y\""));
    }

    #[test]
    fn bad_endpoint_names_the_variable_and_value() {
        for (value, expected) in [
            ("minio:9000", "not an http or https URL"),
            ("not a url", "is not a URL"),
            ("ftp://minio/", "not an http or https URL"),
            ("http://minio:9000/?x=1", "query or fragment"),
            ("http://minio:9000/#f", "query or fragment"),
            ("http://", "is not a URL"),
        ] {
            let mut vars = keys();
            vars.push(("AWS_ENDPOINT_URL", value));
            let err = config_error(&vars);
            assert!(
                err.contains("AWS_ENDPOINT_URL=") && err.contains(expected),
                "{value}: {err}"
            );
            assert!(err.contains(&format!("{value:?}")), "{value}: {err}");
        }
        let mut vars = keys();
        vars.push(("AWS_ENDPOINT_URL_S3", "http://admin:hunter2@minio:9000"));
        let err = config_error(&vars);
        assert!(
            err.contains("AWS_ENDPOINT_URL_S3") && err.contains("password"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn endpoint_s3_wins_over_endpoint_url() {
        let mut vars = keys();
        vars.push(("AWS_ENDPOINT_URL", "http://general:1"));
        let s3 = settings(&vars).unwrap();
        assert_eq!(s3.endpoint().unwrap().as_str(), "http://general:1/");
        vars.push(("AWS_ENDPOINT_URL_S3", "http://s3only:2/prefix"));
        let s3 = settings(&vars).unwrap();
        assert_eq!(s3.endpoint().unwrap().as_str(), "http://s3only:2/prefix/");
        assert_eq!(
            s3.object_url(&object("b", "k")).unwrap().as_str(),
            "http://s3only:2/prefix/b/k"
        );
    }

    #[test]
    fn half_a_static_pair_names_the_missing_one() {
        let err = config_error(&[("AWS_ACCESS_KEY_ID", "AKIA1")]);
        assert!(err.starts_with("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"));
        let err = config_error(&[("AWS_SECRET_ACCESS_KEY", SECRET)]);
        assert!(err.starts_with("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));
        assert!(!err.contains(SECRET));
        // Half a pair is not silently replaced by web identity.
        let err = config_error(&[
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]);
        assert!(err.contains("AWS_SECRET_ACCESS_KEY is not"), "{err}");
    }

    #[test]
    fn nothing_set_lists_what_is_needed() {
        let err = config_error(&[("AWS_REGION", "eu-west-1"), ("AWS_SESSION_TOKEN", TOKEN)]);
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
        ] {
            assert!(err.contains(name), "{err}");
        }
        assert!(!err.contains(TOKEN));
    }

    #[test]
    fn web_identity_needs_both_and_valid_values() {
        let err = config_error(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")]);
        assert!(err.contains("AWS_ROLE_ARN is not"), "{err}");
        let err = config_error(&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")]);
        assert!(err.contains("AWS_WEB_IDENTITY_TOKEN_FILE is not"), "{err}");
        let err = config_error(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "my-role")]);
        assert!(
            err.contains("AWS_ROLE_ARN=\"my-role\" is not a role ARN"),
            "{err}"
        );
        let err = config_error(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ROLE_SESSION_NAME", "has space"),
        ]);
        assert!(err.contains("AWS_ROLE_SESSION_NAME=\"has space\""), "{err}");
        let err = config_error(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ENDPOINT_URL_STS", "sts.local"),
        ]);
        assert!(err.contains("AWS_ENDPOINT_URL_STS=\"sts.local\""), "{err}");
    }

    #[test]
    fn static_keys_win_over_web_identity() {
        let mut vars = keys();
        vars.extend([
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]);
        assert_eq!(settings(&vars).unwrap().credential_source(), "static keys");
        vars.push(("AWS_SESSION_TOKEN", TOKEN));
        assert_eq!(
            settings(&vars).unwrap().credential_source(),
            "static keys with a session token"
        );
    }

    #[test]
    fn sts_endpoint_precedence_and_default() {
        let web = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ];
        let sts = |extra: &[(&str, &str)]| {
            let mut vars = web.to_vec();
            vars.extend_from_slice(extra);
            match settings(&vars).unwrap().source {
                Source::WebIdentity {
                    sts_endpoint,
                    session_name,
                    ..
                } => (sts_endpoint.to_string(), session_name),
                Source::Static { .. } => unreachable!(),
            }
        };
        assert_eq!(
            sts(&[]),
            (
                "https://sts.us-east-1.amazonaws.com/".into(),
                "pitcrew-test".into()
            )
        );
        assert_eq!(
            sts(&[("AWS_REGION", "cn-north-1")]).0,
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            sts(&[("AWS_ENDPOINT_URL", "http://local:1")]).0,
            "http://local:1/"
        );
        assert_eq!(
            sts(&[
                ("AWS_ENDPOINT_URL", "http://local:1"),
                ("AWS_ENDPOINT_URL_STS", "http://sts:2")
            ])
            .0,
            "http://sts:2/"
        );
        assert_eq!(sts(&[("AWS_ROLE_SESSION_NAME", "job-42@ns")]).1, "job-42@ns");
    }

    #[test]
    fn values_are_trimmed_so_a_trailing_newline_does_not_break_the_signature() {
        let s3 = settings(&[
            ("AWS_ACCESS_KEY_ID", " AKIAIOSFODNN7EXAMPLE\n"),
            ("AWS_SECRET_ACCESS_KEY", &format!("{SECRET}\n")),
            ("AWS_REGION", "eu-west-1\n"),
        ])
        .unwrap();
        assert_eq!(s3.region(), "eu-west-1");
        match s3.source {
            Source::Static {
                access_key_id,
                secret_access_key,
                ..
            } => {
                assert_eq!(access_key_id, "AKIAIOSFODNN7EXAMPLE");
                assert_eq!(secret_access_key.0, SECRET);
            }
            Source::WebIdentity { .. } => unreachable!(),
        }
        let err = config_error(&[
            ("AWS_ACCESS_KEY_ID", "AKIA EXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ]);
        assert!(err.contains("AWS_ACCESS_KEY_ID has the character ' '"), "{err}");
    }

    #[test]
    fn url_style_virtual_host_on_aws_path_style_for_dots_and_custom_endpoints() {
        let mut vars = keys();
        vars.push(("AWS_REGION", "eu-west-1"));
        let aws = settings(&vars).unwrap();
        let url = |s3: &S3Settings, bucket: &str, key: &str| {
            s3.object_url(&object(bucket, key)).unwrap().to_string()
        };
        assert_eq!(
            url(&aws, "my-bucket", "dir/file.csv"),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/file.csv"
        );
        assert_eq!(
            url(&aws, "logs.example.com", "a"),
            "https://s3.eu-west-1.amazonaws.com/logs.example.com/a"
        );
        assert_eq!(
            url(&aws, "Legacy_Bucket", "a"),
            "https://s3.eu-west-1.amazonaws.com/Legacy_Bucket/a"
        );
        assert_eq!(
            url(&aws, "my-bucket", "/lead"),
            "https://my-bucket.s3.eu-west-1.amazonaws.com//lead"
        );
        let mut china = keys();
        china.push(("AWS_REGION", "cn-north-1"));
        assert_eq!(
            url(&settings(&china).unwrap(), "b-1", "k"),
            "https://b-1.s3.cn-north-1.amazonaws.com.cn/k"
        );
        let mut custom = keys();
        custom.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"));
        let custom = settings(&custom).unwrap();
        assert_eq!(
            url(&custom, "my-bucket", "k"),
            "http://127.0.0.1:9000/my-bucket/k"
        );
        assert_eq!(
            url(&custom, "my-bucket", "/lead"),
            "http://127.0.0.1:9000/my-bucket//lead"
        );
    }

    #[test]
    fn keys_are_uri_encoded_by_s3_rules() {
        let s3 = settings(&keys()).unwrap();
        let path = |key: &str| s3.object_url(&object("bucket", key)).unwrap().path().to_owned();
        assert_eq!(path("a b+c"), "/a%20b%2Bc");
        assert_eq!(path("q?x=1#frag"), "/q%3Fx%3D1%23frag");
        assert_eq!(path("100%/%2e"), "/100%25/%252e");
        assert_eq!(
            path("dir/ünï cødé/€.txt"),
            "/dir/%C3%BCn%C3%AF%20c%C3%B8d%C3%A9/%E2%82%AC.txt"
        );
        assert_eq!(path("keep-_.~/x"), "/keep-_.~/x");
        assert_eq!(
            path("a\\b;c,d:e@f&g$h'i(j)k*l!m"),
            "/a%5Cb%3Bc%2Cd%3Ae%40f%26g%24h%27i%28j%29k%2Al%21m"
        );
        assert_eq!(path("tab\there\nnl"), "/tab%09here%0Anl");
        assert_eq!(path("a//b"), "/a//b");
    }

    #[test]
    fn aws_published_presigned_url_example() {
        // "Example: a presigned URL" in the S3 docs (Authenticating Requests: Using Query
        // Parameters, AWS Signature Version 4): GET examplebucket/test.txt, us-east-1,
        // 2013-05-24T00:00:00Z, 86400 s, signed with the docs' example keys. It pins the whole
        // algorithm: canonical request, string to sign, key derivation, query order. The docs
        // use the global host, so this signs that URL through the same `sign` that
        // `presigned_get` uses.
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let signed = sign(
            rusty_s3::Method::Get,
            url,
            "us-east-1",
            &static_credentials(None),
            example_time(),
            Duration::from_secs(86_400),
        )
        .unwrap();
        assert_eq!(
            signed.as_str(),
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        // A wrong secret must change the signature (else the pin above proves nothing).
        let mut wrong = static_credentials(None);
        wrong.secret_access_key = Secret("wrong".into());
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let other = sign(
            rusty_s3::Method::Get,
            url,
            "us-east-1",
            &wrong,
            example_time(),
            Duration::from_secs(86_400),
        );
        assert!(!other.unwrap().as_str().contains("aeeed9bb"));
    }

    #[test]
    fn presigned_get_matches_an_independent_sigv4_with_an_encoded_key_and_token() {
        // The expected signature comes from a separate SigV4 written in Python (hmac,
        // hashlib, urllib.parse.quote with safe="/~" for the key), not from this code: it
        // checks the key encoding, the regional virtual host and the session token together.
        let s3 = settings(&keys()).unwrap();
        let url = presigned_get(
            &s3,
            &static_credentials(Some(TOKEN)),
            &object("examplebucket", "dir/a b+c.txt"),
            example_time(),
            Duration::from_secs(900),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://examplebucket.s3.us-east-1.amazonaws.com/dir/a%20b%2Bc.txt?\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F\
             20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z\
             &X-Amz-Expires=900&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLESESSIONTOKEN\
             &X-Amz-SignedHeaders=host\
             &X-Amz-Signature=df25ac5d8422b0ca7336b671c828a69c2fa247b338664c69d17beb285d875853"
        );
    }

    #[test]
    fn presigned_put_matches_an_independent_sigv4() {
        // Expected signature from the same independent Python SigV4 (method PUT, payload
        // UNSIGNED-PAYLOAD, only `host` signed): pitcrew-tail's uploads depend on it.
        let s3 = settings(&keys()).unwrap();
        let url = presigned_put(
            &s3,
            &static_credentials(None),
            &object("examplebucket", "logs/2013-05-24/web 1.ndjson.gz"),
            example_time(),
            Duration::from_secs(900),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://examplebucket.s3.us-east-1.amazonaws.com/logs/2013-05-24/web%201.ndjson.gz?\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F\
             20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z\
             &X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=be5d1ce81eb95483c19e49038b3574b11717301a53846465caf7bbdf484702bc"
        );
        // The method is part of the signature: a GET of the same object signs differently.
        let get = presigned_get(
            &s3,
            &static_credentials(None),
            &object("examplebucket", "logs/2013-05-24/web 1.ndjson.gz"),
            example_time(),
            Duration::from_secs(900),
        )
        .unwrap();
        assert_ne!(get.as_str(), url.as_str());
        let err = presigned_put(
            &s3,
            &static_credentials(None),
            &object("b-1", "k"),
            example_time(),
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(err.to_string().contains("1s to 7 days"), "{err}");
    }

    #[test]
    fn put_errors_hint_at_writing_and_codes_are_readable() {
        let body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        let line = describe_put_error(403, body);
        assert!(
            line.starts_with("AccessDenied: Access Denied (HTTP 403 Forbidden; "),
            "{line}"
        );
        assert!(line.contains("s3:PutObject"), "{line}");
        assert!(!line.contains("s3:GetObject"), "{line}");
        assert!(describe_error(403, body).contains("s3:GetObject"));
        let missing =
            b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert!(describe_put_error(404, missing).contains("check the bucket name"));
        assert_eq!(error_code(missing).as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            error_code(b"<Error><Code>ExpiredToken</Code></Error>").as_deref(),
            Some("ExpiredToken")
        );
        assert!(is_expired_credentials("ExpiredToken"));
        assert!(!is_expired_credentials("AccessDenied"));
        assert_eq!(error_code(b"<html>502</html>"), None);
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn presigned_lifetime_is_bounded() {
        let s3 = settings(&keys()).unwrap();
        let sign = |expires| {
            presigned_get(
                &s3,
                &static_credentials(None),
                &object("b-1", "k"),
                example_time(),
                expires,
            )
        };
        assert!(sign(MAX_PRESIGN_LIFETIME).is_ok());
        assert!(sign(Duration::from_secs(1)).is_ok());
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_PRESIGN_LIFETIME + Duration::from_secs(1),
        ] {
            let err = sign(bad).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::Config);
            assert!(err.to_string().contains("1s to 7 days"), "{err}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let mut vars = keys();
        vars.push(("AWS_SESSION_TOKEN", TOKEN));
        let s3 = settings(&vars).unwrap();
        let credentials = static_credentials(Some(TOKEN));
        let url = presigned_get(
            &s3,
            &credentials,
            &object("b-1", "k"),
            example_time(),
            Duration::from_secs(60),
        )
        .unwrap();
        let signature = url
            .query_pairs()
            .find(|(name, _)| name == "X-Amz-Signature")
            .unwrap()
            .1
            .into_owned();
        let shown = format!("{s3:?} {credentials:?} {:?}", s3.clone());
        for secret in [SECRET, TOKEN, &signature, "AKIAIOSFODNN7EXAMPLE"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("****MPLE"), "{shown}");
        let web = settings(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert!(format!("{web:?}").contains("/var/run/secrets/token"));
        // Every error that a set of variables can cause, shown both ways.
        let mut all = vec![
            config_error(&[("AWS_SECRET_ACCESS_KEY", SECRET), ("AWS_SESSION_TOKEN", TOKEN)]),
            config_error(&[("AWS_SECRET_ACCESS_KEY", SECRET), ("AWS_REGION", "BAD")]),
        ];
        let err = presigned_get(
            &s3,
            &credentials,
            &object("b-1", "k"),
            example_time(),
            Duration::ZERO,
        )
        .unwrap_err();
        all.push(format!("{err} {err:?}"));
        for text in all {
            assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
        }
    }

    #[test]
    fn describe_error_reads_code_and_message_and_adds_a_hint() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a.csv</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>"#;
        assert_eq!(
            describe_error(404, body),
            "NoSuchKey: The specified key does not exist. (HTTP 404 Not Found; check the key: \
             keys are case-sensitive and taken literally)"
        );
        for (code, hint) in [
            ("InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID"),
            ("ExpiredToken", "renew AWS_SESSION_TOKEN"),
            ("InvalidToken", "check AWS_SESSION_TOKEN"),
            ("AccessDenied", "s3:GetObject"),
            ("NoSuchBucket", "check the bucket name"),
            ("RequestTimeTooSkewed", "clock"),
        ] {
            let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
            let line = describe_error(403, body.as_bytes());
            assert!(
                line.starts_with(&format!("{code}: m (HTTP 403 Forbidden; ")),
                "{line}"
            );
            assert!(line.contains(hint), "{line}");
        }
        let redirect = b"<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>b</Bucket></Error>";
        let line = describe_error(301, redirect);
        assert!(
            line.contains("set AWS_REGION (S3 names b.s3.eu-west-1.amazonaws.com)"),
            "{line}"
        );
        let unknown = describe_error(500, b"<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>");
        assert_eq!(
            unknown,
            "InternalError: We encountered an internal error. Please try again. (HTTP 500 Internal Server Error)"
        );
    }

    #[test]
    fn describe_error_drops_signing_material_and_key_ids() {
        // The shape of a real SignatureDoesNotMatch answer: it quotes the access key id, the
        // string to sign (with its bytes) and the canonical request, which has the whole
        // presigned query.
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
             <Message>The request signature we calculated does not match the signature you \
             provided. Check your key and signing method.</Message>\
             <AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId>\
             <StringToSign>AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04</StringToSign>\
             <SignatureProvided>aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404</SignatureProvided>\
             <StringToSignBytes>41 57 53 34</StringToSignBytes>\
             <CanonicalRequest>GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&amp;\
             X-Amz-Security-Token={TOKEN}&amp;X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\n\
             host\nUNSIGNED-PAYLOAD</CanonicalRequest>\
             <RequestId>1</RequestId><HostId>2</HostId></Error>"
        );
        let line = describe_error(403, body.as_bytes());
        assert_eq!(
            line,
            "SignatureDoesNotMatch: The request signature we calculated does not match the \
             signature you provided. Check your key and signing method. (HTTP 403 Forbidden; \
             check AWS_SECRET_ACCESS_KEY: it does not belong to AWS_ACCESS_KEY_ID)"
        );
        for secret in ["AKIAIOSFODNN7EXAMPLE", TOKEN, "aeeed9bb", "AWS4-HMAC", "3bfa2928"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        // A store that puts the string to sign into the message gets it withheld.
        let line = describe_error(
            403,
            b"<Error><Code>SignatureDoesNotMatch</Code><Message>expected AWS4-HMAC-SHA256\n2013 X-Amz-Signature=abc</Message></Error>",
        );
        assert!(line.contains("(message withheld"), "{line}");
        assert!(!line.contains("X-Amz-Signature"), "{line}");
    }

    #[test]
    fn describe_error_survives_odd_bodies() {
        assert_eq!(
            describe_error(502, b"<html><body>Bad Gateway</body></html>"),
            "HTTP 502 Bad Gateway (the answer is not an S3 error document)"
        );
        assert_eq!(
            describe_error(403, b""),
            "HTTP 403 Forbidden (the answer is not an S3 error document)"
        );
        assert_eq!(
            describe_error(599, b"\xff\xfe garbage"),
            "HTTP 599 (the answer is not an S3 error document)"
        );
        // Cut off after the code, as when only the first KiB is read.
        assert_eq!(
            describe_error(404, b"<Error><Code>NoSuchBucket</Code><Message>The specified bu"),
            "NoSuchBucket (HTTP 404 Not Found; check the bucket name, and AWS_REGION/AWS_ENDPOINT_URL)"
        );
        // Entities, CDATA, namespaces, and a control character in the message.
        assert_eq!(
            describe_error(
                400,
                b"<s3:Error xmlns:s3=\"x\"><s3:Code>InvalidArgument</s3:Code><s3:Message>a &amp; b &#233; <![CDATA[<c>]]>\x07d</s3:Message></s3:Error>"
            ),
            "InvalidArgument: a & b \u{e9} <c> d (HTTP 400 Bad Request)"
        );
        let long = format!(
            "<Error><Code>X</Code><Message>{}</Message></Error>",
            "m".repeat(5000)
        );
        assert!(describe_error(400, long.as_bytes()).len() < 400);
        // Deeply nested junk ends the parse, it does not recurse or allocate without bound.
        let deep = "<a>".repeat(100_000);
        assert!(describe_error(400, deep.as_bytes()).contains("not an S3 error document"));
    }

    #[test]
    fn xml_fields_reads_sts_answers() {
        let answer =
            br#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let fields = xml_fields(answer);
        let get = |name: &str| {
            fields
                .iter()
                .find(|(path, _)| path == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("Credentials/AccessKeyId"), Some("ASgeIAIOSFODNN7EXAMPLE"));
        assert_eq!(
            get("Credentials/SessionToken"),
            Some("AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE")
        );
        assert_eq!(get("Credentials/Expiration"), Some("2014-10-24T23:00:23Z"));
        assert_eq!(
            "2014-10-24T23:00:23Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second(),
            1_414_191_623
        );
    }
}
