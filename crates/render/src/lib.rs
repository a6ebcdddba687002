//! `pitcrew-render`: the init-container replacement for `envsubst < /t/app.yaml > /cfg/app.yaml`
//! and `openssl rand -base64 32 > /cfg/jwt-secret`.
//!
//! A run has four steps, and only the last one puts anything in place:
//!
//! 1. **Gather**: the shape (`--in`/`--out`, see [`plan::Shape`]), the values (see
//!    [`values`]), the secrets (read back or generated in memory, see [`secrets`]) and the
//!    list of outputs ([`plan::Plan`]).
//! 2. **Check**: every input file is rendered (or, for copies, read) into a comparison with
//!    its destination, writing nothing. Every problem of every template is collected; any
//!    problem ends the run here with the output directory exactly as it was, mtime included.
//! 3. **Stage**: generated secrets and the outputs that differ from what is there are written
//!    to temporary files next to their destinations (identical ones get none, so a directory
//!    watcher sees nothing). An unwritable output, a template changed since the check, or a
//!    signal ends the run here: the temporary files and the directories this run created are
//!    removed again, so nothing is half-written and nothing already there is touched.
//! 4. **Commit**: generated secrets are put in place first (only if still absent), then every
//!    output by an atomic rename; identical outputs are only given `--mode`/`--owner`. A signal
//!    that arrives now does not interrupt this step (renames take milliseconds, and a finished
//!    set of outputs is better than a mixed one); the run ends normally.
//!
//! stdin to stdout (the GNU envsubst drop-in), and a file to stdout, stream instead: output is
//! written while the input is read, so any size works in bounded memory, but a failing run may
//! have written part of its output (secrets are still committed only after a successful
//! render). stdin to a file has no check step (stdin cannot be read twice): its temporary file
//! comes and goes even when the template has a problem.

pub mod cli;
mod error;
pub mod plan;
pub mod secrets;
pub mod values;

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use pitcrew_core::files::{
    self, AtomicFile, DEFAULT_FILE_MODE, FileError, Mode, Outcome, Overwrite, Owner, Staged, WriteOptions,
    Written,
};
use pitcrew_core::stop::Stop;
use pitcrew_template::{Options, Problems, Report};

pub use error::RenderError;
use plan::{Action, Include, Plan, Shape};
use secrets::{Origin, Secret, SecretSpec};
use values::{Scoped, Sources, Values};

/// Everything a run needs, parsed and checked by [`cli::Args::config`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `--in`: a template file or a tree; `None` reads stdin.
    pub input: Option<PathBuf>,
    /// `--out`: a file or a directory; `None` writes stdout.
    pub output: Option<PathBuf>,
    /// `--include`: which files of a tree are rendered (all when empty).
    pub include: Vec<Include>,
    /// Where values come from.
    pub sources: Sources,
    /// Allow-list, `--strict`, `--no-empty`.
    pub options: Options,
    /// `--mode` for outputs (`None`: new files 0644, copies the source's, existing keep theirs).
    pub mode: Option<Mode>,
    /// `--owner` for outputs, secrets and the directories created.
    pub owner: Option<Owner>,
    /// `--no-overwrite`: outputs that exist are kept.
    pub no_overwrite: bool,
    /// `--secret`.
    pub secrets: Vec<SecretSpec>,
    /// `--secrets-dir`; by default the output directory.
    pub secrets_dir: Option<PathBuf>,
    /// `--secret-mode`.
    pub secret_mode: Mode,
}

/// What a run did, for the last log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Outputs created or replaced.
    pub written: usize,
    /// Outputs whose content was already right (left alone).
    pub unchanged: usize,
    /// Outputs kept because of `--no-overwrite`.
    pub kept: usize,
    /// Secrets generated and written.
    pub secrets_generated: usize,
    /// Secrets that existed and were kept.
    pub secrets_kept: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} written, {} unchanged, {} kept; secrets: {} generated, {} kept",
            self.written, self.unchanged, self.kept, self.secrets_generated, self.secrets_kept
        )
    }
}

