//! `pitcrew-core`: the pieces every pitcrew tool shares.
//!
//! Always available: [`exit`] (the shared exit-code table and the Kubernetes termination log),
//! [`duration`] (human durations such as `500ms`, `30s`, `5m`, capped) and [`redact`] (hiding
//! passwords in URL-like text), [`io_error`] (I/O errors as short phrases), [`calendar`] (dates from Unix time), [`text`] (server text for a log line, exact sizes,
//! hex, JSON pointers). Behind cargo features, so a small tool links only what it uses:
//!
//! | feature    | module       | what it gives                                          |
//! |------------|--------------|--------------------------------------------------------|
//! | `cli`      | [`cli`]      | clap parsing with Kubernetes-friendly env twins, usage errors to the termination log |
//! | `shutdown` | [`shutdown`], [`runtime`] | a future that completes on SIGTERM or SIGINT (PID 1 safe); the runtime `main` runs in |
//! | `multi-thread` | [`runtime`] | `block_on_with_workers`: the same runtime on several threads (the proxy's `--workers`) |
//! | `logging`  | [`logging`]  | tracing to stderr, `--log-format text\|json`, `--log-level` |
//! | `backoff`  | [`backoff`]  | exponential backoff with jitter and a fast warm-up      |
//! | `admin`    | [`admin`]    | `/healthz`, `/readyz`, `/metrics` on hyper (OpenMetrics or Prometheus text, by Accept) |
//! | `stop`     | [`stop`]     | SIGTERM/SIGINT as a flag for synchronous tools (no runtime) |
//! | `files`    | [`files`]    | atomic, idempotent writes with mode and owner; ConfigMap-style tree listing |
//! | `tls`      | [`tls`]      | rustls client set-up: CA bundle, `--ca-file`, `--insecure`, proxies, TLS error lines |
//! | `s3`       | [`s3`]       | AWS environment and web identity, presigned SigV4 GET/PUT, S3 errors without secrets |
//! | `der`      | [`der`]      | an X.509 certificate's dates, common names and subjectAltNames (what webpki does not expose) |
//! | `yaml`     | [`yaml`]     | YAML into serde_json values: bounded, duplicate keys found, positions; `parse_one` for status files |

pub mod calendar;
#[cfg(feature = "der")]
pub mod der;
pub mod duration;
pub mod exit;
pub mod io_error;
pub mod redact;
pub mod text;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "backoff")]
pub mod backoff;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "shutdown")]
pub mod runtime;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "shutdown")]
pub mod shutdown;
#[cfg(feature = "stop")]
pub mod stop;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "yaml")]
pub mod yaml;
