//! `pitcrew`: every pitcrew tool in one binary, dispatched busybox style, for the all-in-one
//! image `pitcrew/pitcrew` (a pod that uses several tools pulls one image, and the node
//! caches one layer; every tool keeps its own small image too).
//!
//! The tool is picked from the program name, then from the first argument:
//!
//! - called through a link named `wait` or `pitcrew-wait` (the image has `/wait`, `/tail`, …
//!   linked to `/pitcrew`, so `command: ["/wait"]` works), the tool runs with the arguments
//!   unchanged;
//! - otherwise (`pitcrew`, or any other name) the first argument names it (`pitcrew wait
//!   tcp://db:5432`, or `pitcrew pitcrew-wait …`); the tool runs with the rest, and with its
//!   binary's name (`pitcrew-wait`) as the program name, so it behaves exactly as its own
//!   image does. One `--` before the tool's name is skipped (`pitcrew -- wait …`).
//!
//! Each tool runs through its library's `cli::main_with_args`, the function its own
//! `src/main.rs` calls: flags, logging, signals, exit codes and the termination log are the
//! tool's, not copies. `pitcrew --help` lists the tools, `--version` prints the workspace
//! version (the images' tag), `--list` the tool names one per line (what the image build links).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use pitcrew_core::exit::{ExitCode as Code, termination_log_from_env, write_termination_log};

/// The workspace version: this binary's, every tool's and the images' tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One tool of the multicall binary.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// What it is called by: `pitcrew NAME`, a link `/NAME`, its image `pitcrew/NAME`.
    pub name: &'static str,
    /// One line for `pitcrew --help`.
    pub description: &'static str,
    /// The tool's `cli::main_with_args`.
    main: fn(Vec<OsString>) -> ExitCode,
}

impl Tool {
    /// The tool's own binary and package name, e.g. `pitcrew-wait`.
    pub fn binary(&self) -> String {
        format!("pitcrew-{}", self.name)
    }

    /// Runs the tool on `args` (the program name first) and returns its exit code. A tool may
    /// not return at all: `wait … -- COMMAND` replaces the process.
    pub fn run(&self, args: Vec<OsString>) -> ExitCode {
        (self.main)(args)
    }
}

/// Every tool, by name. A new tool crate is added here (a test checks that every crate with a
/// binary is).
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "fetch",
        description: "download files (http, https, s3) so they appear only complete and verified",
        main: pitcrew_fetch::cli::main_with_args,
    },
    Tool {
        name: "metrics",
        description: "metrics adapter sidecar: Prometheus metrics from logs, status files, textfiles, StatsD",
        main: pitcrew_metrics::cli::main_with_args,
    },
    Tool {
        name: "migrate",
        description: "apply SQL migrations exactly once (golang-migrate's files and flags)",
        main: pitcrew_migrate::cli::main_with_args,
    },
    Tool {
        name: "prepare",
        description: "prepare volumes: copy, mkdir, chown, chmod, symlink, sysctl, in order",
        main: pitcrew_prepare::cli::main_with_args,
    },
    Tool {
        name: "proxy",
        description: "auth proxy and ambassador sidecar: TLS, JWT/token/forward auth, balancing, TCP mode",
        main: pitcrew_proxy::cli::main_with_args,
    },
    Tool {
        name: "reload",
        description: "config reload sidecar: one signal or webhook per real change, then verify",
        main: pitcrew_reload::cli::main_with_args,
    },
    Tool {
        name: "render",
        description: "render envsubst-style templates atomically; generate lasting secrets",
        main: pitcrew_render::cli::main_with_args,
    },
    Tool {
        name: "tail",
        description: "log sidecar: follow files through rotation, print or ship the lines",
        main: pitcrew_tail::cli::main_with_args,
    },
    Tool {
        name: "validate",
        description: "check config files, JSON Schema, certificates and env vars before start",
        main: pitcrew_validate::cli::main_with_args,
    },
    Tool {
        name: "wait",
        description: "wait until TCP, HTTP, DNS, databases, files or Kubernetes objects are ready",
        main: pitcrew_wait::cli::main_with_args,
    },
];

/// The tool called `name` or `pitcrew-name`.
pub fn find(name: &OsStr) -> Option<&'static Tool> {
    let name = name.to_str()?;
    let name = name.strip_prefix("pitcrew-").unwrap_or(name);
    TOOLS.iter().find(|tool| tool.name == name)
}

/// The tool a program name (argv\[0\]) selects: its file name is a tool's (`/wait`,
/// `/usr/local/bin/pitcrew-tail`). `None` for `pitcrew` and any other name.
pub fn by_program(program: &OsStr) -> Option<&'static Tool> {
    Path::new(program).file_name().and_then(find)
}