/// Everything gathered before anything is rendered.
struct Gathered {
    shape: Shape,
    values: Values,
    secrets: Vec<Secret>,
    plan: Plan,
}

impl Config {
    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            mode: self.mode,
            owner: self.owner,
            overwrite: if self.no_overwrite {
                Overwrite::Keep
            } else {
                Overwrite::Replace
            },
        }
    }

    fn secret_options(&self) -> WriteOptions {
        WriteOptions {
            mode: Some(self.secret_mode),
            owner: self.owner,
            overwrite: Overwrite::Keep,
        }
    }

    /// Step 1: everything that can be known without rendering.
    fn gather(&self) -> Result<Gathered, RenderError> {
        let shape = Shape::resolve(self.input.as_deref(), self.output.as_deref())?;
        let secrets_dir = match (&self.secrets_dir, shape.default_secrets_dir()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, default) => default,
        };
        if !self.secrets.is_empty() && secrets_dir.is_none() {
            return Err(RenderError::Usage(
                "--secret needs a directory to keep the secrets in: give --secrets-dir DIR (or --out)".into(),
            ));
        }
        if let (Some(dir), Shape::Tree { source, .. }) = (&secrets_dir, &shape)
            && plan::absolute(dir).starts_with(plan::absolute(source))
        {
            return Err(RenderError::Usage(format!(
                "--secrets-dir {} is inside --in {}: the secrets would be rendered as templates on the \
                 next run",
                dir.display(),
                source.display()
            )));
        }
        for spec in &self.secrets {
            let variable = spec.variable();
            if self
                .sources
                .assignments
                .iter()
                .any(|assignment| assignment.name == variable)
            {
                return Err(RenderError::Usage(format!(
                    "--set {variable}=… and --secret {} both give the variable {variable}: drop one",
                    spec.name
                )));
            }
        }
        let plan = Plan::new(&shape, &self.include)?;
        let mut values = self.sources.load()?;
        let secrets = match &secrets_dir {
            Some(dir) if !self.secrets.is_empty() => secrets::resolve(&self.secrets, dir)?,
            _ => Vec::new(),
        };
        for secret in &secrets {
            if plan
                .outputs()
                .any(|output| plan::absolute(output) == plan::absolute(&secret.path))
            {
                return Err(RenderError::Usage(format!(
                    "--secret {} would be written to {}, which is also a rendered output",
                    secret.spec.name,
                    secret.path.display()
                )));
            }
            values.insert(secret.spec.variable(), secret.value.clone());
        }
        Ok(Gathered {
            shape,
            values,
            secrets,
            plan,
        })
    }
}

/// Renders as configured; see the module docs. `stdin` and `stdout` are used only by the
/// shapes that read or write them.
pub fn run(
    config: &Config,
    stdin: impl Read,
    mut stdout: impl Write,
    stop: &Stop,
) -> Result<Summary, RenderError> {
    let gathered = config.gather()?;
    let checked = check(config, &gathered, stop)?;
    let mut created = Vec::new();
    let result = match &gathered.shape {
        // Streamed output cannot wait for a commit; only the secrets (if any) are staged and
        // committed after a successful render.
        Shape::Stream | Shape::FileToStdout { .. } => {
            stage(config, &gathered, &checked, io::empty(), stop, &mut created).and_then(|staging| {
                match &gathered.shape {
                    Shape::FileToStdout { source } => {
                        let file = File::open(source).map_err(|err| FileError::input(source, "read", err))?;
                        let shown = source.display().to_string();
                        stream(config, &gathered.values, file, &shown, &mut stdout, stop)?;
                    }
                    _ => stream(config, &gathered.values, stdin, "<stdin>", &mut stdout, stop)?,
                }
                Ok(staging)
            })
        }
        Shape::StdinToFile { .. } | Shape::FileToFile { .. } | Shape::Tree { .. } => {
            stage(config, &gathered, &checked, stdin, stop, &mut created)
        }
    };
    match result {
        Ok(staging) => commit(config, &gathered, staging),
        Err(err) => {
            remove_created(&created);
            Err(err)
        }
    }
}

