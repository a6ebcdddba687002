//! The optional render step (`--render-template` / `--render-output`): before the actions run,
//! each template is expanded (`${VAR}`, pitcrew-template's envsubst grammar, the engine
//! pitcrew-render uses) with this process's environment into the file the app reads.
//!
//! The usual case is a template inside the watched ConfigMap and an output in an emptyDir the
//! app reads: the ConfigMap changes, the output is rendered again, then the app is told.
//! Outputs are written all-or-nothing: every output is staged (a temporary file next to it)
//! before any is put in place, and each goes in place by an atomic rename, so the app never
//! sees a half-written file nor a mix of old and new outputs from one render. An output whose
//! content is unchanged is left alone (its mtime too).
//!
//! Messages name templates, outputs, variables and positions, never a value.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::{AtomicFile, FileError, Outcome, Staged, WriteOptions};
use pitcrew_template::{Options, Problems, VarMap};

/// One `--render-template` with the `--render-output` at the same position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderPair {
    /// The template to read.
    pub template: PathBuf,
    /// The file to write.
    pub output: PathBuf,
}

/// Why a render failed.
#[derive(Debug)]
pub enum RenderError {
    /// A template could not be read (exit 66 at start) or an output written (74).
    File(FileError),
    /// A template has problems (exit 78 at start): every one, with positions.
    Template {
        /// The template.
        template: PathBuf,
        /// What is wrong in it.
        problems: Problems,
    },
}

impl RenderError {
    /// The exit code when this happens at start.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RenderError::File(err) => err.exit_code(),
            RenderError::Template { .. } => ExitCode::Config,
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::File(err) => write!(f, "{err}"),
            RenderError::Template { template, problems } => {
                // Problems are `source:line:column: message`, one per line; one log line
                // holds them all, separated.
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "template {} has {} problem{}: {}",
                    template.display(),
                    lines.len(),
                    if lines.len() == 1 { "" } else { "s" },
                    lines.join("; ")
                )
            }
        }
    }
}

/// The render step: the pairs and the variables they are expanded with.
pub struct Renderer {
    pairs: Vec<RenderPair>,
    vars: VarMap,
}

impl fmt::Debug for Renderer {
    /// Names only: values are secrets as far as this crate knows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("pairs", &self.pairs)
            .field("variables", &self.vars.len())
            .finish()
    }
}

impl Renderer {
    /// A render step expanding with `environment` (names that are not valid variable names,
    /// or not UTF-8, can never be referenced and are left out).
    pub fn new(pairs: Vec<RenderPair>, environment: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let mut vars = VarMap::default();
        for (name, value) in environment {
            if let Ok(name) = name.into_string()
                && pitcrew_template::is_valid_name(&name)
            {
                vars.insert(name, value.into_encoded_bytes());
            }
        }
        Renderer { pairs, vars }
    }

    /// Whether there is nothing to render.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[RenderPair] {
        &self.pairs
    }

    /// Renders every pair; all outputs are put in place only when every template rendered
    /// (see the module docs). Returns what happened to each output.
    pub fn render(&self) -> Result<Vec<(PathBuf, Outcome)>, RenderError> {
        let mut staged: Vec<Staged> = Vec::with_capacity(self.pairs.len());
        for pair in &self.pairs {
            staged.push(self.render_one(pair)?);
        }
        let mut done = Vec::with_capacity(staged.len());
        for file in staged {
            let output = file.destination().to_owned();
            let written = file.commit().map_err(RenderError::File)?;
            done.push((output, written.outcome));
        }
        Ok(done)
    }

    fn render_one(&self, pair: &RenderPair) -> Result<Staged, RenderError> {
        let input = std::fs::File::open(&pair.template)
            .map_err(|err| RenderError::File(FileError::input(&pair.template, "read", err)))?;
        let mut output =
            AtomicFile::create(&pair.output, WriteOptions::default()).map_err(RenderError::File)?;
        // `${V=word}` assigns: a copy per render, so one render's assignments never leak
        // into the next.
        let mut vars = self.vars.clone();
        let source = pair.template.display().to_string();
        let report =
            match pitcrew_template::render(input, &mut output, &source, &mut vars, &Options::default()) {
                Ok(report) => report,
                Err(pitcrew_template::Error::Template(problems)) => {
                    return Err(RenderError::Template {
                        template: pair.template.clone(),
                        problems,
                    });
                }
                Err(pitcrew_template::Error::Read { error, .. }) => {
                    return Err(RenderError::File(FileError::input(&pair.template, "read", error)));
                }
                Err(pitcrew_template::Error::Write(error)) => {
                    return Err(RenderError::File(FileError::output(&pair.output, "write", error)));
                }
            };
        if !report.unset.is_empty() {
            let unset: Vec<&str> = report.unset.iter().map(String::as_str).collect();
            tracing::warn!(
                template = %pair.template.display(),
                unset = unset.join(","),
                "{}: not set: {} (they expand to nothing; give them a default in the template, e.g. ${{{}:-x}})",
                pair.template.display(),
                unset.join(", "),
                unset[0]
            );
        }
        output.stage().map_err(RenderError::File)
    }
}

