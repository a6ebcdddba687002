//! Where the values of template variables come from, and which source wins.
//!
//! Four sources, lowest precedence first: the process environment, `--env-file` (dotenv
//! files, in the order given), `--vars-dir` (one variable per file, a mounted Secret or
//! ConfigMap, in the order given), `--set KEY=VALUE`. A later source replaces a value from an
//! earlier one; generated secrets are added on top by the caller (see `secrets`), and a secret
//! whose variable is also given with `--set` is refused as ambiguous.
//!
//! Values are bytes: a mounted Secret may hold anything, and the engine copies values as is.
//! No error message here ever shows a value, nor a line of a dotenv file (a malformed line may
//! be a pasted secret): errors name the file, the line number and what was expected.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use pitcrew_core::files::{EntryKind, FileError};
use pitcrew_template::Variables;

use crate::RenderError;

/// Every variable by name, after precedence has been applied.
/// A hash map with pitcrew-template's hasher for short names: looked up at every reference.
pub type Values = pitcrew_template::VarMap;

/// A `--set KEY=VALUE` flag. Debug never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name.
    pub name: String,
    /// Its value, verbatim (newlines, `=` and all).
    pub value: Vec<u8>,
}

impl fmt::Debug for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Assignment({}=<{} bytes>)", self.name, self.value.len())
    }
}

impl std::str::FromStr for Assignment {
    type Err = String;

    /// Parses `KEY=VALUE`; only the key is ever shown in the error.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((name, value)) = text.split_once('=') else {
            return Err("expected KEY=VALUE (the value is not shown here)".into());
        };
        if !pitcrew_template::is_valid_name(name) {
            return Err(format!(
                "invalid variable name {name:?} in KEY=VALUE: expected letters, digits and _, \
                 not starting with a digit, e.g. APP_PORT"
            ));
        }
        Ok(Assignment {
            name: name.to_owned(),
            value: value.as_bytes().to_vec(),
        })
    }
}

/// Where each source is; the environment is passed in so tests control it. `Debug` shows
/// the environment's names only.
#[derive(Clone, Default)]
pub struct Sources {
    /// The process environment (names that are not valid variable names are simply never
    /// referenced).
    pub environment: Vec<(OsString, OsString)>,
    /// `--env-file`, in order.
    pub env_files: Vec<PathBuf>,
    /// `--vars-dir`, in order.
    pub vars_dirs: Vec<PathBuf>,
    /// `--set`, in order.
    pub assignments: Vec<Assignment>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.environment.iter().map(|(name, _)| name).collect();
        f.debug_struct("Sources")
            .field("environment", &names)
            .field("env_files", &self.env_files)
            .field("vars_dirs", &self.vars_dirs)
            .field("assignments", &self.assignments)
            .finish()
    }
}

impl Sources {
    /// Reads every source and merges them by precedence.
    pub fn load(&self) -> Result<Values, RenderError> {
        let mut values = Values::default();
        for (name, value) in &self.environment {
            if let Ok(name) = name.clone().into_string() {
                values.insert(name, value.clone().into_vec());
            }
        }
        for path in &self.env_files {
            let bytes = std::fs::read(path).map_err(|err| FileError::input(path, "read --env-file", err))?;
            for (name, value) in parse_dotenv(&bytes).map_err(|err| {
                RenderError::Config(format!(
                    "--env-file {}:{}: {}",
                    path.display(),
                    err.line,
                    err.message
                ))
            })? {
                values.insert(name, value);
            }
        }
        for directory in &self.vars_dirs {
            for (name, value) in read_vars_dir(directory)? {
                values.insert(name, value);
            }
        }
        for assignment in &self.assignments {
            values.insert(assignment.name.clone(), assignment.value.clone());
        }
        Ok(values)
    }
}

