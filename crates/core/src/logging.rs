//! Logging for every tool: one line per event on stderr, as text or JSON.
//!
//! Tools log through `tracing`; this module owns the subscriber set-up and the two flags
//! every tool shares (`--log-format`, `--log-level`), flattened into each tool's clap parser.

use clap::{Args, ValueEnum};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: `2026-01-02T03:04:05Z  INFO tcp://db:5432 is ready after 1.2s`.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// The logging flags shared by every tool.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(
        long,
        env = "PITCREW_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Minimum level to log: error, warn, info, debug or trace; or per-module directives
    /// such as `info,pitcrew_wait=debug`.
    #[arg(long, env = "PITCREW_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
}

/// Installs the global subscriber. Fails with a message naming the bad level.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = parse_filter(&args.log_level)?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let layer = match args.log_format {
        // Colour only when a person is watching; kubectl logs would show escape codes.
        // Text lines carry only the message: tools write messages that say everything
        // ("attempt 3: tcp://db:5432: connection refused; retrying in 400ms"), and repeating
        // the structured fields after them would double every line. JSON keeps the fields.
        LogFormat::Text => layer
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                |writer, field, value| {
                    if field.name() == "message" {
                        write!(writer, "{value:?}")
                    } else {
                        Ok(())
                    }
                },
            ))
            .boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(|err| format!("cannot install the logger: {err}"))
}

/// Parses `--log-level` into a per-module filter. `Targets` rather than `EnvFilter`: the same
/// `info,pitcrew_wait=debug` syntax without a regex engine, which would be a fifth of a small
/// tool's binary. A single word must be a level: tracing would otherwise take
/// `--log-level verbose` as "everything from a module named verbose", silently logging nothing.
fn parse_filter(level: &str) -> Result<Targets, String> {
    let expected = "expected error, warn, info, debug, trace, off or directives like info,pitcrew_wait=debug";
    let is_directive_list = level.contains('=') || level.contains(',');
    if !is_directive_list && level.trim().parse::<LevelFilter>().is_err() {
        return Err(format!("invalid --log-level {level:?}; {expected}"));
    }
    if !is_directive_list {
        // A bare level is the default for every module.
        let level: LevelFilter = level
            .trim()
            .parse()
            .map_err(|_| format!("invalid --log-level {level:?}; {expected}"))?;
        return Ok(Targets::new().with_default(level));
    }
    level
        .parse::<Targets>()
        .map_err(|err| format!("invalid --log-level {level:?} ({err}); {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_level_is_refused_with_its_value() {
        for bad in ["verbose", "info,pitcrew_wait=loud"] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn levels_and_directives_are_accepted() {
        for good in ["info", "DEBUG", "off", "warn,pitcrew_wait=debug"] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
    }
}
