//! What a run reads and writes: the shape given by `--in` and `--out`, the files of an input
//! tree, which of them are rendered (`--include`) and which copied, and where secrets go.
//!
//! Everything here only looks at the file system; nothing is written.

use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};
use pitcrew_core::files::{EntryKind, FileError};

use crate::RenderError;

/// Where the input comes from and where the output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// No `--in`, no `--out`: stdin to stdout, as GNU envsubst.
    Stream,
    /// `--in FILE` without `--out`.
    FileToStdout {
        /// The template.
        source: PathBuf,
    },
    /// `--out FILE` without `--in`: stdin to a file, atomically.
    StdinToFile {
        /// The output.
        dest: PathBuf,
    },
    /// `--in FILE --out FILE` (or `--out DIR/`, which takes the input's file name).
    FileToFile {
        /// The template.
        source: PathBuf,
        /// The output.
        dest: PathBuf,
    },
    /// `--in DIR --out DIR`.
    Tree {
        /// The input tree.
        source: PathBuf,
        /// The output tree.
        dest: PathBuf,
    },
}

impl Shape {
    /// Works out the shape from the flags, checking that the input exists (66) and that the
    /// flags fit together (64).
    pub fn resolve(input: Option<&Path>, output: Option<&Path>) -> Result<Shape, RenderError> {
        let Some(input) = input else {
            return match output {
                None => Ok(Shape::Stream),
                Some(dest) if dest.is_dir() => Err(RenderError::Usage(format!(
                    "--out {} is a directory, but the template comes from stdin, which has no file \
                     name: give the output file's path, or the template with --in",
                    dest.display()
                ))),
                Some(dest) => Ok(Shape::StdinToFile {
                    dest: dest.to_owned(),
                }),
            };
        };
        let metadata = std::fs::metadata(input).map_err(|err| FileError::input(input, "read --in", err))?;
        if metadata.is_dir() {
            let Some(dest) = output else {
                return Err(RenderError::Usage(format!(
                    "--in {} is a directory: give --out DIR for the rendered tree",
                    input.display()
                )));
            };
            if dest.exists() && !dest.is_dir() {
                return Err(RenderError::Usage(format!(
                    "--in {} is a directory but --out {} is not: a tree renders into a directory",
                    input.display(),
                    dest.display()
                )));
            }
            let (inside, outside) = (absolute(input), absolute(dest));
            if outside.starts_with(&inside) || inside.starts_with(&outside) {
                return Err(RenderError::Usage(format!(
                    "--in {} and --out {} overlap: the outputs would become templates of the next \
                     run (or overwrite them); use separate directories",
                    input.display(),
                    dest.display()
                )));
            }
            return Ok(Shape::Tree {
                source: input.to_owned(),
                dest: dest.to_owned(),
            });
        }
        if !metadata.is_file() {
            return Err(FileError::invalid(
                input,
                "read --in",
                "neither a regular file nor a directory (a FIFO, socket or device)".into(),
            )
            .into());
        }
        let Some(output) = output else {
            return Ok(Shape::FileToStdout {
                source: input.to_owned(),
            });
        };
        let names_a_directory = output.is_dir() || output.as_os_str().as_encoded_bytes().ends_with(b"/");
        let dest = match input.file_name() {
            Some(name) if names_a_directory => output.join(name),
            _ => output.to_owned(),
        };
        if absolute(&dest) == absolute(input) {
            return Err(RenderError::Usage(format!(
                "--out {} is the template itself: rendering in place would lose the template",
                dest.display()
            )));
        }
        Ok(Shape::FileToFile {
            source: input.to_owned(),
            dest,
        })
    }

    /// Where `--secret` files go when `--secrets-dir` is not given: the output directory.
    pub fn default_secrets_dir(&self) -> Option<PathBuf> {
        match self {
            Shape::Tree { dest, .. } => Some(dest.clone()),
            Shape::FileToFile { dest, .. } | Shape::StdinToFile { dest } => Some(
                dest.parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned(),
            ),
            Shape::Stream | Shape::FileToStdout { .. } => None,
        }
    }
}

/// `path` made absolute without needing it to exist: the longest existing ancestor is
/// resolved (symlinks and all), the rest appended; `..` and `.` are resolved by hand.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut normal = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return rest.iter().rev().fold(canonical, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normal,
        }
    }
}

/// One `--include` glob.
#[derive(Debug, Clone)]
pub struct Include {
    text: String,
    pattern: Pattern,
}

impl std::str::FromStr for Include {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pattern = Pattern::new(text).map_err(|err| {
            format!(
                "invalid --include glob {text:?}: {} at character {}; expected e.g. *.yaml or conf.d/**/*.conf",
                err.msg, err.pos
            )
        })?;
        Ok(Include {
            text: text.to_owned(),
            pattern,
        })
    }
}

impl Include {
    /// Whether `relative` (a path inside the input tree) matches. A glob without `/` is
    /// matched against the file name at any depth (`*.yaml`); one with `/` against the whole
    /// relative path, where `*` stays within one directory and `**` spans any number.
    pub fn matches(&self, relative: &Path) -> bool {
        let options = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        if self.text.contains('/') {
            self.pattern.matches_path_with(relative, options)
        } else {
            relative
                .file_name()
                .is_some_and(|name| self.pattern.matches_with(&name.to_string_lossy(), options))
        }
    }

