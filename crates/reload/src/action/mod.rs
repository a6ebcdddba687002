//! The reload actions, run in order after a change: a signal to the app's process
//! (`--signal` with `--process-name` or `--pid-file`), webhooks (`--webhook`), then a check
//! that the reload took (`--verify-url`).
//!
//! Everything that can be checked is checked once, at start ([`ActionArgs::build`], exit 64):
//! signal names, URLs, statuses, headers, the regex. What depends on the app — which process
//! has the name, what the pid file says, whether the webhook answers — is looked up at each
//! run, since the app may have restarted in between. One HTTP client serves every webhook
//! and the verify URL; it keeps no idle connection between reloads, which are rare (and a
//! connection kept across an app's restart would only fail the next request).
//!
//! Submodules: [`signal`] (names, `/proc` scan, pid files, `kill(2)`), [`webhook`] (URLs
//! with credentials, statuses, headers, retries) and [`verify`].

pub mod signal;
pub mod verify;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::duration;

use crate::error::ReloadError;
use signal::SignalAction;
use verify::VerifyAction;
use webhook::{HttpTarget, Webhook, WebhookSettings};

/// Default `--webhook-method`.
pub const DEFAULT_WEBHOOK_METHOD: &str = "POST";
/// Default `--webhook-status`.
pub const DEFAULT_WEBHOOK_STATUS: &str = "2xx";
/// Default `--webhook-timeout`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--webhook-retries`.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 5;
/// Default `--verify-timeout`.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// The most `--webhook-retries`: beyond this the caller's own retry of the whole reload is
/// the better loop (it gives up when a newer change arrives).
pub const MAX_WEBHOOK_RETRIES: u32 = 100;

/// The env twin of `--webhook`, whose value is a whitespace-separated list.
const WEBHOOK_ENV: &str = "PITCREW_RELOAD_WEBHOOK";

const USER_AGENT: &str = concat!("pitcrew-reload/", env!("CARGO_PKG_VERSION"));