/// Renders one input to stdout (or any writer), streaming.
fn stream(
    config: &Config,
    values: &Values,
    input: impl Read,
    source: &str,
    output: &mut impl Write,
    stop: &Stop,
) -> Result<(), RenderError> {
    let mut output = io::BufWriter::with_capacity(64 * 1024, output);
    let report = match render_one(config, values, input, source, &mut output, None, true, stop)? {
        Ok(report) => report,
        Err(problems) => {
            log_problems(std::slice::from_ref(&problems));
            return Err(RenderError::Template(vec![problems]));
        }
    };
    output.flush().map_err(RenderError::Stdout)?;
    tracing::info!(
        source,
        bytes_in = report.bytes_in,
        bytes_out = report.bytes_out,
        expansions = report.expansions,
        "rendered {source} to stdout ({} bytes in, {} bytes out, {} expansions)",
        report.bytes_in,
        report.bytes_out,
        report.expansions
    );
    Ok(())
}

/// Renders one template into `output`: its report, or its problems. Read and write failures
/// and signals are errors; `dest` names the output file in write errors (stdout when `None`).
/// `warn` logs the unset variables (once per template and run: the check pass does it for
/// files, which are rendered twice).
#[allow(clippy::too_many_arguments)]
fn render_one(
    config: &Config,
    values: &Values,
    input: impl Read,
    source: &str,
    output: impl Write,
    dest: Option<&Path>,
    warn: bool,
    stop: &Stop,
) -> Result<Result<Report, Problems>, RenderError> {
    let mut scope = Scoped::new(values);
    let result = pitcrew_template::render(
        StopReader { inner: input, stop },
        output,
        source,
        &mut scope,
        &config.options,
    );
    stop.check()?;
    match result {
        Ok(report) => {
            if warn {
                warn_unset(config, source, &report);
            }
            Ok(Ok(report))
        }
        Err(pitcrew_template::Error::Template(problems)) => Ok(Err(problems)),
        Err(pitcrew_template::Error::Read { error, .. }) => {
            Err(FileError::input(source, "read", error).into())
        }
        Err(pitcrew_template::Error::Write(error)) => Err(match dest {
            Some(dest) => FileError::output(dest, "write", error).into(),
            None => RenderError::Stdout(error),
        }),
    }
}

/// One error line per template problem (they name variables and positions, never values).
fn log_problems(problems: &[Problems]) {
    for problem in problems.iter().flat_map(Problems::iter) {
        tracing::error!("{problem}");
    }
}

/// In the default (non-strict) mode an unset variable expands to nothing, as in GNU envsubst;
/// say which ones, by name, since that is usually a mistake in the pod spec.
fn warn_unset(config: &Config, source: &str, report: &Report) {
    if config.options.strict {
        return;
    }
    let unset: Vec<&str> = report.unset.iter().map(String::as_str).collect();
    if !unset.is_empty() {
        tracing::warn!(
            source,
            unset = unset.join(","),
            "{source}: not set: {} (without a default in the template they expand to nothing; \
             --strict makes that an error)",
            unset.join(", ")
        );
    }
}

/// What the check pass learned about one output file.
#[derive(Debug, Clone, Copy, Default)]
struct Checked {
    /// The destination is a regular file already.
    existed: bool,
    /// ... holding exactly the new content.
    equal: bool,
    /// Bytes of the new content.
    bytes: u64,
    /// The input's mode (a copy's default mode).
    source_mode: Option<Mode>,
}