    /// The glob as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What happens to one input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Rendered as a template.
    Render,
    /// Copied byte for byte (a tree file that no `--include` matches).
    Copy,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// What is read (symlinks resolved).
    pub source: PathBuf,
    /// How the source is named in messages: the path as the user sees it.
    pub shown: PathBuf,
    /// Where it goes.
    pub dest: PathBuf,
    /// Render or copy.
    pub action: Action,
}

/// The outputs of a run, directories first.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Directories the outputs need (those of the tree, and the outputs' parents).
    pub directories: Vec<PathBuf>,
    /// The files, in tree order.
    pub jobs: Vec<Job>,
}

impl Plan {
    /// The plan for a file-writing shape; empty for the others.
    pub fn new(shape: &Shape, include: &[Include]) -> Result<Plan, RenderError> {
        if !include.is_empty() && !matches!(shape, Shape::Tree { .. }) {
            return Err(RenderError::Usage(
                "--include picks the files of an input tree: it needs --in DIR and --out DIR".into(),
            ));
        }
        let mut plan = Plan::default();
        match shape {
            Shape::FileToFile { source, dest } => {
                plan.add_parent(dest);
                plan.jobs.push(Job {
                    source: source.clone(),
                    shown: source.clone(),
                    dest: dest.clone(),
                    action: Action::Render,
                });
            }
            Shape::StdinToFile { dest } => plan.add_parent(dest),
            Shape::Tree { source, dest } => {
                plan.directories.push(dest.clone());
                let mut used = vec![false; include.len()];
                for entry in pitcrew_core::files::walk(source)? {
                    let target = dest.join(&entry.relative);
                    if entry.kind == EntryKind::Directory {
                        plan.directories.push(target);
                        continue;
                    }
                    let mut action = if include.is_empty() {
                        Action::Render
                    } else {
                        Action::Copy
                    };
                    for (index, glob) in include.iter().enumerate() {
                        if glob.matches(&entry.relative) {
                            used[index] = true;
                            action = Action::Render;
                        }
                    }
                    plan.jobs.push(Job {
                        source: entry.source,
                        shown: source.join(&entry.relative),
                        dest: target,
                        action,
                    });
                }
                for (glob, used) in include.iter().zip(used) {
                    if !used {
                        tracing::warn!(
                            "--include {:?} matches no file in {}: those files are copied, not rendered",
                            glob.as_str(),
                            source.display()
                        );
                    }
                }
            }
            Shape::Stream | Shape::FileToStdout { .. } => {}
        }
        Ok(plan)
    }

    fn add_parent(&mut self, dest: &Path) {
        if let Some(parent) = dest.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            self.directories.push(parent.to_owned());
        }
    }

    /// Every output path, for clash checks.
    pub fn outputs(&self) -> impl Iterator<Item = &Path> {
        self.jobs.iter().map(|job| job.dest.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn include(text: &str) -> Include {
        text.parse().unwrap()
    }

    #[test]
    fn globs_without_a_slash_match_file_names_at_any_depth() {
        let yaml = include("*.yaml");
        assert!(yaml.matches(Path::new("app.yaml")));
        assert!(yaml.matches(Path::new("a/b/app.yaml")));
        assert!(!yaml.matches(Path::new("app.yaml.bak")));
        let rooted = include("conf.d/*.conf");
        assert!(rooted.matches(Path::new("conf.d/x.conf")));
        assert!(!rooted.matches(Path::new("conf.d/sub/x.conf")));
        assert!(!rooted.matches(Path::new("other/conf.d/x.conf")));
        let deep = include("conf.d/**/*.conf");
        assert!(deep.matches(Path::new("conf.d/sub/x.conf")));
        assert!(deep.matches(Path::new("conf.d/x.conf")));
        assert!(include("*").matches(Path::new(".hidden")));
        let err = "[z-a".parse::<Include>().unwrap_err();
        assert!(err.contains("\"[z-a\""), "{err}");
    }

    #[test]
    fn shapes_follow_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.yaml");
        std::fs::write(&file, "x").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(Shape::resolve(None, None).unwrap(), Shape::Stream);
        assert_eq!(
            Shape::resolve(Some(&file), Some(&out)).unwrap(),
            Shape::FileToFile {
                source: file.clone(),
                dest: out.join("app.yaml")
            }
        );
        let new_dir = dir.path().join("new/");
        assert_eq!(
            Shape::resolve(Some(&file), Some(&new_dir)).unwrap(),
            Shape::FileToFile {
                source: file.clone(),
                dest: dir.path().join("new/app.yaml")
            }
        );
        for (input, output, expected) in [
            (None, Some(out.as_path()), "stdin"),
            (Some(dir.path()), None, "--out DIR"),
            (Some(dir.path()), Some(file.as_path()), "is not"),
            (Some(dir.path()), Some(out.as_path()), "overlap"),
            (Some(out.as_path()), Some(dir.path()), "overlap"),
            (Some(file.as_path()), Some(file.as_path()), "template itself"),
        ] {
            let err = Shape::resolve(input, output).unwrap_err();
            assert_eq!(err.exit_code().code(), 64, "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = Shape::resolve(Some(&dir.path().join("missing")), None).unwrap_err();
        assert_eq!(err.exit_code().code(), 66, "{err}");
    }

    #[test]
    fn absolute_resolves_what_exists_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(absolute(&dir.path().join("a/../b/c")), canonical.join("b/c"));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).ok();
        assert_eq!(absolute(&dir.path().join("link/x")), canonical.join("x"));
    }
}
