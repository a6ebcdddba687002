//! One problem found by a check, how it is shown (a text line, a JSON log record), and how
//! the set of problems of a run becomes its exit code.
//!
//! Every check adds [`Problem`]s to a [`Report`] and goes on: the point of the tool is that one
//! run lists everything that is wrong, so a broken config is fixed in one round trip instead of
//! one crash loop per mistake. Messages name files, positions, pointers, variable names and
//! dates, never the value of a variable or of a document field (either may be a secret).

use std::fmt;

use pitcrew_core::exit::ExitCode;

/// Which rule of the exit-code table a problem falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What was checked is wrong: bad syntax, a schema violation, an expired certificate (1).
    Invalid,
    /// A file named on the command line is missing, unreadable or not a regular file (66).
    Unreadable,
    /// What the checks are checked against is itself unusable: an invalid schema, a CA file
    /// without a certificate (78).
    BadReference,
}

/// What was checked, for the JSON record's `check` field and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Reading a file.
    Read,
    /// Syntax of a JSON, YAML or TOML file (also: not UTF-8, a byte order mark in JSON).
    Syntax,
    /// A file without content.
    Empty,
    /// A key given twice in one mapping or object.
    DuplicateKey,
    /// The schema itself.
    SchemaFile,
    /// A document against the schema.
    Schema,
    /// A certificate file parses.
    Certificate,
    /// A certificate's validity period, with --min-validity.
    Validity,
    /// The private key parses and matches the certificate.
    Key,
    /// The certificate chains to --ca.
    Chain,
    /// The certificate covers a --dns-name.
    Name,
    /// A required environment variable.
    Env,
    /// An environment variable against its regex.
    EnvRegex,
}

impl Check {
    /// The name in JSON records.
    pub fn name(self) -> &'static str {
        match self {
            Check::Read => "read",
            Check::Syntax => "syntax",
            Check::Empty => "empty",
            Check::DuplicateKey => "duplicate-key",
            Check::SchemaFile => "schema-file",
            Check::Schema => "schema",
            Check::Certificate => "certificate",
            Check::Validity => "validity",
            Check::Key => "key",
            Check::Chain => "chain",
            Check::Name => "dns-name",
            Check::Env => "env",
            Check::EnvRegex => "env-regex",
        }
    }
}

/// A place in a text file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text; a non-boundary offset is
    /// moved back to the character it is in).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which exit-code rule it falls under.
    pub kind: Kind,
    /// What was checked.
    pub check: Check,
    /// The file it is about, as named on the command line.
    pub file: Option<String>,
    /// For multi-document YAML files: which document, from 1 (only set when there are several).
    pub document: Option<usize>,
    /// Where in the file.
    pub position: Option<Position>,
    /// The JSON pointer of the value (schema violations, duplicate keys).
    pub pointer: Option<String>,
    /// What is wrong, naming what was expected.
    pub message: String,
}

impl Problem {
    /// A problem of `kind` found by `check`, with no place yet.
    pub fn new(kind: Kind, check: Check, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            check,
            file: None,
            document: None,
            position: None,
            pointer: None,
            message: message.into(),
        }
    }

    /// An [`Kind::Invalid`] problem.
    pub fn invalid(check: Check, message: impl Into<String>) -> Problem {
        Problem::new(Kind::Invalid, check, message)
    }

    /// Sets the file.
    #[must_use]
    pub fn in_file(mut self, file: &str) -> Problem {
        self.file = Some(file.to_owned());
        self
    }

    /// Sets the position.
    #[must_use]
    pub fn at(mut self, position: Option<Position>) -> Problem {
        self.position = position;
        self
    }

    /// Sets the JSON pointer.
    #[must_use]
    pub fn pointer(mut self, pointer: impl Into<String>) -> Problem {
        self.pointer = Some(pointer.into());
        self
    }

    /// Sets the document number.
    #[must_use]
    pub fn document(mut self, document: Option<usize>) -> Problem {
        self.document = document;
        self
    }

    /// Writes the problem as one log record: text lines carry the whole [`Display`] form,
    /// JSON records the fields one by one. `warning` logs at WARN instead of ERROR (a problem
    /// that --allow-empty turned into a note).
    pub fn log(&self, warning: bool) {
        let line = self.position.map(|position| position.line);
        let column = self.position.map(|position| position.column);
        let check = self.check.name();
        let file = self.file.as_deref();
        let pointer = self.pointer.as_deref();
        if warning {
            tracing::warn!(
                file,
                document = self.document,
                line,
                column,
                pointer,
                check,
                problem = %self.message,
                "{self}"
            );
        } else {
            tracing::error!(
                file,
                document = self.document,
                line,
                column,
                pointer,
                check,
                problem = %self.message,
                "{self}"
            );
        }
    }
}