/// The check pass over every input file of a tree or file job: each template is rendered
/// into a comparison with its destination, nothing is written (not even a temporary file, so
/// a failing run leaves the output directory as it was, mtime included). Every problem of
/// every template is collected; any problem fails the pass.
fn check(config: &Config, gathered: &Gathered, stop: &Stop) -> Result<Vec<Checked>, RenderError> {
    let mut problems = Vec::new();
    let mut checked = Vec::with_capacity(gathered.plan.jobs.len());
    for job in &gathered.plan.jobs {
        stop.check()?;
        let mut input = File::open(&job.source).map_err(|err| FileError::input(&job.shown, "read", err))?;
        let source_mode = input
            .metadata()
            .map(|metadata| Mode(metadata.permissions().mode() & 0o7777))
            .map_err(|err| FileError::input(&job.shown, "read", err))?;
        let mut compare = Compare::new(&job.dest);
        match job.action {
            Action::Render => {
                let shown = job.shown.display().to_string();
                if let Err(found) = render_one(
                    config,
                    &gathered.values,
                    input,
                    &shown,
                    &mut compare,
                    None,
                    true,
                    stop,
                )? {
                    problems.push(found);
                }
            }
            Action::Copy => {
                io::copy(
                    &mut StopReader {
                        inner: &mut input,
                        stop,
                    },
                    &mut compare,
                )
                .map_err(|err| {
                    stop.check().map_or_else(RenderError::from, |()| {
                        FileError::input(&job.shown, "read", err).into()
                    })
                })?;
            }
        }
        compare.finish();
        checked.push(Checked {
            existed: compare.existed,
            equal: compare.equal,
            bytes: compare.bytes,
            source_mode: Some(source_mode),
        });
    }
    if !problems.is_empty() {
        log_problems(&problems);
        tracing::info!("no output was written: every template is checked before any file is");
        return Err(RenderError::Template(problems));
    }
    Ok(checked)
}

/// An output on its way: a staged file, or a destination that already holds the right
/// content (or is kept by --no-overwrite) and is only settled at commit time.
enum Pending {
    Staged(Staged),
    Existing { dest: PathBuf, bytes: u64 },
}

/// The staged files of a run.
#[derive(Default)]
struct Staging {
    secrets: Vec<Staged>,
    /// With the input each came from, for the log.
    outputs: Vec<(PathBuf, Pending)>,
}

/// Step 2: secrets and outputs into temporary files; see the module docs. Outputs the check
/// pass found identical (or kept by --no-overwrite) get no temporary file at all.
fn stage(
    config: &Config,
    gathered: &Gathered,
    checked: &[Checked],
    stdin: impl Read,
    stop: &Stop,
    created: &mut Vec<PathBuf>,
) -> Result<Staging, RenderError> {
    let secret_dirs = gathered
        .secrets
        .iter()
        .filter(|secret| secret.origin == Origin::Generated)
        .filter_map(|secret| secret.path.parent().map(Path::to_owned));
    for directory in gathered.plan.directories.iter().cloned().chain(secret_dirs) {
        create_directory(&directory, config.owner, created)?;
    }
    let mut staging = Staging::default();
    for secret in &gathered.secrets {
        if secret.origin == Origin::Generated {
            let mut file = AtomicFile::create(&secret.path, config.secret_options())?;
            file.write_all(&secret.value)
                .map_err(|err| FileError::output(&secret.path, "write", err))?;
            staging.secrets.push(file.stage()?);
        }
    }
    let mut problems = Vec::new();
    if let Shape::StdinToFile { dest } = &gathered.shape {
        let mut file = AtomicFile::create(dest, config.write_options())?;
        match render_one(
            config,
            &gathered.values,
            stdin,
            "<stdin>",
            &mut file,
            Some(dest),
            true,
            stop,
        )? {
            Ok(_) => staging
                .outputs
                .push((PathBuf::from("<stdin>"), Pending::Staged(file.stage()?))),
            Err(found) => problems.push(found),
        }
    }
    for (job, checked) in gathered.plan.jobs.iter().zip(checked) {
        stop.check()?;
        if checked.existed && (checked.equal || config.no_overwrite) {
            let dest = job.dest.clone();
            staging.outputs.push((
                job.shown.clone(),
                Pending::Existing {
                    dest,
                    bytes: checked.bytes,
                },
            ));
            continue;
        }
        let file = match job.action {
            Action::Copy => files::copy_uncommitted(&job.source, &job.dest, config.write_options())?,
            Action::Render => {
                let input =
                    File::open(&job.source).map_err(|err| FileError::input(&job.shown, "read", err))?;
                let mut file = AtomicFile::create(&job.dest, config.write_options())?;
                let shown = job.shown.display().to_string();
                // Rendered a second time: a ConfigMap may have been swapped since the check.
                if let Err(found) = render_one(
                    config,
                    &gathered.values,
                    input,
                    &shown,
                    &mut file,
                    Some(&job.dest),
                    false,
                    stop,
                )? {
                    problems.push(found);
                    continue;
                }
                file
            }
        };
        staging
            .outputs
            .push((job.shown.clone(), Pending::Staged(file.stage()?)));
    }
    if !problems.is_empty() {
        log_problems(&problems);
        tracing::info!("no output was written");
        return Err(RenderError::Template(problems));
    }
    stop.check()?;
    Ok(staging)
}