/// The variable name for a file name (a `--vars-dir` entry, a `--secret` NAME): every byte
/// outside `[A-Za-z0-9_]` becomes `_`, and a leading digit gets a `_` in front, so `db-host`
/// is `db_host`, `tls.crt` is `tls_crt` and `1st` is `_1st`. Case is kept.
pub fn variable_name(file_name: &[u8]) -> String {
    let mut name = String::with_capacity(file_name.len() + 1);
    if file_name.first().is_some_and(u8::is_ascii_digit) {
        name.push('_');
    }
    for &byte in file_name {
        name.push(if byte.is_ascii_alphanumeric() || byte == b'_' {
            char::from(byte)
        } else {
            '_'
        });
    }
    name
}

/// A file's content as a value: one trailing newline (`\n` or `\r\n`) is dropped, since
/// `echo value > file` and most editors add one that nobody means as part of the value.
pub fn strip_one_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.pop();
    }
    bytes
}

/// Reads a `--vars-dir`: each regular file directly inside is a variable (see
/// [`variable_name`] and [`strip_one_newline`]). Kubernetes' `..data` internals are skipped,
/// the visible symlinks into them followed; a symlink out of the directory is refused.
/// Subdirectories are skipped with a warning. Two files that map to one name are refused.
fn read_vars_dir(directory: &Path) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    let entries = pitcrew_core::files::walk(directory)?;
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut values = Vec::new();
    for entry in entries {
        if entry.relative.components().count() != 1 {
            continue;
        }
        if entry.kind == EntryKind::Directory {
            tracing::warn!(
                "--vars-dir {}: skipped the directory {} (only files directly inside are variables)",
                directory.display(),
                entry.relative.display()
            );
            continue;
        }
        let file_name = entry.relative.as_os_str().as_encoded_bytes();
        let name = variable_name(file_name);
        if let Some(first) = seen.insert(name.clone(), entry.relative.clone()) {
            return Err(RenderError::Config(format!(
                "--vars-dir {}: the files {} and {} both give the variable {name}; rename one",
                directory.display(),
                first.display(),
                entry.relative.display()
            )));
        }
        let bytes = std::fs::read(&entry.source)
            .map_err(|err| FileError::input(directory.join(&entry.relative), "read", err))?;
        values.push((name, strip_one_newline(bytes)));
    }
    Ok(values)
}

/// A dotenv line that cannot be parsed: where and why, never its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// 1-based line number (of the line where the bad entry starts).
    pub line: usize,
    /// What was expected.
    pub message: &'static str,
}