/// `FILE:LINE:COLUMN: document N: POINTER: message`, each part only when known.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(position) = self.position {
                write!(f, ":{}:{}", position.line, position.column)?;
            }
            write!(f, ": ")?;
        }
        if let Some(document) = self.document {
            write!(f, "document {document}: ")?;
        }
        if let Some(pointer) = &self.pointer {
            let shown = if pointer.is_empty() { "(root)" } else { pointer };
            write!(f, "{shown}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem of a run, in the order found, and what was checked.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The problems.
    pub problems: Vec<Problem>,
    /// Notes that do not fail the run (an empty file with --allow-empty).
    pub warnings: Vec<Problem>,
    /// Data files checked (syntax, schema).
    pub files: usize,
    /// Certificate files checked.
    pub certificates: usize,
    /// Environment variable rules checked (each --env and --env-regex name or pattern).
    pub variables: usize,
}

impl Report {
    /// Records and logs a problem.
    pub fn add(&mut self, problem: Problem) {
        problem.log(false);
        self.problems.push(problem);
    }

    /// Records and logs a warning.
    pub fn warn(&mut self, problem: Problem) {
        problem.log(true);
        self.warnings.push(problem);
    }

    /// The exit code, by the rule the README documents: 0 without problems; 78 when the schema
    /// or CA is itself invalid (the run's own configuration is broken, whatever else failed);
    /// 66 when every problem is a missing or unreadable file; 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.problems.is_empty() {
            ExitCode::Ok
        } else if self
            .problems
            .iter()
            .any(|problem| problem.kind == Kind::BadReference)
        {
            ExitCode::Config
        } else if self
            .problems
            .iter()
            .all(|problem| problem.kind == Kind::Unreadable)
        {
            ExitCode::NoInput
        } else {
            ExitCode::Failure
        }
    }

    /// The last log line: `3 files checked, 2 problems` (certificates and variables named when
    /// there were any).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let plural =
            |count: usize, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
        if self.files > 0 || (self.certificates == 0 && self.variables == 0) {
            parts.push(plural(self.files, "file", "files"));
        }
        if self.certificates > 0 {
            parts.push(plural(self.certificates, "certificate file", "certificate files"));
        }
        if self.variables > 0 {
            parts.push(plural(
                self.variables,
                "environment variable",
                "environment variables",
            ));
        }
        let count = self.problems.len();
        let problems = match count {
            0 => "no problems".to_owned(),
            _ => plural(count, "problem", "problems"),
        };
        let warnings = match self.warnings.len() {
            0 => String::new(),
            n => format!(", {}", plural(n, "warning", "warnings")),
        };
        format!("{} checked, {problems}{warnings}", parts.join(", "))
    }

    /// The one line for the termination log: the count and the first problem.
    pub fn termination_message(&self) -> String {
        let count = self.problems.len();
        match self.problems.first() {
            None => String::new(),
            Some(first) if count == 1 => format!("1 problem: {first}"),
            Some(first) => format!("{count} problems; first: {first}"),
        }
        .replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a\nbé: x\n";
        assert_eq!(Position::of_offset(text, 0), Position { line: 1, column: 1 });
        // After "bé" (é is two bytes): column 3.
        assert_eq!(Position::of_offset(text, 5), Position { line: 2, column: 3 });
        // Inside é: moved back to it.
        assert_eq!(Position::of_offset(text, 4), Position { line: 2, column: 2 });
        assert_eq!(Position::of_offset(text, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn a_problem_shows_every_known_part() {
        let problem = Problem::invalid(Check::Schema, "value is not of type \"integer\"")
            .in_file("/cfg/app.yaml")
            .at(Some(Position { line: 3, column: 12 }))
            .document(Some(2))
            .pointer("/spec/replicas");
        assert_eq!(
            problem.to_string(),
            "/cfg/app.yaml:3:12: document 2: /spec/replicas: value is not of type \"integer\""
        );
        let root = Problem::invalid(Check::Schema, "x").in_file("f").pointer("");
        assert_eq!(root.to_string(), "f: (root): x");
        assert_eq!(
            Problem::invalid(Check::Env, "A is not set").to_string(),
            "A is not set"
        );
    }

    #[test]
    fn the_exit_code_follows_the_documented_rule() {
        let mut report = Report::default();
        assert_eq!(report.exit_code(), ExitCode::Ok);
        report
            .problems
            .push(Problem::new(Kind::Unreadable, Check::Read, "x"));
        assert_eq!(report.exit_code(), ExitCode::NoInput);
        report.problems.push(Problem::invalid(Check::Syntax, "x"));
        assert_eq!(report.exit_code(), ExitCode::Failure);
        report
            .problems
            .push(Problem::new(Kind::BadReference, Check::SchemaFile, "x"));
        assert_eq!(report.exit_code(), ExitCode::Config);
        // Warnings alone do not fail.
        let mut report = Report::default();
        report.warnings.push(Problem::invalid(Check::Empty, "x"));
        assert_eq!(report.exit_code(), ExitCode::Ok);
    }

    #[test]
    fn summary_and_termination_message() {
        let mut report = Report {
            files: 3,
            ..Report::default()
        };
        assert_eq!(report.summary(), "3 files checked, no problems");
        report
            .problems
            .push(Problem::invalid(Check::Syntax, "bad\nthing").in_file("a.json"));
        report
            .problems
            .push(Problem::invalid(Check::Syntax, "worse").in_file("b.json"));
        assert_eq!(report.summary(), "3 files checked, 2 problems");
        assert_eq!(
            report.termination_message(),
            "2 problems; first: a.json: bad thing"
        );
        report.problems.pop();
        report.certificates = 1;
        report.variables = 2;
        assert_eq!(
            report.summary(),
            "3 files, 1 certificate file, 2 environment variables checked, 1 problem"
        );
        assert_eq!(report.termination_message(), "1 problem: a.json: bad thing");
    }
}