/// Creates `directory` and its missing parents, remembering each one created so that a
/// failed run can remove them again.
fn create_directory(
    directory: &Path,
    owner: Option<Owner>,
    created: &mut Vec<PathBuf>,
) -> Result<(), RenderError> {
    let missing: Vec<&Path> = directory
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && !path.is_dir())
        .collect();
    for path in missing.into_iter().rev() {
        if files::create_dir_all(path, None, owner)? {
            tracing::debug!(path = %path.display(), "created directory {}", path.display());
            created.push(path.to_owned());
        }
    }
    Ok(())
}

/// Removes the directories a failed run created (newest first; only empty ones go).
fn remove_created(created: &[PathBuf]) {
    for directory in created.iter().rev() {
        let _ = std::fs::remove_dir(directory);
    }
}

/// Step 3: puts everything in place and logs each file.
fn commit(config: &Config, gathered: &Gathered, staging: Staging) -> Result<Summary, RenderError> {
    let mut summary = Summary::default();
    let mut staged_secrets = staging.secrets.into_iter();
    for secret in &gathered.secrets {
        let name = &secret.spec.name;
        let path = secret.path.display();
        if secret.origin == Origin::Existing {
            summary.secrets_kept += 1;
            tracing::info!(secret = %name, path = %path, "secret {name}: kept existing {path}");
            continue;
        }
        let Some(staged) = staged_secrets.next() else {
            break;
        };
        let written = staged.commit()?;
        if written.outcome != Outcome::Created {
            return Err(RenderError::Failure(format!(
                "secret {name}: {path} appeared while this run was rendering (another pitcrew-render \
                 writing the same directory?); it was kept and no output was written: run again"
            )));
        }
        summary.secrets_generated += 1;
        tracing::info!(
            secret = %name,
            path = %path,
            mode = %written.mode,
            "secret {name}: generated ({}, mode {}) into {path}",
            secret.spec.describe(),
            written.mode
        );
    }
    for (source, pending) in staging.outputs {
        let written = match pending {
            Pending::Staged(staged) => {
                let dest = staged.destination().to_owned();
                (dest, staged.commit()?)
            }
            Pending::Existing { dest, bytes } => {
                let written =
                    files::settle_existing(&dest, bytes, config.write_options())?.ok_or_else(|| {
                        RenderError::Failure(format!(
                            "{} changed while this run was rendering (another writer?); run again",
                            dest.display()
                        ))
                    })?;
                (dest, written)
            }
        };
        log_output(config, &mut summary, &source, &written.0, written.1);
    }
    Ok(summary)
}

