//! `http://` and `https://`: ready when the response status is in the expected set.
//!
//! SKELETON: to be built (status set parsing, body regex, headers, method, TLS with bundled
//! roots, --ca-file, --insecure).

use std::path::PathBuf;
use std::str::FromStr;

use url::Url;

use super::NotReady;

/// Which HTTP status codes count as ready, e.g. `200,204,300-399`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl FromStr for StatusSet {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let low: u16 = low
                .trim()
                .parse()
                .map_err(|_| format!("invalid status {part:?}"))?;
            let high: u16 = high
                .trim()
                .parse()
                .map_err(|_| format!("invalid status {part:?}"))?;
            ranges.push((low, high));
        }
        Ok(StatusSet(ranges))
    }
}

/// How HTTP targets are checked.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Statuses that count as ready.
    pub status: StatusSet,
    /// A regular expression the body must match.
    pub body: Option<regex_lite::Regex>,
    /// Extra request headers, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// Request method; `None` means GET.
    pub method: Option<String>,
    /// A PEM file of extra CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
}

/// The HTTP client and what it checks.
pub struct HttpProbe;

impl HttpProbe {
    /// Builds the client.
    pub fn new(_settings: &HttpSettings) -> Result<HttpProbe, String> {
        Ok(HttpProbe)
    }

    /// One request.
    pub async fn check(&self, _url: &Url) -> Result<(), NotReady> {
        Err(NotReady::new("http probe not built yet"))
    }
}
