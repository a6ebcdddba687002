//! Command-line flags of `pitcrew-reload` → [`crate::Config`], and the program itself
//! ([`main_with_args`]).
//!
//! Errors name the bad value and what was expected: clap's value errors and
//! [`ReloadError::Usage`] exit 64, values that parse but cannot be used together
//! [`ReloadError::Config`] 78. Every flag has an env twin `PITCREW_RELOAD_<FLAG>`; the
//! repeatable path flags take a comma-separated list there (`PITCREW_RELOAD_WATCH=/a,/b`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser};
use pitcrew_core::duration;
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::TlsArgs;

use crate::action::ActionArgs;
use crate::render::RenderPair;
use crate::{Config, Outcome, ReloadError};

/// The default `--admin-addr`: every address, port 9533, configmap-reload's metrics port, so
/// probes and scrape configs written for it keep working.
pub const DEFAULT_ADMIN_ADDR: &str = ":9533";

const EXAMPLES: &str = r#"Examples:
  pitcrew-reload --watch /etc/nginx/conf.d --signal HUP --process-name nginx
  pitcrew-reload --watch /etc/prometheus --webhook http://127.0.0.1:9090/-/reload
  pitcrew-reload --watch /etc/app --initial --state-file /run/app/.reload-state \
      --render-template /etc/app/app.yaml.tmpl --render-output /run/app/app.yaml \
      --webhook http://127.0.0.1:8080/-/reload --verify-url http://127.0.0.1:8080/healthz

In a pod spec, nginx reloaded by SIGHUP when its ConfigMap changes (a native sidecar; the pod
shares one process namespace so that the sidecar sees nginx, and runs as root with no
capabilities at all, because a signal needs the target's user and nginx's master process is root's):
  spec:
    shareProcessNamespace: true
    initContainers:
      - name: reload
        image: pitcrew/reload:0.1.0
        restartPolicy: Always
        args: ["--watch", "/etc/nginx/conf.d", "--signal", "HUP", "--process-name", "nginx"]
        securityContext:
          runAsUser: 0
          capabilities: {drop: ["ALL"]}
        livenessProbe:
          httpGet: {path: /healthz, port: 9533}
        volumeMounts:
          - {name: conf, mountPath: /etc/nginx/conf.d, readOnly: true}
    containers:
      - name: nginx
        image: nginx:1.27
        volumeMounts:
          - {name: conf, mountPath: /etc/nginx/conf.d, readOnly: true}
    volumes:
      - name: conf
        configMap: {name: nginx-conf}

Prometheus (started with --web.enable-lifecycle) reloaded through its webhook instead
(replaces configmap-reload and prometheus-config-reloader):
      - name: reload
        image: pitcrew/reload:0.1.0
        restartPolicy: Always
        args: ["--watch", "/etc/prometheus", "--webhook", "http://127.0.0.1:9090/-/reload"]
        volumeMounts:
          - {name: prometheus-config, mountPath: /etc/prometheus, readOnly: true}
"#;

/// Watch mounted ConfigMaps and Secrets and reload the app once for every real change.
///
/// A change is decided by content (SHA-256 over the watched files, following the ConfigMap
/// symlinks): the kubelet's `..data` swap to new content reloads, a touch or a swap to
/// identical content does not. A burst of changes is one reload (--debounce). Before the
/// actions, templates can be rendered (--render-template). The actions run in order: a signal
/// to the app's process, webhooks, then a check that the new config took (--verify-url). A
/// failed reload is retried with backoff (1s to 1m) until it works or a newer change
/// replaces it. /healthz fails when the file watcher has died. SIGTERM exits at once with 0.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-reload", bin_name = "pitcrew-reload", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// A file or directory to watch; repeat for more (the env twin takes a comma-separated
    /// list). A path that does not exist yet is waited for.
    #[arg(long, value_name = "PATH", env = "PITCREW_RELOAD_WATCH", action = ArgAction::Append, required = true)]
    pub watch: Vec<PathBuf>,

    /// Directories' subdirectories count too (default: a directory's own entries only, as a
    /// ConfigMap's keys are).
    #[arg(long, env = "PITCREW_RELOAD_RECURSIVE")]
    pub recursive: bool,

    /// A burst of changes within this time is one reload (0: none; every event re-hashes).
    #[arg(long, value_name = "DURATION", env = "PITCREW_RELOAD_DEBOUNCE", default_value = "300ms", value_parser = duration::parse)]
    pub debounce: Duration,

    /// How often everything is hashed again whatever the events said: catches a change the
    /// watcher missed (and then re-creates the watcher). At least 1s.
    #[arg(long, value_name = "DURATION", env = "PITCREW_RELOAD_RESYNC", default_value = "1m", value_parser = at_least_second)]
    pub resync: Duration,

    /// A template (`${VAR}`, `${VAR:-default}`, as pitcrew-render) to render with this
    /// container's environment before the actions; repeat for more (the env twin takes a
    /// comma-separated list). Paired by position with --render-output.
    #[arg(long, value_name = "PATH", env = "PITCREW_RELOAD_RENDER_TEMPLATE", action = ArgAction::Append)]
    pub render_template: Vec<PathBuf>,

    /// Where the --render-template at the same position is written (atomically; an unchanged
    /// output is left alone).
    #[arg(long, value_name = "PATH", env = "PITCREW_RELOAD_RENDER_OUTPUT", action = ArgAction::Append)]
    pub render_output: Vec<PathBuf>,

    /// The reload actions.
    #[command(flatten)]
    pub actions: ActionArgs,

    /// Run the actions once at start (skipped when --state-file says this content was applied).
    #[arg(long, env = "PITCREW_RELOAD_INITIAL")]
    pub initial: bool,

    /// Keep the hash of the content last applied here (put it in an emptyDir): a restarted
    /// sidecar does not reload again for nothing, and does reload for a change made while it
    /// was down. Written atomically; its directory must be writable (exit 74). A corrupt file
    /// is ignored with a warning.
    #[arg(long, value_name = "PATH", env = "PITCREW_RELOAD_STATE_FILE")]
    pub state_file: Option<PathBuf>,

    /// Serve /healthz, /readyz and /metrics here: `:PORT`, `IP:PORT`, or `off`. /healthz fails
    /// when the file watcher has died; /readyz passes once the content is hashed (with
    /// --initial: once the first reload worked).
    #[arg(long, value_name = "ADDR", env = "PITCREW_RELOAD_ADMIN_ADDR", default_value = DEFAULT_ADMIN_ADDR, value_parser = parse_admin_addr)]
    pub admin_addr: AdminAddr,

    /// `--ca-file` and `--insecure`, for https webhooks and --verify-url.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `--admin-addr`: where to serve, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAddr(pub Option<SocketAddr>);

fn after_help() -> String {
    let mut text = format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, switches \
         take true/false, 1/0, yes/no, on/off, and the repeatable paths (--watch, --render-template, \
         --render-output) a comma-separated list.\n\nExit codes:\n"
    );
    for (code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "  {:>3}  {meaning}", code.code());
    }
    text
}

