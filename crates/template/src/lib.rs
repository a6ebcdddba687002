//! `pitcrew-template`: the envsubst-grammar template engine shared by `pitcrew-render` (the
//! init-container `envsubst` replacement) and the config-reload sidecar.
//!
//! [`render`] streams a template from a reader to a writer, expanding variable references with
//! values from a [`Variables`] source. It reads in 64 KiB chunks and copies text between
//! references in large slices, so memory stays bounded whatever the input size, and it collects
//! every problem in the template (each missing variable, each syntax error, with its line and
//! column) before failing, instead of stopping at the first.
//!
//! # Grammar
//!
//! Names follow POSIX: `[A-Za-z_][A-Za-z0-9_]*`. "Unset" means the name has no value; the
//! `:` forms also treat a set-but-empty value as unset, exactly as the POSIX shell does.
//!
//! | form | gives |
//! |---|---|
//! | `$V`, `${V}` | the value of `V`; empty when unset (an error with `strict`; set-but-empty is an error with `no_empty`) |
//! | `${V-word}` / `${V:-word}` | the value, or `word` when `V` is unset / unset or empty |
//! | `${V=word}` / `${V:=word}` | as `-`, and also assigns `word` to `V` for the rest of the template |
//! | `${V+word}` / `${V:+word}` | `word` when `V` is set / set and not empty, else nothing |
//! | `${V?msg}` / `${V:?msg}` | the value; when unset / unset or empty, an error `V: msg` (default `is not set` / `is not set or empty`) |
//! | `$$` | a literal `$` (with an allow-list, see below) |
//! | `$` followed by anything but a name or `{name`: `$1`, `$(cmd)`, `$ `, `${1}`, `${}`, a `$` at the end | left as is, byte for byte |
//!
//! - The `word` may contain text and further references, nested to any depth up to 64:
//!   `${A:-${B:-x}}`, `${A:-$B}`, `${A:-$$}`. It ends at the first `}` that closes no nested
//!   `${`; there is no quoting, so a `word` cannot contain `}` (put such text in a variable).
//!   A word is only expanded when its branch is taken (`${A:-$B}` reads `B` only when `A` is
//!   unset), but its syntax is always checked.
//! - The `msg` of `${V?msg}` is shown as written and never expanded, so an error message cannot
//!   carry a value. No error message ever contains a value: problems name variables and
//!   positions only.
//! - Expansion is not recursive: a value containing `$`, `}` or newlines is copied as is.
//! - Backslash is ordinary text: `\$HOME` gives `\` followed by the value of `HOME`, exactly as
//!   GNU envsubst does.
//! - Unsupported shell forms are errors, not silently wrong output: `${V%x}`, `${V#x}`,
//!   `${V/a/b}`, `${V:0:2}`, `${#V}`, `${!V}` are reported as an unknown operator.
//! - Everything else is bytes: NUL, CR LF, invalid UTF-8 pass through unchanged, in the text
//!   and in values.
//!
//! ## With an allow-list
//!
//! When [`Options::allow`] is not [`Allow::all`] (`--only 'APP_*,DB_HOST'`, or GNU envsubst's
//! SHELL-FORMAT argument), only references whose name is allowed are touched. Every other `$…`
//! form is copied verbatim, including any nested text (`${HOME:-$APP_X}` stays as is when
//! `HOME` is not allowed), and so are its syntax errors: a shell script with `$1`, `$HOME`,
//! `${PATH%%:*}` and `$$` goes through unchanged except for the allowed names. `$$` is then
//! left as `$$`, except in front of an allowed name: `$$NAME` gives a literal `$NAME` and
//! `$${NAME}` a literal `${NAME}`, an escape for text that must keep an allowed name.
//!
//! ## Errors and positions
//!
//! Problems are reported as `source:line:column: message`, one per line, in input order, at most
//! 100 (then one line says how many more). Lines and columns are 1-based; **columns count bytes**,
//! not characters. A reference's position is that of its `$`; an unterminated `${` is reported
//! at the `${`.
//!
//! ## Bounds
//!
//! A `${…}` expression or a name longer than [`MAX_EXPRESSION`] bytes is an error (reported at
//! its start), not a reason to buffer without bound. One assigned value may be at most
//! [`MAX_VALUE`] bytes and all values assigned in one render at most [`MAX_ASSIGNED`], so the
//! output stays bounded by the input size times the largest value. Nesting deeper than
//! [`MAX_DEPTH`] is an error. Memory use is about 200 KiB plus the variables, whatever the
//! input size.
//!
//! ## Differences from GNU envsubst
//!
//! GNU envsubst only knows `$V` and `${V}`; for those (and for text without references) the
//! output is the same byte for byte, which `tests/gnu.rs` checks against the real program.
//! The differences:
//!
//! - GNU leaves `${V:-d}` and the other operator forms untouched; here they are expanded.
//! - GNU leaves `$$` as `$$` (and `$$V` as `$` plus the value of `V`); here `$$` is a literal
//!   `$`, so `$$V` gives `$V`. With an allow-list, `$$` stays `$$` as in GNU, except before an
//!   allowed name (see above).
//! - GNU leaves an unterminated `${V` as text; here it is an error (with an allow-list: only
//!   when `V` is allowed).
//! - GNU leaves `${#V}`, `${V%x}` and friends as text; here they are errors (with an
//!   allow-list: only when `V` is allowed).