/// The log line for one committed output.
fn log_output(config: &Config, summary: &mut Summary, source: &Path, dest: &Path, written: Written) {
    let (path, from, bytes, mode) = (dest.display(), source.display(), written.bytes, written.mode);
    match written.outcome {
        Outcome::Created | Outcome::Replaced => {
            summary.written += 1;
            let outcome = written.outcome.as_str();
            tracing::info!(
                path = %path, source = %from, bytes, mode = %mode, outcome,
                "{outcome} {path} ({bytes} bytes, mode {mode}) from {from}"
            );
        }
        Outcome::Unchanged => {
            summary.unchanged += 1;
            let fixed = if written.metadata_changed {
                format!("; set mode {mode}{}", owner_text(config.owner))
            } else {
                String::new()
            };
            tracing::info!(
                path = %path, source = %from, bytes, mode = %mode, outcome = "unchanged",
                "{path} is already up to date ({bytes} bytes): left alone, mtime kept{fixed}"
            );
        }
        Outcome::Kept => {
            summary.kept += 1;
            tracing::info!(
                path = %path, source = %from, outcome = "kept",
                "kept {path}: it exists and --no-overwrite is set"
            );
        }
    }
}

fn owner_text(owner: Option<Owner>) -> String {
    owner.map_or_else(String::new, |owner| format!(", owner {owner}"))
}

/// `--dry-run`: every check of a real run (flags, inputs, values, secrets, every template
/// rendered into nothing), then what would be done, on `out`. Writes no file.
pub fn dry_run(
    config: &Config,
    stdin: impl Read,
    out: &mut dyn Write,
    stop: &Stop,
) -> Result<(), RenderError> {
    let gathered = config.gather()?;
    let mut lines = Vec::new();
    // stdin or a file to stdout or stdin to a file: no check pass covers those.
    let streamed: Option<(Box<dyn Read>, String, Option<&Path>)> = match &gathered.shape {
        Shape::Stream => Some((Box::new(stdin), "<stdin>".to_owned(), None)),
        Shape::FileToStdout { source } => Some((
            Box::new(File::open(source).map_err(|err| FileError::input(source, "read", err))?),
            source.display().to_string(),
            None,
        )),
        Shape::StdinToFile { dest } => Some((Box::new(stdin), "<stdin>".to_owned(), Some(dest.as_path()))),
        Shape::FileToFile { .. } | Shape::Tree { .. } => None,
    };
    if let Some((input, source, dest)) = streamed {
        let mut compare = dest.map_or_else(Compare::nothing, Compare::new);
        if let Err(problems) = render_one(
            config,
            &gathered.values,
            input,
            &source,
            &mut compare,
            dest,
            true,
            stop,
        )? {
            log_problems(std::slice::from_ref(&problems));
            return Err(RenderError::Template(vec![problems]));
        }
        compare.finish();
        lines.push(match dest {
            Some(dest) => describe_output(config, "render", &source, dest, &compare.checked()),
            None => format!("would render {source} to stdout ({} bytes)", compare.bytes),
        });
    }
    let checked = check(config, &gathered, stop)?;
    let mut head = Vec::new();
    for directory in &gathered.plan.directories {
        if !directory.is_dir() {
            head.push(format!("would create directory {}", directory.display()));
        }
    }
    for secret in &gathered.secrets {
        let variable = secret.spec.variable();
        head.push(match secret.origin {
            Origin::Existing => format!(
                "would keep existing secret {} (template variable {variable})",
                secret.path.display()
            ),
            Origin::Generated => format!(
                "would generate secret {} ({}, mode {}{}) (template variable {variable})",
                secret.path.display(),
                secret.spec.describe(),
                config.secret_mode,
                owner_text(config.owner)
            ),
        });
    }
    for (job, checked) in gathered.plan.jobs.iter().zip(&checked) {
        let verb = match job.action {
            Action::Render => "render",
            Action::Copy => "copy",
        };
        lines.push(describe_output(
            config,
            verb,
            &job.shown.display().to_string(),
            &job.dest,
            checked,
        ));
    }
    head.append(&mut lines);
    if head.is_empty() {
        head.push("nothing to do".to_owned());
    }
    for line in head {
        writeln!(out, "{line}").map_err(RenderError::Stdout)?;
    }
    Ok(())
}

