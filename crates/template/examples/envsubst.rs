//! A minimal `envsubst` on the engine, for benchmarks against GNU envsubst (the real tool is
//! pitcrew-render): stdin to stdout with the process environment, and an optional GNU
//! SHELL-FORMAT argument (`'$A ${B}'`).
//!
//! `cargo build --release -p pitcrew-template --example envsubst`, then
//! `target/release/examples/envsubst < template > out`.

use std::io::{stdin, stdout};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use pitcrew_template::{Allow, Options, VarMap, references, render};

fn main() -> ExitCode {
    let mut vars: VarMap = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_vec())))
        .collect();
    let allow = std::env::args()
        .nth(1)
        .map_or_else(Allow::all, |format| Allow::names(references(format.as_bytes())));
    let options = Options {
        allow,
        ..Options::default()
    };
    match render(stdin().lock(), stdout().lock(), "<stdin>", &mut vars, &options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("envsubst: {error}");
            ExitCode::from(error.exit_code().code())
        }
    }
}
