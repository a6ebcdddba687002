//! Command-line parsing shared by every tool: flags and their env twins as Kubernetes users
//! write them, and usage errors that reach the termination log without leaking secrets.
//!
//! clap alone gets two things wrong for pod specs. An env var set to the empty string (what
//! Helm renders for an unset value, `value: ""`) counts as given, so `PITCREW_WAIT_TIMEOUT=""`
//! failed as an invalid duration; here it counts as unset, so the default applies. And a
//! boolean env twin accepted only `true`/`false`, where people write `1`, `yes`, `on`, `TRUE`;
//! here every switch's twin takes the usual spellings (clap's `BoolishValueParser`).
//!
//! An unknown flag is reported without clap's tip "to pass '--timout' as a value, use '--
//! --timout'": in pod specs such an argument is a typo, not a value, and the tip is wrong or
//! useless in every tool that prints it (after `--`, pitcrew-wait execs it as the COMMAND;
//! render would take it as SHELL-FORMAT, fetch as a URL, migrate as a step count). clap's
//! "a similar argument exists" tip stays.
//!
//! Flag groups shared by several tools (the TLS flags) spell their env twins
//! `PITCREW_{TOOL}_…`; the placeholder becomes the tool's name from the command's
//! (`pitcrew-fetch` → `PITCREW_FETCH_CA_FILE`), so every flag of a tool has a twin with its prefix.

use std::ffi::OsString;

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue};
use clap::{ArgAction, CommandFactory, FromArgMatches};

use crate::exit::{ExitCode, termination_log_from_env, write_termination_log};

/// A repeatable path flag's values, or — when the only value is exactly its env twin's (clap
/// took it from there) — that list split on commas, trimmed, empty parts dropped. A flag given
/// on the command line is one path even with a comma in it; in a pod spec's `env` a list is
/// the natural spelling (`PITCREW_RELOAD_WATCH=/a,/b`).
pub fn env_paths(values: &[std::path::PathBuf], from_env: Option<String>) -> Vec<std::path::PathBuf> {
    match (values, from_env) {
        ([one], Some(list)) if one.as_os_str() == list.as_str() => list
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(std::path::PathBuf::from)
            .collect(),
        _ => values.to_vec(),
    }
}

/// Parses `args` (the program name first) into `P`, with env twins read from this process's
/// environment as the module docs describe.
pub fn try_parse_from<P, I, T>(args: I) -> Result<P, clap::Error>
where
    P: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = P::command();
    let tool = tool_name(command.get_name());
    let mut command = command.mut_args(|mut arg| {
        if let Some(template) = arg.get_env().and_then(|name| name.to_str())
            && template.contains(TOOL_PLACEHOLDER)
        {
            let name = template.replace(TOOL_PLACEHOLDER, &tool);
            arg = arg.env(name);
        }
        let Some(name) = arg.get_env() else {
            return arg;
        };
        if std::env::var_os(name).is_some_and(|value| value.is_empty()) {
            return arg.env(None::<&str>);
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            return arg.value_parser(BoolishValueParser::new());
        }
        arg
    });
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(without_double_dash_tip)?;
    P::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// Drops clap's "to pass '--x' as a value, use '-- --x'" tip (see the module docs) and keeps
/// every other one.
fn without_double_dash_tip(mut err: clap::Error) -> clap::Error {
    if let Some(ContextValue::StyledStrs(tips)) = err.remove(ContextKind::Suggested) {
        let kept: Vec<_> = tips
            .into_iter()
            .filter(|tip| !tip.to_string().contains("as a value, use '-- "))
            .collect();
        if !kept.is_empty() {
            err.insert(ContextKind::Suggested, ContextValue::StyledStrs(kept));
        }
    }
    err
}

/// What shared flag groups write in their env twins for the tool's name.
pub const TOOL_PLACEHOLDER: &str = "{TOOL}";

/// `pitcrew-fetch` → `FETCH`: the part of env twins that names the tool.
fn tool_name(command: &str) -> String {
    command
        .strip_prefix("pitcrew-")
        .unwrap_or(command)
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// Parses the process's command line, or says why not and returns the exit code to end with:
/// 0 after `--help`/`--version`, 64 for a usage error. A usage error is printed (with any
/// password in it hidden) and its first line goes to the termination log — the path from
/// `PITCREW_TERMINATION_LOG`, since the flags did not parse — so `kubectl describe pod` shows
/// why the container failed.
pub fn parse_or_exit<P>() -> Result<P, ExitCode>
where
    P: CommandFactory + FromArgMatches,
{
    parse_from_or_exit(std::env::args_os())
}

/// [`parse_or_exit`] for a command line given as `args` (the program name first): what a
/// tool's `cli::main_with_args` calls, so the all-in-one `pitcrew` binary can hand a tool
/// the arguments after its own (`pitcrew wait tcp://db:5432`).
pub fn parse_from_or_exit<P, I, T>(args: I) -> Result<P, ExitCode>
where
    P: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    finish_parse(try_parse_from::<P, _, _>(args), crate::redact::url_passwords_in)
}