/// The exit codes this tool uses, with what each means here.
pub const EXIT_CODES: &[(ExitCode, &str)] = &[
    (
        ExitCode::Ok,
        "stopped by SIGTERM or SIGINT (a sidecar stopped on purpose)",
    ),
    (
        ExitCode::Failure,
        "the runtime or the file watcher could not start, or --admin-addr cannot be bound",
    ),
    (
        ExitCode::Usage,
        "bad command line: no --watch, a bad URL, signal, regex or duration, unpaired render flags",
    ),
    (
        ExitCode::NoInput,
        "a template (or --ca-file) is missing or unreadable at start",
    ),
    (
        ExitCode::Io,
        "the --state-file directory or a --render-output cannot be written",
    ),
    (
        ExitCode::Config,
        "values that cannot be used together (an output over its template, a template with errors)",
    ),
];

fn at_least_second(value: &str) -> Result<Duration, String> {
    duration::parse_at_least(value, Duration::from_secs(1))
}

/// `:9533` (every address), `127.0.0.1:9533`, `[::]:9533`, or `off`.
fn parse_admin_addr(value: &str) -> Result<AdminAddr, String> {
    let text = value.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(AdminAddr(None));
    }
    pitcrew_core::admin::parse_listen_address(text)
        .map(|address| AdminAddr(Some(address)))
        .ok_or_else(|| {
            format!(
                "invalid --admin-addr {value:?}: expected IP:PORT, :PORT or off, e.g. :9533 or 127.0.0.1:9533"
            )
        })
}

impl Args {
    /// Checks the flags and builds the configuration (actions included, with the TLS set-up
    /// from --ca-file/--insecure); env twins as this process has them.
    pub fn config(&self) -> Result<Config, ReloadError> {
        self.config_with(&|name| std::env::var(name).ok())
    }