/// The action flags, flattened into `cli::Args`. Env twins are `PITCREW_RELOAD_<FLAG>`.
/// `Debug` hides URL passwords and header values.
#[derive(Clone, clap::Args)]
pub struct ActionArgs {
    /// Signal to send the app at each reload: a name (HUP, SIGHUP, hup, USR1, USR2, TERM, INT,
    /// QUIT, WINCH, …) or its number (1). Needs --process-name or --pid-file, which alone
    /// imply HUP.
    #[arg(
        long,
        value_name = "NAME",
        env = "PITCREW_RELOAD_SIGNAL",
        help_heading = "Actions"
    )]
    pub signal: Option<String>,

    /// Signal the process with this name (its executable's name or argv[0], as `ps` shows it),
    /// looked up at each reload. The pod must share one PID namespace
    /// (`shareProcessNamespace: true`). Of a master and its workers (nginx), the master is
    /// signalled; two unrelated processes with the name are an error (use --pid-file).
    #[arg(
        long,
        value_name = "NAME",
        env = "PITCREW_RELOAD_PROCESS_NAME",
        help_heading = "Actions"
    )]
    pub process_name: Option<String>,

    /// Signal the pid written in this file (its first line), read at each reload: a file the
    /// app writes on a volume both containers mount. Also needs a shared PID namespace.
    #[arg(
        long,
        value_name = "PATH",
        env = "PITCREW_RELOAD_PID_FILE",
        help_heading = "Actions"
    )]
    pub pid_file: Option<PathBuf>,

    /// Call this URL at each reload, after the signal; repeat for several, called in order
    /// (the env twin takes a whitespace-separated list). Basic auth from the URL
    /// (`http://user:password@host/path`); the password is never logged.
    #[arg(long, value_name = "URL", env = WEBHOOK_ENV, action = clap::ArgAction::Append, help_heading = "Actions")]
    pub webhook: Vec<String>,

    /// The webhooks' HTTP method.
    #[arg(long, value_name = "METHOD", env = "PITCREW_RELOAD_WEBHOOK_METHOD", default_value = DEFAULT_WEBHOOK_METHOD, help_heading = "Actions")]
    pub webhook_method: String,

    /// The answers that mean "reloaded": `2xx`, or a list such as `200,204` (classes and
    /// codes). Any other answer is retried.
    #[arg(long, value_name = "STATUSES", env = "PITCREW_RELOAD_WEBHOOK_STATUS", default_value = DEFAULT_WEBHOOK_STATUS, help_heading = "Actions")]
    pub webhook_status: String,

    /// A header for every webhook, `Name: value`; repeat for more (the env twin takes one per
    /// line). Values are secrets: never logged or shown in errors.
    #[arg(long, value_name = "'NAME: VALUE'", env = "PITCREW_RELOAD_WEBHOOK_HEADER", action = clap::ArgAction::Append, value_delimiter = '\n', help_heading = "Actions")]
    pub webhook_header: Vec<String>,

    /// How long one webhook attempt may take (connect, send, answer). At least 100ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_RELOAD_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = at_least_100ms, help_heading = "Actions")]
    pub webhook_timeout: Duration,

    /// Attempts after the first failed one, with exponential backoff and jitter (250ms
    /// doubling to 30s); then the reload has failed and is retried as a whole. 0 to 100.
    #[arg(long, value_name = "N", env = "PITCREW_RELOAD_WEBHOOK_RETRIES", default_value = "5", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_WEBHOOK_RETRIES)), help_heading = "Actions")]
    pub webhook_retries: u32,

    /// After the signal and webhooks, poll this URL (GET) until it answers 2xx: a reload that
    /// cannot be verified within --verify-timeout has failed and is retried.
    #[arg(
        long,
        value_name = "URL",
        env = "PITCREW_RELOAD_VERIFY_URL",
        help_heading = "Actions"
    )]
    pub verify_url: Option<String>,

    /// … and until its body (the first MiB) matches this regex: something only the new config
    /// serves, since a 2xx alone may still come from the old one.
    #[arg(
        long,
        value_name = "REGEX",
        env = "PITCREW_RELOAD_VERIFY_BODY",
        help_heading = "Actions"
    )]
    pub verify_body: Option<String>,

    /// How long --verify-url may take to verify a reload. At least 100ms.
    #[arg(long, value_name = "DURATION", env = "PITCREW_RELOAD_VERIFY_TIMEOUT", default_value = "30s", value_parser = at_least_100ms, help_heading = "Actions")]
    pub verify_timeout: Duration,
}

impl Default for ActionArgs {
    /// No action, and every default as `--help` shows it.
    fn default() -> Self {
        ActionArgs {
            signal: None,
            process_name: None,
            pid_file: None,
            webhook: Vec::new(),
            webhook_method: DEFAULT_WEBHOOK_METHOD.to_owned(),
            webhook_status: DEFAULT_WEBHOOK_STATUS.to_owned(),
            webhook_header: Vec::new(),
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            webhook_retries: DEFAULT_WEBHOOK_RETRIES,
            verify_url: None,
            verify_body: None,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for ActionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = pitcrew_core::redact::url_password;
        let webhooks: Vec<String> = self.webhook.iter().map(|url| redact(url)).collect();
        let header_names: Vec<&str> = self
            .webhook_header
            .iter()
            .map(|header| header.split(':').next().unwrap_or_default().trim())
            .collect();
        f.debug_struct("ActionArgs")
            .field("signal", &self.signal)
            .field("process_name", &self.process_name)
            .field("pid_file", &self.pid_file)
            .field("webhook", &webhooks)
            .field("webhook_method", &self.webhook_method)
            .field("webhook_status", &self.webhook_status)
            .field("webhook_header (names)", &header_names)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_retries", &self.webhook_retries)
            .field("verify_url", &self.verify_url.as_deref().map(redact))
            .field("verify_body", &self.verify_body)
            .field("verify_timeout", &self.verify_timeout)
            .finish()
    }
}

fn at_least_100ms(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, Duration::from_millis(100))
}