/// What [`parse_or_exit`] does with a parse result, for tools that parse their own way first
/// (pitcrew-migrate rewrites golang-migrate's single-dash flags): `--help`/`--version` print
/// and give 0; a usage error is printed through `redact` and its first line goes to the
/// termination log, giving 64.
pub fn finish_parse<P>(
    parsed: Result<P, clap::Error>,
    redact: impl Fn(&str) -> String,
) -> Result<P, ExitCode> {
    match parsed {
        Ok(parsed) => Ok(parsed),
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            Err(ExitCode::Ok)
        }
        Err(err) => {
            let text = redact(&err.render().to_string());
            eprint!("{text}");
            write_termination_log(
                &termination_log_from_env(),
                text.lines().next().unwrap_or_default(),
            );
            // 64, not clap's 2, so the shared exit-code table holds.
            Err(ExitCode::Usage)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A parser with one switch and one value, each with an env twin this test alone uses.
    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "PITCREW_CORE_CLI_TEST_SWITCH")]
        switch: bool,
        #[arg(long, env = "PITCREW_CORE_CLI_TEST_VALUE", default_value = "dflt")]
        value: String,
    }

    fn parse(args: &[&str]) -> Result<Demo, clap::Error> {
        try_parse_from::<Demo, _, _>(std::iter::once("demo").chain(args.iter().copied()))
    }

    #[test]
    fn flags_parse_as_usual() {
        let demo = parse(&["--switch", "--value", "x"]).unwrap();
        assert!(demo.switch);
        assert_eq!(demo.value, "x");
        assert!(parse(&["--nope"]).is_err());
    }

    /// A tool with a COMMAND after `--`, as pitcrew-wait.
    #[derive(Debug, Parser)]
    #[command(name = "pitcrew-demo-exec")]
    struct Exec {
        #[arg(long)]
        timeout: Option<String>,
        target: Vec<String>,
        #[arg(last = true)]
        command: Vec<String>,
    }

    /// From a newcomer's report: `pitcrew-wait --timout 5s tcp://a:1` advised `-- --timout`,
    /// which would have made `--timout` the command to exec.
    #[test]
    fn an_unknown_flag_gets_no_double_dash_tip_but_keeps_the_similar_flag() {
        let parse = |flag: &str| {
            try_parse_from::<Exec, _, _>(["pitcrew-demo-exec", flag, "5s", "tcp://a:1"]).unwrap_err()
        };
        let err = parse("--timout");
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let text = err.render().to_string();
        assert!(text.contains("unexpected argument '--timout' found"), "{text}");
        assert!(
            text.contains("tip: a similar argument exists: '--timeout'"),
            "{text}"
        );
        assert!(!text.contains("as a value"), "{text}");
        assert!(text.contains("Usage: pitcrew-demo-exec"), "{text}");
        // Without a similar flag, the double-dash tip was the only one: none is left.
        for flag in ["--bogus", "-x"] {
            let text = parse(flag).render().to_string();
            assert!(
                text.contains(&format!("unexpected argument '{flag}' found")),
                "{text}"
            );
            assert!(!text.contains("tip:"), "{text}");
        }
    }

    /// A tool whose flag comes from a shared group with a `{TOOL}` twin.
    #[derive(Debug, Parser)]
    #[command(name = "pitcrew-demo-tool")]
    struct Shared {
        #[arg(long, env = "PITCREW_{TOOL}_SHARED")]
        shared: Option<String>,
    }

    #[test]
    fn shared_twins_take_the_tools_name() {
        let help = try_parse_from::<Shared, _, _>(["pitcrew-demo-tool", "--help"])
            .unwrap_err()
            .render()
            .to_string();
        assert!(help.contains("[env: PITCREW_DEMO_TOOL_SHARED"), "{help}");
        assert!(!help.contains("PITCREW_{TOOL}"), "{help}");
        assert_eq!(tool_name("pitcrew-wait"), "WAIT");
    }

    // The env side (empty values, boolean spellings) is tested through the tools' binaries,
    // which run with exactly the environment a test gives them: changing this process's
    // environment would race with other tests (and needs `unsafe` since Rust 2024).
}