/// The `pitcrew` program: runs the tool that `args` (the program name first) select, or
/// answers `--help`, `--version`, `--list`; see the crate docs.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_default();
    if let Some(tool) = by_program(&program) {
        return tool.run(std::iter::once(program).chain(args).collect());
    }
    let mut first = args.next();
    // After `--` nothing is an option of pitcrew's: `pitcrew -- --help` looks for a tool.
    let after_double_dash = first.as_deref() == Some(OsStr::new("--"));
    if after_double_dash {
        first = args.next();
    }
    let Some(first) = first else {
        return usage_error("no tool given", true);
    };
    let option = if after_double_dash { None } else { first.to_str() };
    match option {
        Some("--help" | "-h") => print(&help()),
        Some("--version" | "-V") => print(&format!("pitcrew {VERSION}\n")),
        Some("--list") => print(&TOOLS.iter().fold(String::new(), |mut list, tool| {
            let _ = writeln!(list, "{}", tool.name);
            list
        })),
        Some("help") => match (args.next(), args.next()) {
            (None, _) => print(&help()),
            (Some(name), None) => match find(&name) {
                Some(tool) => tool.run(vec![tool.binary().into(), "--help".into()]),
                None => unknown_tool(&name),
            },
            (Some(_), Some(extra)) => usage_error(
                &format!("help takes one tool name, not also {:?}", extra.to_string_lossy()),
                false,
            ),
        },
        _ => match find(&first) {
            Some(tool) => tool.run(std::iter::once(tool.binary().into()).chain(args).collect()),
            None => unknown_tool(&first),
        },
    }
}

/// `--help`: the tools, how to call them, and a pod spec.
pub fn help() -> String {
    let width = TOOLS.iter().map(|tool| tool.name.len()).max().unwrap_or(0);
    let mut tools = String::new();
    for tool in TOOLS {
        let _ = writeln!(tools, "  {:width$}  {}", tool.name, tool.description);
    }
    format!(
        r#"pitcrew {VERSION}: every pitcrew tool in one binary, for the all-in-one image pitcrew/pitcrew

Usage:
  pitcrew TOOL [ARGS]...   run TOOL with ARGS, e.g. pitcrew wait tcp://db:5432
  TOOL [ARGS]...           the same through a link named TOOL or pitcrew-TOOL (busybox style)
  pitcrew help [TOOL]      this text, or TOOL's own --help (also: pitcrew TOOL --help)
  pitcrew --version        the version, which is also the images' tag
  pitcrew --list           the tool names, one per line (for scripts)

Tools:
{tools}
ARGS are the tool's own, exactly as its image (pitcrew/wait:{VERSION} and so on) takes them, and
so are its env twins, logs, exit codes and termination log.

In a pod spec, every container can use the same image, so a pod pulls one image and the node
caches one layer. The image runs /pitcrew: name the tool first in args, or run the tool's
link (/wait, /render, /tail, …) as the command:
  initContainers:
    - name: wait-for-db
      image: pitcrew/pitcrew:{VERSION}
      args: ["wait", "postgres://app@postgres:5432/app", "--timeout", "10m"]
    - name: config
      image: pitcrew/pitcrew:{VERSION}
      command: ["/render"]
      args: ["--in", "/config-templates", "--out", "/shared-config", "--strict"]

Exit codes: the tool's own (pitcrew TOOL --help); 64 when no tool or an unknown one is named.
"#
    )
}

/// Writes `text` to stdout; 0, or 74 (I/O error) when stdout is gone.
fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Code::Ok.into(),
        Err(_) => Code::Io.into(),
    }
}

/// A first argument that is no tool: the error names it and lists the tools.
fn unknown_tool(name: &OsStr) -> ExitCode {
    usage_error(&format!("no tool named {:?}", name.to_string_lossy()), false)
}

/// A usage error: one line (what is wrong, the tools, how to call one) to stderr and the
/// termination log, with the whole help after it on stderr when `with_help`; exit 64.
fn usage_error(problem: &str, with_help: bool) -> ExitCode {
    let names: Vec<&str> = TOOLS.iter().map(|tool| tool.name).collect();
    let line = format!(
        "pitcrew: {problem}; the tools are {}. Usage: pitcrew TOOL [ARGS]... (see pitcrew --help)",
        names.join(", ")
    );
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
    if with_help {
        let _ = write!(stderr, "\n{}", help());
    }
    write_termination_log(&termination_log_from_env(), &line);
    Code::Usage.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_by_name_with_or_without_the_prefix() {
        for tool in TOOLS {
            assert_eq!(find(OsStr::new(tool.name)).map(|t| t.name), Some(tool.name));
            assert_eq!(find(OsStr::new(&tool.binary())).map(|t| t.name), Some(tool.name));
        }
        for not_a_tool in [
            "",
            "pitcrew",
            "pitcrew-",
            "WAIT",
            "waitt",
            " wait",
            "wait ",
            "pitcrew-pitcrew-wait",
        ] {
            assert!(find(OsStr::new(not_a_tool)).is_none(), "{not_a_tool:?}");
        }
    }

    #[test]
    fn the_program_name_selects_by_its_file_name() {
        for (program, expected) in [
            ("wait", Some("wait")),
            ("/wait", Some("wait")),
            ("./bin/pitcrew-tail", Some("tail")),
            ("/usr/local/bin/pitcrew-render", Some("render")),
            ("pitcrew", None),
            ("/pitcrew", None),
            ("", None),
            ("/", None),
            ("/wait/..", None),
            ("wait.sh", None),
        ] {
            assert_eq!(
                by_program(OsStr::new(program)).map(|t| t.name),
                expected,
                "{program:?}"
            );
        }
    }

    #[test]
    fn names_are_unique_sorted_and_short_enough_for_one_line() {
        let names: Vec<&str> = TOOLS.iter().map(|tool| tool.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for line in help().lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
    }
}