mod allow;
mod error;
mod eval;
mod fuzzing;
mod scan;
mod stream;
mod vars;

use std::collections::BTreeSet;
use std::io::{Read, Write};

pub use allow::{Allow, is_valid_name};
pub use error::{Error, Problem, ProblemKind, Problems};
#[doc(hidden)]
pub use fuzzing::{Chunked, fuzz_check};
pub use vars::{BuildNameHasher, NameHasher, VarMap, Variables};

use eval::{Config, Eval, Limits, Sink, State};

/// The longest `${…}` expression, or name, the engine buffers (64 KiB).
pub const MAX_EXPRESSION: usize = 64 * 1024;
/// The deepest nesting of `${…}` expressions.
pub const MAX_DEPTH: u32 = 64;
/// The longest value a single `${V=…}` / `${V:=…}` may assign (16 MiB).
pub const MAX_VALUE: usize = 16 * 1024 * 1024;
/// All values assigned in one render together (64 MiB).
pub const MAX_ASSIGNED: usize = 64 * 1024 * 1024;
/// How many problems are listed; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

/// How a render treats names and missing values. The default expands every name and lets
/// unset variables expand to nothing, as GNU envsubst does.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Which names are expanded; see [`Allow`] and the crate docs for what happens to others.
    pub allow: Allow,
    /// `--strict`: an unset variable referenced without a default (`$V`, `${V}`) is an error.
    pub strict: bool,
    /// `--no-empty`: a set-but-empty one referenced without a default is an error too.
    pub no_empty: bool,
}

/// What a render did (for logs). Never holds values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
    /// References evaluated (nested ones included; `$$` and text not).
    pub expansions: u64,
    /// Names referenced (allowed ones, also in defaults not taken), sorted, unique.
    pub names: BTreeSet<String>,
    /// Names that expanded to nothing because they were unset and the reference had no
    /// default (`$V`, `${V}`), sorted, unique: what a non-strict caller warns about.
    pub unset: BTreeSet<String>,
}

/// Streams `input` to `output`, expanding references. `source` names the input in errors
/// (`app.yaml`, `<stdin>`).
///
/// Collects every template problem (all missing variables, every syntax error) before failing;
/// output written so far is left to the caller to discard (write to a temporary file and rename
/// it on success). `vars` receives the assignments of `${V=…}` and `${V:=…}`.
pub fn render(
    input: impl Read,
    output: impl Write,
    source: &str,
    vars: &mut dyn Variables,
    options: &Options,
) -> Result<Report, Error> {
    stream::render_with(input, output, source, vars, options, Limits::DEFAULT)
}

/// Names referenced by a template, in order of occurrence, duplicates kept (for GNU
/// `envsubst --variables` and SHELL-FORMAT parsing). Only `$NAME` and `${NAME…}` forms,
/// including those nested in defaults; `$$NAME` is an escape and references nothing, a
/// `${V?msg}` message is not expanded and references nothing, and an unterminated `${` is text.
pub fn references(input: &[u8]) -> Vec<String> {
    let mut none = NoVariables;
    let allow = Allow::all();
    let mut eval = Eval {
        vars: &mut none,
        cfg: Config {
            allow: &allow,
            strict: false,
            no_empty: false,
            limits: Limits::DEFAULT,
        },
        st: State::collecting(),
    };
    // A dry walk writes nothing, so it cannot fail.
    let _ = eval.word(input, 0, input.len(), &mut Sink::Dry, 0);
    eval.st.order.unwrap_or_default()
}

/// No variables: [`references`] evaluates nothing.
struct NoVariables;

impl Variables for NoVariables {
    fn get(&self, _name: &str) -> Option<&[u8]> {
        None
    }

    fn set(&mut self, _name: &str, _value: Vec<u8>) {}
}