    /// [`Args::config`] with the environment lookup given (to tell a flag's value from its
    /// env twin's list), for tests.
    pub fn config_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ReloadError> {
        let (watch, renders) = self.paths(env)?;
        let tls = pitcrew_core::tls::Tls::new(&self.tls.settings(), []).map_err(ReloadError::Tls)?;
        let actions = self.actions.build(&tls)?;
        let mut config = Config::new(watch, actions);
        config.recursive = self.recursive;
        config.debounce = self.debounce;
        config.resync = self.resync;
        config.renders = renders;
        config.initial = self.initial;
        config.state_file.clone_from(&self.state_file);
        Ok(config)
    }

    /// The checks on paths alone (no actions built): `--watch` and the render pairs.
    pub fn paths(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Vec<PathBuf>, Vec<RenderPair>), ReloadError> {
        let usage = ReloadError::Usage;
        let watch = pitcrew_core::cli::env_paths(&self.watch, env("PITCREW_RELOAD_WATCH"));
        if watch.is_empty() {
            return Err(usage(
                "no --watch: give at least one file or directory to watch".to_owned(),
            ));
        }
        check_paths("--watch", &watch)?;
        for (index, path) in watch.iter().enumerate() {
            if watch[..index].contains(path) {
                return Err(usage(format!("--watch {} is given twice", path.display())));
            }
        }
        let templates =
            pitcrew_core::cli::env_paths(&self.render_template, env("PITCREW_RELOAD_RENDER_TEMPLATE"));
        let outputs = pitcrew_core::cli::env_paths(&self.render_output, env("PITCREW_RELOAD_RENDER_OUTPUT"));
        check_paths("--render-template", &templates)?;
        check_paths("--render-output", &outputs)?;
        if templates.len() != outputs.len() {
            return Err(usage(format!(
                "{} --render-template and {} --render-output: they go in pairs, matched by position",
                templates.len(),
                outputs.len()
            )));
        }
        let renders: Vec<RenderPair> = templates
            .into_iter()
            .zip(outputs)
            .map(|(template, output)| RenderPair { template, output })
            .collect();
        let config = ReloadError::Config;
        for (index, pair) in renders.iter().enumerate() {
            if pair.output == pair.template {
                return Err(config(format!(
                    "--render-output {} is its own --render-template: the template would be overwritten",
                    pair.output.display()
                )));
            }
            if let Some(other) = renders[..index].iter().find(|other| other.output == pair.output) {
                return Err(config(format!(
                    "--render-output {} is given for two templates ({} and {}): one would overwrite the other",
                    pair.output.display(),
                    other.template.display(),
                    pair.template.display()
                )));
            }
            if renders.iter().any(|other| other.template == pair.output) {
                return Err(config(format!(
                    "--render-output {} is also a --render-template: it would be overwritten",
                    pair.output.display()
                )));
            }
        }
        if let Some(state) = &self.state_file {
            check_paths("--state-file", std::slice::from_ref(state))?;
            if watch.contains(state)
                || renders
                    .iter()
                    .any(|pair| &pair.output == state || &pair.template == state)
            {
                return Err(config(format!(
                    "--state-file {} is also a watched path or a render file: give it a place of its own",
                    state.display()
                )));
            }
        }
        Ok((watch, renders))
    }
}