impl ActionArgs {
    /// Checks the flags (exit 64 for a URL that does not parse, an unknown signal, …) and
    /// builds the actions. `tls` is the client TLS set-up from the shared `--ca-file` /
    /// `--insecure` flags.
    pub fn build(&self, tls: &pitcrew_core::tls::Tls) -> Result<Actions, ReloadError> {
        let signal = SignalAction::from_flags(
            self.signal.as_deref(),
            self.process_name.as_deref(),
            self.pid_file.as_deref(),
        )?;
        let webhooks = self.webhooks()?;
        let verify = self.verify()?;
        let needs_client = !webhooks.is_empty() || verify.is_some();
        let client = if needs_client {
            let any_https =
                webhooks.iter().any(Webhook::is_https) || verify.as_ref().is_some_and(VerifyAction::is_https);
            Some(http_client(tls, any_https, self.webhook_timeout)?)
        } else {
            None
        };
        Ok(Actions {
            signal,
            webhooks,
            verify,
            client,
        })
    }

    /// The `--webhook` values, checked; the env twin's list is split on whitespace (a flag is
    /// one URL, whose credentials may hold a space).
    fn webhooks(&self) -> Result<Vec<Webhook>, ReloadError> {
        let from_env = match (self.webhook.as_slice(), std::env::var(WEBHOOK_ENV)) {
            ([one], Ok(value)) => *one == value,
            _ => false,
        };
        let texts: Vec<&str> = if from_env {
            self.webhook
                .iter()
                .flat_map(|text| text.split_whitespace())
                .collect()
        } else {
            self.webhook.iter().map(String::as_str).collect()
        };
        let headers = webhook::parse_headers(&self.webhook_header)?;
        if texts.is_empty() {
            if !headers.is_empty() {
                return Err(ReloadError::Usage(
                    "--webhook-header is sent with --webhook requests, and no --webhook is given".to_owned(),
                ));
            }
            return Ok(Vec::new());
        }
        let settings = Arc::new(WebhookSettings {
            method: webhook::parse_method(&self.webhook_method)?,
            accepted: webhook::StatusSet::parse(&self.webhook_status)?,
            headers,
            timeout: self.webhook_timeout,
            retries: self.webhook_retries.min(MAX_WEBHOOK_RETRIES),
        });
        texts
            .into_iter()
            .map(|text| Webhook::new(HttpTarget::parse("--webhook", text)?, Arc::clone(&settings)))
            .collect()
    }

    /// `--verify-url` and `--verify-body`, checked.
    fn verify(&self) -> Result<Option<VerifyAction>, ReloadError> {
        let Some(url) = &self.verify_url else {
            if self.verify_body.is_some() {
                return Err(ReloadError::Usage(
                    "--verify-body is matched against --verify-url's answer, and no --verify-url is given"
                        .to_owned(),
                ));
            }
            return Ok(None);
        };
        let target = HttpTarget::parse("--verify-url", url)?;
        let body = match &self.verify_body {
            None => None,
            Some(pattern) if pattern.is_empty() => {
                return Err(ReloadError::Usage(
                    "--verify-body is empty: it would match any body; leave it out to check the status only"
                        .to_owned(),
                ));
            }
            Some(pattern) => Some(regex_lite::Regex::new(pattern).map_err(|err| {
                ReloadError::Usage(format!(
                    "invalid --verify-body {:?}: {}",
                    pitcrew_core::text::printable(pattern.as_bytes(), 100),
                    pitcrew_core::text::printable(err.to_string().as_bytes(), 300)
                ))
            })?),
        };
        Ok(Some(VerifyAction::new(target, body, self.verify_timeout)))
    }
}