/// Parses a dotenv file:
///
/// - `KEY=value`, optionally `export KEY=value`, spaces allowed around `=`;
/// - blank lines and lines starting with `#` are skipped;
/// - an unquoted value ends at the end of the line or at ` #` (a comment), and is trimmed;
/// - `'single quotes'` keep everything literally, newlines included;
/// - `"double quotes"` may span lines and understand `\n`, `\r`, `\t`, `\\`, `\"` and `\$`
///   (any other backslash is kept as is);
/// - after a closing quote only spaces and a `# comment` may follow;
/// - values are never expanded (`${X}` in a value stays as written);
/// - CRLF line ends are accepted.
pub fn parse_dotenv(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, DotenvError> {
    let mut parser = Dotenv { text, at: 0, line: 1 };
    let mut values = Vec::new();
    while let Some(entry) = parser.entry()? {
        values.push(entry);
    }
    Ok(values)
}

fn error(line: usize, message: &'static str) -> DotenvError {
    DotenvError { line, message }
}

struct Dotenv<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Dotenv<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// Skips to just after the end of the current line.
    fn skip_line(&mut self) {
        while let Some(byte) = self.peek() {
            self.at += 1;
            if byte == b'\n' {
                self.line += 1;
                return;
            }
        }
    }

    /// The next `KEY=value`, or `None` at the end of the text.
    fn entry(&mut self) -> Result<Option<(String, Vec<u8>)>, DotenvError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(None),
                Some(b'\n' | b'#') => self.skip_line(),
                Some(b'\r') if self.text.get(self.at + 1) == Some(&b'\n') => self.skip_line(),
                Some(_) => break,
            }
        }
        let start_line = self.line;
        let mut name = self.name();
        if name == "export" && matches!(self.peek(), Some(b' ' | b'\t')) {
            self.skip_blanks();
            name = self.name();
        }
        if !pitcrew_template::is_valid_name(&name) {
            return Err(error(
                start_line,
                "expected KEY=value with KEY made of letters, digits and _ (not starting with a digit)",
            ));
        }
        self.skip_blanks();
        if self.peek() != Some(b'=') {
            return Err(error(start_line, "expected KEY=value: no `=` after the name"));
        }
        self.at += 1;
        self.skip_blanks();
        let value = match self.peek() {
            Some(b'\'') => self.single_quoted(start_line)?,
            Some(b'"') => self.double_quoted(start_line)?,
            _ => self.unquoted(),
        };
        Ok(Some((name, value)))
    }

    fn name(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    fn unquoted(&mut self) -> Vec<u8> {
        let start = self.at;
        let mut end = start;
        while let Some(byte) = self.peek() {
            if byte == b'\n' {
                break;
            }
            // ` #` starts a comment; a `#` inside a word (`pa#ss`) is part of the value.
            if byte == b'#' && self.at > start && matches!(self.text[self.at - 1], b' ' | b'\t') {
                break;
            }
            self.at += 1;
            if !matches!(byte, b' ' | b'\t' | b'\r') {
                end = self.at;
            }
        }
        let value = self.text[start..end].to_vec();
        self.skip_line();
        value
    }

    fn single_quoted(&mut self, start_line: usize) -> Result<Vec<u8>, DotenvError> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek() {
                None => return Err(error(start_line, "a single-quoted value is not closed")),
                Some(b'\'') => break,
                Some(byte) => {
                    if byte == b'\n' {
                        self.line += 1;
                    }
                    self.at += 1;
                }
            }
        }
        let value = self.text[start..self.at].to_vec();
        self.at += 1;
        self.after_quote(start_line)?;
        Ok(value)
    }

    fn double_quoted(&mut self, start_line: usize) -> Result<Vec<u8>, DotenvError> {
        self.at += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(error(start_line, "a double-quoted value is not closed")),
                Some(b'"') => break,
                Some(b'\\') => {
                    let escaped = match self.text.get(self.at + 1) {
                        Some(b'n') => Some(b'\n'),
                        Some(b'r') => Some(b'\r'),
                        Some(b't') => Some(b'\t'),
                        Some(&byte @ (b'\\' | b'"' | b'$')) => Some(byte),
                        _ => None,
                    };
                    if let Some(byte) = escaped {
                        value.push(byte);
                        self.at += 2;
                    } else {
                        value.push(b'\\');
                        self.at += 1;
                    }
                }
                Some(byte) => {
                    if byte == b'\n' {
                        self.line += 1;
                    }
                    value.push(byte);
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        self.after_quote(start_line)?;
        Ok(value)
    }

    /// After a closing quote: blanks, then the end of the line or a comment.
    fn after_quote(&mut self, start_line: usize) -> Result<(), DotenvError> {
        self.skip_blanks();
        match self.peek() {
            None | Some(b'\n' | b'#') => {
                self.skip_line();
                Ok(())
            }
            Some(b'\r') if matches!(self.text.get(self.at + 1), None | Some(b'\n')) => {
                self.skip_line();
                Ok(())
            }
            Some(_) => Err(error(
                start_line,
                "unexpected text after the closing quote (only a # comment may follow)",
            )),
        }
    }
}

/// The values of one render: the shared values plus what this template assigns with
/// `${V:=word}`. Each template starts from the same values, so the outputs of a tree do not
/// depend on the order its files are rendered in.
pub struct Scoped<'a> {
    shared: &'a Values,
    assigned: BTreeMap<String, Vec<u8>>,
}