/// `/a/out.conf (replaced), /b/x (unchanged)`, for the reload log line.
pub fn describe(done: &[(PathBuf, Outcome)]) -> String {
    let parts: Vec<String> = done
        .iter()
        .map(|(output, outcome)| format!("{} ({})", output.display(), outcome.as_str()))
        .collect();
    parts.join(", ")
}

/// Whether `path` is, or is inside, one of `roots` (for "does the template live in a watched
/// directory that may not exist yet").
pub fn is_under(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value)))
            .collect()
    }

    #[test]
    fn renders_every_output_with_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, t2) = (dir.path().join("a.tmpl"), dir.path().join("b.tmpl"));
        fs::write(&t1, "listen ${PORT}\nname ${NAME:-dflt}\n").unwrap();
        fs::write(&t2, "$$literal ${MISSING}.\n").unwrap();
        let (o1, o2) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
        let renderer = Renderer::new(
            vec![
                RenderPair {
                    template: t1.clone(),
                    output: o1.clone(),
                },
                RenderPair {
                    template: t2,
                    output: o2.clone(),
                },
            ],
            env(&[("PORT", "8080"), ("not a name", "x")]),
        );
        let done = renderer.render().unwrap();
        assert_eq!(fs::read_to_string(&o1).unwrap(), "listen 8080\nname dflt\n");
        assert_eq!(fs::read_to_string(&o2).unwrap(), "$literal .\n");
        assert_eq!(
            describe(&done),
            format!("{} (created), {} (created)", o1.display(), o2.display())
        );
        // Unchanged content: left alone.
        let done = renderer.render().unwrap();
        assert!(done.iter().all(|(_, outcome)| *outcome == Outcome::Unchanged));
        fs::write(&t1, "listen ${PORT}!\n").unwrap();
        let done = renderer.render().unwrap();
        assert_eq!(done[0].1, Outcome::Replaced);
        assert_eq!(fs::read_to_string(&o1).unwrap(), "listen 8080!\n");
        let debug = format!("{renderer:?}");
        assert!(!debug.contains("8080"), "{debug}");
    }

    #[test]
    fn a_broken_template_writes_no_output_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (dir.path().join("good.tmpl"), dir.path().join("bad.tmpl"));
        fs::write(&good, "new ${A}\n").unwrap();
        fs::write(&bad, "x ${UNCLOSED\n${B%x}\n").unwrap();
        let (o1, o2) = (dir.path().join("good.conf"), dir.path().join("bad.conf"));
        fs::write(&o1, "old\n").unwrap();
        let renderer = Renderer::new(
            vec![
                RenderPair {
                    template: good,
                    output: o1.clone(),
                },
                RenderPair {
                    template: bad.clone(),
                    output: o2.clone(),
                },
            ],
            env(&[("A", "secret-value")]),
        );
        let err = renderer.render().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config);
        let text = err.to_string();
        assert!(
            text.contains(&format!("template {} has 2 problems", bad.display())),
            "{text}"
        );
        assert!(!text.contains("secret-value"), "{text}");
        assert_eq!(fs::read_to_string(&o1).unwrap(), "old\n", "all or nothing");
        assert!(!o2.exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("pitcrew-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn missing_templates_and_unwritable_outputs_have_their_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("t");
        let renderer = Renderer::new(
            vec![RenderPair {
                template: template.clone(),
                output: dir.path().join("out"),
            }],
            env(&[]),
        );
        let err = renderer.render().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
        assert!(err.to_string().contains(&template.display().to_string()), "{err}");

        fs::write(&template, "x").unwrap();
        let renderer = Renderer::new(
            vec![RenderPair {
                template,
                output: dir.path().join("missing-dir/out"),
            }],
            env(&[]),
        );
        let err = renderer.render().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Io, "{err}");
        assert!(err.to_string().contains("missing-dir/out"), "{err}");
    }
}
