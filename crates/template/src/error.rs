//! The one error type of the engine: template problems (all of them, with positions), a read
//! failure, or a write failure. Nothing here ever holds a variable's value.

use std::fmt;

use pitcrew_core::exit::ExitCode;

/// The message of `${V?}` when the template gives none.
pub(crate) const REQUIRED_UNSET: &str = "is not set";
/// The message of `${V:?}` when the template gives none.
pub(crate) const REQUIRED_UNSET_OR_EMPTY: &str = "is not set or empty";

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template has problems: every one found, one per line (exit 78).
    #[error("{0}")]
    Template(Problems),
    /// The input could not be read (exit 66).
    #[error("cannot read {input}: {error}")]
    Read {
        /// What was being read, as given to [`render`](crate::render) (`app.yaml`, `<stdin>`).
        input: String,
        /// The read error.
        error: std::io::Error,
    },
    /// The output could not be written (exit 74).
    #[error("cannot write output: {0}")]
    Write(std::io::Error),
}

impl Error {
    /// The process exit code for this error, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Template(_) => ExitCode::Config,
            Error::Read { .. } => ExitCode::NoInput,
            Error::Write(_) => ExitCode::Io,
        }
    }
}

/// Every problem found in one template, in input order. Shown one per line.
///
/// When there are more than the engine keeps (100), the last entry is a
/// [`ProblemKind::Omitted`] that says how many more there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// How many entries (an [`ProblemKind::Omitted`] entry counts as one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems in input order.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One problem at one place in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The input's name, as given to [`render`](crate::render).
    pub source: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in bytes (not characters) from the start of the line.
    pub column: u64,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.source, self.line, self.column, self.kind)
    }
}

/// What is wrong at a place in a template. Names are shown (they are ASCII by the grammar);
/// values never are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// `$V` or `${V}` with `V` unset, in strict mode.
    Unset {
        /// The variable.
        name: String,
    },
    /// `$V` or `${V}` with `V` set but empty, when empty values are refused.
    Empty {
        /// The variable.
        name: String,
    },
    /// `${V?msg}` with `V` unset, or `${V:?msg}` with `V` unset or empty.
    Required {
        /// The variable.
        name: String,
        /// The message as written in the template, never expanded (so it cannot carry a
        /// value); when the template gave none, the engine fills in the default: `is not set`
        /// for `?`, `is not set or empty` for `:?`. `None` shows as `is not set`.
        message: Option<String>,
    },
    /// `${` with no matching `}` before the end of input.
    Unterminated,
    /// `${V` followed by something other than `}` or one of `- = + ?` (with or without `:`),
    /// e.g. `${V%x}`, `${V:0:2}`, `${#V}`.
    UnknownOperator {
        /// The variable.
        name: String,
        /// The operator as written (`%`, `%%`, `:`, `#` …).
        operator: String,
    },
    /// A `${…}` expression or a name longer than the engine buffers.
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// Expressions nested deeper than the engine follows.
    TooDeep {
        /// The deepest nesting allowed.
        limit: u32,
    },
    /// `${V=…}` or `${V:=…}` would assign a value longer than the limit.
    ValueTooLong {
        /// The variable assigned.
        name: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// All `${V=…}` assignments of one render together exceed the limit.
    AssignmentsTooLarge {
        /// The variable whose assignment crossed the limit.
        name: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Stands for the problems not listed (the position is that of the first one left out).
    Omitted {
        /// How many.
        count: u64,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::Unset { name } => write!(
                f,
                "variable {name} is not set (give a default with ${{{name}:-default}} or ${{{name}-default}})"
            ),
            ProblemKind::Empty { name } => write!(
                f,
                "variable {name} is set but empty (give a default with ${{{name}:-default}})"
            ),
            ProblemKind::Required { name, message } => {
                // escape_debug: a message may span lines, and each problem is one line.
                let message = message.as_deref().unwrap_or(REQUIRED_UNSET);
                write!(f, "{name}: {}", message.escape_debug())
            }
            ProblemKind::Unterminated => {
                f.write_str("`${` is never closed: no matching `}` before the end of input")
            }
            ProblemKind::UnknownOperator { name, operator } => write!(
                f,
                "unsupported operator `{}` in ${{{name}…}}; supported are - = + ? and :- := :+ :? (${{{name}:-default}})",
                operator.escape_debug()
            ),
            ProblemKind::TooLong { limit } => write!(
                f,
                "expression or name longer than {limit} bytes (is a `}}` missing?)"
            ),
            ProblemKind::TooDeep { limit } => write!(f, "expressions nested more than {limit} deep"),
            ProblemKind::ValueTooLong { name, limit } => {
                write!(
                    f,
                    "the value assigned to {name} would be longer than {limit} bytes"
                )
            }
            ProblemKind::AssignmentsTooLarge { name, limit } => write!(
                f,
                "assigning {name} would take the values assigned in this template over {limit} bytes in all"
            ),
            ProblemKind::Omitted { count } => {
                write!(
                    f,
                    "and {count} more problem{} not shown",
                    if *count == 1 { "" } else { "s" }
                )
            }
        }
    }
}