impl<'a> Scoped<'a> {
    /// A fresh scope over `shared`.
    pub fn new(shared: &'a Values) -> Self {
        Scoped {
            shared,
            assigned: BTreeMap::new(),
        }
    }
}

impl Variables for Scoped<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.assigned
            .get(name)
            .or_else(|| self.shared.get(name))
            .map(Vec::as_slice)
    }

    fn set(&mut self, name: &str, value: Vec<u8>) {
        self.assigned.insert(name.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8(value).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn dotenv_reads_the_usual_forms() {
        let text = "# a comment\n\
                    \n\
                    PLAIN=value\n\
                    export EXPORTED=yes\n\
                    SPACED = around equals  \n\
                    EMPTY=\n\
                    COMMENTED=value # trailing comment\n\
                    HASH=pa#ss\n\
                    SINGLE='it is'\n\
                    LITERAL='$HOME \\n ${X}'\n\
                    DOUBLE=\"a\\tb\\nc \\\"q\\\" \\$d \\\\ \\x\"\n\
                    MULTI=\"line1\nline2\"\n\
                    AFTER=1\n\
                    \t  INDENTED=ok\r\n\
                    CRLF='q'\r\n\
                    export=not-a-prefix\n\
                    URL=postgres://u:p@h:5432/db?sslmode=require\n";
        let expected = pairs(&[
            ("PLAIN", "value"),
            ("EXPORTED", "yes"),
            ("SPACED", "around equals"),
            ("EMPTY", ""),
            ("COMMENTED", "value"),
            ("HASH", "pa#ss"),
            ("SINGLE", "it is"),
            ("LITERAL", "$HOME \\n ${X}"),
            ("DOUBLE", "a\tb\nc \"q\" $d \\ \\x"),
            ("MULTI", "line1\nline2"),
            ("AFTER", "1"),
            ("INDENTED", "ok"),
            ("CRLF", "q"),
            ("export", "not-a-prefix"),
            ("URL", "postgres://u:p@h:5432/db?sslmode=require"),
        ]);
        assert_eq!(parse(text), expected);
    }

    #[test]
    fn dotenv_errors_name_the_line_never_the_text() {
        for (text, line, expected) in [
            ("A=1\ns3cr3t-pasted-alone\n", 2, "no `=`"),
            ("A=1\n\n1BAD=x\n", 3, "KEY=value with KEY"),
            ("A='open\nB=2\n", 1, "single-quoted value is not closed"),
            ("A=\"open\\\"\n", 1, "double-quoted value is not closed"),
            ("A=1\nB='x' junk\n", 2, "after the closing quote"),
            ("A=\"x\"y\n", 1, "after the closing quote"),
            ("A='it''s'\n", 1, "after the closing quote"),
            ("-A=1\n", 1, "KEY=value with KEY"),
        ] {
            let err = parse_dotenv(text.as_bytes()).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.message.contains(expected), "{text:?}: {}", err.message);
            for secret in ["s3cr3t", "open", "junk"] {
                assert!(!err.message.contains(secret), "{}", err.message);
            }
        }
    }

    #[test]
    fn dotenv_line_numbers_count_lines_inside_quotes() {
        let err = parse_dotenv(b"A=\"1\n2\n3\"\nB='x' y\n").unwrap_err();
        assert_eq!(err.line, 4);
    }

    #[test]
    fn dotenv_keeps_odd_bytes_in_values() {
        let values = parse_dotenv(b"A='s3cr3t&/#?@:x y'\nB=\xff\xfe\nC=\"}$\"\n").unwrap();
        assert_eq!(values[0].1, b"s3cr3t&/#?@:x y");
        assert_eq!(values[1].1, b"\xff\xfe");
        assert_eq!(values[2].1, b"}$");
    }

    #[test]
    fn file_names_become_variable_names() {
        for (file, name) in [
            ("DB_HOST", "DB_HOST"),
            ("db-host", "db_host"),
            ("tls.crt", "tls_crt"),
            ("jwt-secret", "jwt_secret"),
            ("1st", "_1st"),
            ("a b", "a_b"),
            (".hidden", "_hidden"),
            ("é", "__"),
        ] {
            assert_eq!(variable_name(file.as_bytes()), name, "{file}");
        }
        assert!(pitcrew_template::is_valid_name(&variable_name(b"9-x.y")));
    }

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(strip_one_newline(b"pw\n".to_vec()), b"pw");
        assert_eq!(strip_one_newline(b"pw\r\n".to_vec()), b"pw");
        assert_eq!(strip_one_newline(b"pw\n\n".to_vec()), b"pw\n");
        assert_eq!(strip_one_newline(b"pw".to_vec()), b"pw");
        assert_eq!(strip_one_newline(b"\n".to_vec()), b"");
    }

    #[test]
    fn assignments_split_at_the_first_equals_and_hide_the_value() {
        let assignment: Assignment = "URL=a=b\nc".parse().unwrap();
        assert_eq!(assignment.name, "URL");
        assert_eq!(assignment.value, b"a=b\nc");
        assert!(!format!("{assignment:?}").contains("a=b"));
        let err = "s3cr3t".parse::<Assignment>().unwrap_err();
        assert!(!err.contains("s3cr3t") && err.contains("KEY=VALUE"), "{err}");
        let err = "1X=v".parse::<Assignment>().unwrap_err();
        assert!(err.contains("\"1X\""), "{err}");
        let empty: Assignment = "E=".parse().unwrap();
        assert!(empty.value.is_empty());
    }

    #[test]
    fn debug_shows_no_value() {
        let sources = Sources {
            environment: vec![("PASSWORD".into(), "s3cr3t".into())],
            assignments: vec!["K=s3cr3t".parse().unwrap()],
            ..Sources::default()
        };
        let shown = format!("{sources:?}");
        assert!(shown.contains("PASSWORD") && !shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn later_sources_win() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join(".env");
        std::fs::write(&env_file, "A=file\nB=file\nC=file\n").unwrap();
        let vars = dir.path().join("vars");
        std::fs::create_dir(&vars).unwrap();
        std::fs::write(vars.join("B"), "dir\n").unwrap();
        std::fs::write(vars.join("C"), "dir\n").unwrap();
        let sources = Sources {
            environment: vec![("A".into(), "env".into()), ("Z".into(), "env".into())],
            env_files: vec![env_file],
            vars_dirs: vec![vars],
            assignments: vec!["C=set".parse().unwrap()],
        };
        let values = sources.load().unwrap();
        let get = |name: &str| String::from_utf8(values[name].clone()).unwrap();
        assert_eq!(
            (get("Z"), get("A"), get("B"), get("C")),
            ("env".into(), "file".into(), "dir".into(), "set".into())
        );
    }

    #[test]
    fn colliding_vars_dir_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-host"), "a").unwrap();
        std::fs::write(dir.path().join("db.host"), "b").unwrap();
        let err = read_vars_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("db-host") && err.contains("db.host") && err.contains("db_host"),
            "{err}"
        );
    }

    #[test]
    fn scoped_assignments_do_not_leak_into_the_shared_values() {
        let shared: Values = [("A".to_owned(), b"1".to_vec())].into_iter().collect();
        let mut scope = Scoped::new(&shared);
        scope.set("B", b"2".to_vec());
        scope.set("A", b"3".to_vec());
        assert_eq!(scope.get("A"), Some(&b"3"[..]));
        assert_eq!(scope.get("B"), Some(&b"2"[..]));
        assert_eq!(Scoped::new(&shared).get("B"), None);
        assert_eq!(shared["A"], b"1");
    }
}