/// A dry-run line for one output file.
fn describe_output(config: &Config, verb: &str, source: &str, dest: &Path, checked: &Checked) -> String {
    let existing_mode = std::fs::metadata(dest)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| Mode(metadata.permissions().mode() & 0o7777));
    let what = match (checked.existed, checked.equal) {
        (false, _) => "create",
        (true, _) if config.no_overwrite => "keep the existing file (--no-overwrite)",
        (true, true) => "leave unchanged",
        (true, false) => "replace",
    };
    let copied_mode = if verb == "copy" { checked.source_mode } else { None };
    let mode = config
        .mode
        .or(existing_mode)
        .or(copied_mode)
        .unwrap_or(Mode(DEFAULT_FILE_MODE));
    format!(
        "would {verb} {source} to {}: {what} ({} bytes, mode {mode}{})",
        dest.display(),
        checked.bytes,
        owner_text(config.owner)
    )
}

/// A writer that compares what it is given with an existing file, for `--dry-run`'s
/// "unchanged" / "replace" without holding either in memory.
struct Compare {
    existing: Option<BufReader<File>>,
    existed: bool,
    equal: bool,
    bytes: u64,
    buffer: Vec<u8>,
}

impl Compare {
    /// Compares with `dest` when it is a regular file (a symlink or directory there would be
    /// replaced, never equal), else only counts.
    fn new(dest: &Path) -> Self {
        let existing = std::fs::symlink_metadata(dest)
            .is_ok_and(|metadata| metadata.is_file())
            .then(|| File::open(dest).ok())
            .flatten()
            .map(BufReader::new);
        Compare {
            existed: existing.is_some(),
            equal: existing.is_some(),
            existing,
            bytes: 0,
            buffer: Vec::new(),
        }
    }

    /// Only counts bytes (stdout).
    fn nothing() -> Self {
        Compare {
            existing: None,
            existed: false,
            equal: false,
            bytes: 0,
            buffer: Vec::new(),
        }
    }

    fn checked(&self) -> Checked {
        Checked {
            existed: self.existed,
            equal: self.equal,
            bytes: self.bytes,
            source_mode: None,
        }
    }
}

impl Write for Compare {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.bytes += data.len() as u64;
        if self.equal
            && let Some(existing) = &mut self.existing
        {
            self.buffer.resize(data.len(), 0);
            if existing.read_exact(&mut self.buffer).is_err() || self.buffer != data {
                self.equal = false;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Compare {
    /// After the last write: the existing file must end here too.
    fn finish(&mut self) {
        if self.equal
            && let Some(existing) = &mut self.existing
        {
            let mut one = [0u8; 1];
            if existing.read(&mut one).map_or(true, |read| read > 0) {
                self.equal = false;
            }
        }
        self.existing = None;
    }
}

/// Checks the stop flag before every read, so a signal ends even a long render at the next
/// chunk (64 KiB), not at the end of the input.
struct StopReader<'a, R> {
    inner: R,
    stop: &'a Stop,
}

impl<R: Read> Read for StopReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if let Some(signal) = self.stop.signal() {
            return Err(io::Error::other(format!("stopped by signal {signal}")));
        }
        self.inner.read(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_tells_equal_longer_shorter_and_different() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello world").unwrap();
        for (written, equal) in [
            (&["hello", " world"][..], true),
            (&["hello world!"][..], false),
            (&["hello"][..], false),
            (&["hello", " w0rld"][..], false),
        ] {
            let mut compare = Compare::new(&path);
            for part in written {
                compare.write_all(part.as_bytes()).unwrap();
            }
            compare.finish();
            assert_eq!(compare.equal, equal, "{written:?}");
        }
        let compare = Compare::new(&dir.path().join("missing"));
        assert!(!compare.existed);
    }

    #[test]
    fn a_stopped_reader_fails_the_next_read() {
        let stop = Stop::never();
        let mut reader = StopReader {
            inner: &b"abc"[..],
            stop: &stop,
        };
        let mut buffer = [0; 1];
        assert_eq!(reader.read(&mut buffer).unwrap(), 1);
        stop.trigger(15);
        assert!(reader.read(&mut buffer).is_err());
    }
}