/// The one client for webhooks and the verify URL: TLS from pitcrew-core (verified with the
/// shared roots unless `--insecure`), no redirects, no idle connections kept.
fn http_client(
    tls: &pitcrew_core::tls::Tls,
    any_https: bool,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ReloadError> {
    // `https()` warns once when the CA bundle is missing; without an https URL that warning
    // would be noise, and the configuration is never used.
    let config = if any_https {
        tls.https()
    } else {
        tls.client_config(pitcrew_core::tls::Verify::Nothing, None)
    };
    pitcrew_core::tls::log_proxies("webhooks and --verify-url requests");
    reqwest::Client::builder()
        // reqwest recognises the config by its type, so it takes the value, not the Arc.
        .use_preconfigured_tls((*config).clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(0)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|err| {
            ReloadError::Runtime(format!(
                "cannot set up the HTTP client: {}",
                webhook::describe_request_error(&err, connect_timeout, "--webhook-timeout")
            ))
        })
}

/// The configured actions, ready to run.
#[derive(Debug)]
pub struct Actions {
    signal: Option<SignalAction>,
    webhooks: Vec<Webhook>,
    verify: Option<VerifyAction>,
    /// Present when there is a webhook or a verify URL.
    client: Option<reqwest::Client>,
}

/// Why one run of the actions failed: which action, and a message without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action}: {message}")]
pub struct ActionError {
    /// The action that failed, as the logs name it (`signal HUP to nginx (pid 12)`,
    /// `webhook POST http://127.0.0.1:9090/-/reload`, `verify http://…`).
    pub action: String,
    /// What went wrong and, where there is one, the fix.
    pub message: String,
}

impl Actions {
    /// No action configured (only rendering, or only watching).
    pub fn is_empty(&self) -> bool {
        self.signal.is_none() && self.webhooks.is_empty() && self.verify.is_none()
    }

    /// One line per action for the start-up log, credentials masked.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(signal) = &self.signal {
            lines.push(signal.describe());
        }
        lines.extend(self.webhooks.iter().map(Webhook::describe));
        if let Some(verify) = &self.verify {
            lines.push(verify.describe());
        }
        lines
    }

    /// Runs every action once, in order (signal, webhooks, verify), stopping at the first
    /// failure. A webhook's own retries happen inside; the caller retries the whole run
    /// with backoff when this fails. `hash` is the new content hash (hex), for the logs.
    pub async fn run(&self, hash: &str) -> Result<(), ActionError> {
        self.run_and_report(hash).await.map(drop)
    }

    /// [`Actions::run`], returning what each action did, for the "reload ok" line:
    /// `signal HUP to nginx (pid 7)`, `webhook POST http://127.0.0.1:9090/-/reload → 200`,
    /// `verify http://127.0.0.1:8080/healthz → 200 after 40ms`.
    pub async fn run_and_report(&self, hash: &str) -> Result<Vec<String>, ActionError> {
        tracing::debug!("running the reload actions for sha256 {hash}");
        let mut done = Vec::new();
        if let Some(signal) = &self.signal {
            done.push(signal.run()?);
        }
        if let Some(client) = &self.client {
            for webhook in &self.webhooks {
                done.push(webhook.run(client).await?);
            }
            if let Some(verify) = &self.verify {
                done.push(verify.run(client).await?);
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(name = "pitcrew-reload")]
    struct Test {
        #[command(flatten)]
        actions: ActionArgs,
    }

    fn parse(args: &[&str]) -> Result<ActionArgs, clap::Error> {
        pitcrew_core::cli::try_parse_from::<Test, _, _>(
            std::iter::once("pitcrew-reload").chain(args.iter().copied()),
        )
        .map(|test| test.actions)
    }

    fn tls() -> pitcrew_core::tls::Tls {
        pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), []).unwrap()
    }

    fn build(args: &[&str]) -> Result<Actions, ReloadError> {
        parse(args).expect("flags parse").build(&tls())
    }

    fn usage(args: &[&str]) -> String {
        match build(args) {
            Err(ReloadError::Usage(message)) => message,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_help() {
        assert_eq!(
            format!("{:?}", parse(&[]).unwrap()),
            format!("{:?}", ActionArgs::default())
        );
        let help = pitcrew_core::cli::try_parse_from::<Test, _, _>(["pitcrew-reload", "--help"])
            .unwrap_err()
            .render()
            .to_string();
        // Wrapping may break a line anywhere: compare with single spaces.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for twin in [
            "PITCREW_RELOAD_SIGNAL",
            "PITCREW_RELOAD_PROCESS_NAME",
            "PITCREW_RELOAD_PID_FILE",
            "PITCREW_RELOAD_WEBHOOK",
            "PITCREW_RELOAD_WEBHOOK_METHOD",
            "PITCREW_RELOAD_WEBHOOK_STATUS",
            "PITCREW_RELOAD_WEBHOOK_HEADER",
            "PITCREW_RELOAD_WEBHOOK_TIMEOUT",
            "PITCREW_RELOAD_WEBHOOK_RETRIES",
            "PITCREW_RELOAD_VERIFY_URL",
            "PITCREW_RELOAD_VERIFY_BODY",
            "PITCREW_RELOAD_VERIFY_TIMEOUT",
        ] {
            assert!(
                help.contains(&format!("[env: {twin}=")),
                "{twin} missing:\n{help}"
            );
        }
        assert!(help.contains("Actions:"), "{help}");
    }

    #[test]
    fn no_flags_no_actions() {
        let actions = build(&[]).unwrap();
        assert!(actions.is_empty());
        assert!(actions.describe().is_empty());
        assert!(actions.client.is_none());
    }

    #[test]
    fn describe_lists_every_action_in_order_without_secrets() {
        let actions = build(&[
            "--webhook",
            "http://admin:p@ss&w:rd%@127.0.0.1:9090/-/reload?token=q-s3cr3t",
            "--process-name",
            "nginx",
            "--webhook",
            "https://alertmanager:9093/-/reload",
            "--webhook-header",
            "X-Token: h-s3cr3t",
            "--webhook-status",
            "200,204",
            "--verify-url",
            "http://u:v-s3cr3t@127.0.0.1:8080/version",
            "--verify-body",
            "v2",
        ])
        .unwrap();
        assert!(!actions.is_empty());
        let lines = actions.describe();
        assert_eq!(
            lines,
            [
                "signal HUP to the process named nginx (looked up in /proc at each reload)",
                "webhook POST http://127.0.0.1:9090/-/reload?… (accepts 200,204; timeout 10s, 5 retries, 1 header, basic auth from the URL)",
                "webhook POST https://alertmanager:9093/-/reload (accepts 200,204; timeout 10s, 5 retries, 1 header)",
                "verify http://127.0.0.1:8080/version (until it answers 2xx and the body matches /v2/, within 30s)",
            ]
        );
        let debug = format!("{actions:?}");
        for secret in ["p@ss", "w:rd", "h-s3cr3t", "v-s3cr3t"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        let debug = format!(
            "{:?}",
            parse(&[
                "--webhook",
                "http://admin:p@ss&w:rd%@h/x",
                "--webhook-header",
                "X-Token: h-s3cr3t",
                "--verify-url",
                "http://u:v-s3cr3t@h/y",
            ])
            .unwrap()
        );
        assert!(
            debug.contains("X-Token") && debug.contains("admin:***@h/x"),
            "{debug}"
        );
        for secret in ["p@ss", "w:rd", "s3cr3t"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for (args, expected) in [
            (
                &["--signal", "HUPP", "--pid-file", "/run/x.pid"][..],
                "unknown --signal \"HUPP\"",
            ),
            (&["--signal", "HUP"], "needs the process"),
            (&["--webhook", "not a url"], "invalid --webhook \"not a url\""),
            (&["--webhook", "gopher://h/x"], "not an http or https URL"),
            (
                &["--webhook", "http://h/x", "--webhook-status", "ok"],
                "invalid --webhook-status",
            ),
            (
                &["--webhook", "http://h/x", "--webhook-method", "PO ST"],
                "invalid --webhook-method",
            ),
            (
                &["--webhook", "http://h/x", "--webhook-header", "nocolon"],
                "no `:`",
            ),
            (&["--webhook-header", "X-A: b"], "no --webhook is given"),
            (&["--verify-body", "ok"], "no --verify-url is given"),
            (
                &["--verify-url", "http://h/x", "--verify-body", "("],
                "invalid --verify-body \"(\"",
            ),
            (
                &["--verify-url", "http://h/x", "--verify-body", ""],
                "--verify-body is empty",
            ),
            (&["--verify-url", "h:80/x"], "invalid --verify-url"),
        ] {
            let message = usage(args);
            assert!(message.contains(expected), "{args:?}: {message}");
        }
        // clap checks these (exit 64 through the shared parser too).
        for args in [
            &["--webhook-timeout", "0"][..],
            &["--webhook-timeout", "10"],
            &["--webhook-retries", "101"],
            &["--webhook-retries", "-1"],
            &["--webhook-retries", "99999999999999999999"],
            &["--verify-timeout", "1ns"],
            &["--verify-timeout", "2y"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }
}