fn check_paths(flag: &str, paths: &[PathBuf]) -> Result<(), ReloadError> {
    if let Some(index) = paths.iter().position(|path| path.as_os_str().is_empty()) {
        return Err(ReloadError::Usage(format!(
            "{flag} number {} is empty: expected a path",
            index + 1
        )));
    }
    Ok(())
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-reload` program: parses `args` (the program name first), sets up logging,
/// runs until SIGTERM/SIGINT, and returns the exit code (the table in --help), a start-up
/// failure's reason written to the termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them (`pitcrew reload …`); clap's messages say `pitcrew-reload` either way.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-reload: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match reload(&args) {
        Ok(Outcome::Stopped(signal)) => {
            tracing::info!("stopped by {}", pitcrew_core::shutdown::signal_name(signal));
            ExitCode::Ok.into()
        }
        Err(err) => {
            let message = pitcrew_core::redact::url_passwords_in(&err.to_string());
            tracing::error!(exit_code = err.exit_code().code(), "{message}");
            write_termination_log(&args.termination_log, &message);
            err.exit_code().into()
        }
    }
}

/// Builds the configuration, binds the admin server and runs, on a runtime that ends without
/// waiting for lookups still hanging (see `pitcrew_core::runtime`), with SIGTERM/SIGINT
/// handlers installed first.
fn reload(args: &Args) -> Result<Outcome, ReloadError> {
    let config = args.config()?;
    let admin_addr = args.admin_addr.0;
    pitcrew_core::runtime::block_on(|shutdown| async move {
        let admin = match admin_addr {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(|err| {
                ReloadError::Admin(format!(
                    "--admin-addr {address}: cannot listen: {} (another container of the pod may use the port: give another, or off)",
                    pitcrew_core::io_error::describe(&err)
                ))
            })?),
            None => None,
        };
        crate::run(config, admin, shutdown).await
    })
    .map_err(|err| ReloadError::Runtime(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        pitcrew_core::cli::try_parse_from::<Args, _, _>(
            std::iter::once("pitcrew-reload").chain(args.iter().copied()),
        )
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn paths_error(args: &[&str]) -> ReloadError {
        let parsed = parse(args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
        parsed.paths(&no_env).unwrap_err()
    }

    fn clap_error(args: &[&str]) -> String {
        match parse(args) {
            Ok(parsed) => panic!("{args:?} parsed: {parsed:?}"),
            Err(err) => {
                assert!(err.use_stderr(), "{err}");
                err.render().to_string()
            }
        }
    }

    fn clap_error_or_help(args: &[&str]) -> String {
        parse(args).unwrap_err().render().to_string()
    }

    #[test]
    fn defaults() {
        let args = parse(&["--watch", "/etc/config"]).unwrap();
        assert_eq!(args.debounce, Duration::from_millis(300));
        assert_eq!(args.resync, Duration::from_secs(60));
        assert_eq!(args.admin_addr, AdminAddr(Some("0.0.0.0:9533".parse().unwrap())));
        assert!(!args.initial && !args.recursive);
        let (watch, renders) = args.paths(&no_env).unwrap();
        assert_eq!(watch, [PathBuf::from("/etc/config")]);
        assert!(renders.is_empty());
    }

    #[test]
    fn durations_zero_huge_and_garbage() {
        let debounce = |value: &str| parse(&["--watch", "/x", "--debounce", value]);
        assert_eq!(debounce("0").unwrap().debounce, Duration::ZERO);
        assert_eq!(debounce("1y").unwrap().debounce, duration::MAX);
        for bad in ["2y", "300000000000y", "10", "-1s", "soon", ""] {
            let text = clap_error(&["--watch", "/x", &format!("--debounce={bad}")]);
            assert!(text.contains(&format!("{bad:?}")), "{bad:?}: {text}");
        }
        let resync = |value: &str| parse(&["--watch", "/x", "--resync", value]);
        assert_eq!(resync("1s").unwrap().resync, Duration::from_secs(1));
        assert_eq!(resync("1y").unwrap().resync, duration::MAX);
        for (bad, wanted) in [
            ("0", "at least 1s"),
            ("999ms", "at least 1s"),
            ("5y", "1y"),
            ("1", "\"1\""),
        ] {
            let text = clap_error(&["--watch", "/x", &format!("--resync={bad}")]);
            assert!(text.contains(wanted), "{bad:?}: {text}");
        }
    }

    #[test]
    fn admin_addresses() {
        for (text, wanted) in [
            (":9090", Some("0.0.0.0:9090")),
            ("127.0.0.1:0", Some("127.0.0.1:0")),
            ("[::1]:9533", Some("[::1]:9533")),
            ("off", None),
            ("OFF", None),
        ] {
            assert_eq!(
                parse_admin_addr(text).unwrap(),
                AdminAddr(wanted.map(|addr| addr.parse().unwrap())),
                "{text}"
            );
        }
        for bad in ["9533", "localhost:9533", ":", ":65536", "", "no", "0.0.0.0"] {
            let err = parse_admin_addr(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")) && err.contains("off"), "{err}");
        }
    }

    #[test]
    fn watch_is_required_and_checked() {
        let text = clap_error(&[]);
        assert!(text.contains("--watch <PATH>"), "{text}");
        let text = clap_error(&["--watch", "/a", "--watch", ""]);
        assert!(
            text.contains("a value is required for '--watch <PATH>'"),
            "{text}"
        );
        // Through the env twin, empty entries of the list are skipped; an all-empty list is
        // no --watch at all.
        let env = |name: &str| (name == "PITCREW_RELOAD_WATCH").then(|| " , ".to_owned());
        let err = parse(&["--watch", " , "]).unwrap().paths(&env).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(err.to_string().contains("no --watch"), "{err}");
        let err = paths_error(&["--watch", "/a", "--watch", "/a"]);
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(err.to_string().contains("/a is given twice"), "{err}");
    }

    #[test]
    fn render_pairs_are_matched_by_position() {
        let args = parse(&[
            "--watch",
            "/c",
            "--render-template",
            "/c/a.tmpl",
            "--render-output",
            "/out/a",
            "--render-template",
            "/c/b.tmpl",
            "--render-output",
            "/out/b",
        ])
        .unwrap();
        let (_, renders) = args.paths(&no_env).unwrap();
        assert_eq!(
            renders,
            [
                RenderPair {
                    template: "/c/a.tmpl".into(),
                    output: "/out/a".into()
                },
                RenderPair {
                    template: "/c/b.tmpl".into(),
                    output: "/out/b".into()
                },
            ]
        );
        let err = paths_error(&["--watch", "/c", "--render-template", "/c/a.tmpl"]);
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(
            err.to_string()
                .contains("1 --render-template and 0 --render-output"),
            "{err}"
        );
        let err = paths_error(&["--watch", "/c", "--render-output", "/o", "--render-output", "/p"]);
        assert!(
            err.to_string()
                .contains("0 --render-template and 2 --render-output"),
            "{err}"
        );
    }

    #[test]
    fn render_and_state_paths_that_collide_are_config_errors() {
        for (args, wanted) in [
            (
                &["--render-template", "/c/t", "--render-output", "/c/t"][..],
                "is its own --render-template",
            ),
            (
                &[
                    "--render-template",
                    "/c/a",
                    "--render-output",
                    "/o",
                    "--render-template",
                    "/c/b",
                    "--render-output",
                    "/o",
                ][..],
                "is given for two templates",
            ),
            (
                &[
                    "--render-template",
                    "/c/a",
                    "--render-output",
                    "/c/b",
                    "--render-template",
                    "/c/b",
                    "--render-output",
                    "/o",
                ][..],
                "is also a --render-template",
            ),
            (
                &["--state-file", "/c"][..],
                "--state-file /c is also a watched path",
            ),
        ] {
            let mut all = vec!["--watch", "/c"];
            all.extend_from_slice(args);
            let err = paths_error(&all);
            assert_eq!(err.exit_code(), ExitCode::Config, "{err}");
            assert!(err.to_string().contains(wanted), "{args:?}: {err}");
        }
    }

    #[test]
    fn env_twins_take_comma_separated_lists_and_flags_do_not() {
        let env = |name: &str| (name == "PITCREW_RELOAD_WATCH").then(|| "/a, /b,,/c".to_owned());
        let args = parse(&["--watch", "/a, /b,,/c"]).unwrap();
        assert_eq!(
            args.paths(&env).unwrap().0,
            [PathBuf::from("/a"), PathBuf::from("/b"), PathBuf::from("/c")]
        );
        // A path with a comma given as a flag stays one path.
        let args = parse(&["--watch", "/etc/a,b"]).unwrap();
        assert_eq!(args.paths(&no_env).unwrap().0, [PathBuf::from("/etc/a,b")]);
    }

    #[test]
    fn help_has_a_pod_spec_and_the_exit_codes() {
        // Through the real parser: it fills in the shared flags' env twins.
        let help = clap_error_or_help(&["--help"]);
        for wanted in [
            "image: pitcrew/reload:0.1.0",
            "shareProcessNamespace: true",
            "\"--signal\", \"HUP\"",
            "--webhook\", \"http://127.0.0.1:9090/-/reload",
            "restartPolicy: Always",
            "Exit codes:",
            "   64  bad command line",
            "   74  the --state-file directory",
            "[env: PITCREW_RELOAD_WATCH=]",
            "[env: PITCREW_RELOAD_CA_FILE=]",
            "[default: 300ms]",
        ] {
            assert!(help.contains(wanted), "{wanted:?} not in:\n{help}");
        }
        for (code, _) in EXIT_CODES {
            assert!(help.contains(&format!("  {:>3}  ", code.code())), "{code}");
        }
    }
}
