//! `pitcrew-render`: the init-container replacement for `envsubst < /t/app.yaml > /cfg/app.yaml`
//! and `openssl rand -base64 32 > /cfg/jwt-secret`.
//!
//! A run has three steps, and only the last one writes anything:
//!
//! 1. **Gather**: the shape (`--in`/`--out`, see [`plan::Shape`]), the values (see
//!    [`values`]), the secrets (read back or generated in memory, see [`secrets`]) and the
//!    list of outputs ([`plan::Plan`]).
//! 2. **Stage**: every template is rendered (and every other file of a tree copied) into a
//!    temporary file next to its destination. Every problem of every template is collected;
//!    any problem, unreadable input, unwritable output or signal ends the run here, the
//!    temporary files are removed and the directories this run created are removed again,
//!    so nothing is half-written and nothing already there is touched.
//! 3. **Commit**: generated secrets are put in place first (only if still absent), then every
//!    output, each by an atomic rename that is skipped when the content is identical (mtime
//!    kept). A signal during this step is handled after it: renames take milliseconds, and a
//!    finished set of outputs is better than a mixed one.
//!
//! stdin to stdout (the GNU envsubst drop-in) streams instead: output is written while the
//! input is read, so it works on inputs of any size, but a failing run may have written part
//! of its output.

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
    let mut created = Vec::new();
    let streamed = matches!(gathered.shape, Shape::Stream | Shape::FileToStdout { .. });
    let result = if streamed {
        // Streamed output cannot wait for a commit; only the secrets (if any) are staged and
        // committed after a successful render.
        stage(config, &gathered, io::empty(), stop, &mut created).and_then(|staging| {
            match &gathered.shape {
                Shape::FileToStdout { source } => {
                    let file = File::open(source).map_err(|err| FileError::input(source, "read", err))?;
                    let shown = source.display().to_string();
                    stream(config, &gathered.values, file, &shown, &mut stdout, stop)?;
                }
                _ => stream(config, &gathered.values, stdin, "<stdin>", &mut stdout, stop).map(drop)?,
            }
            Ok(staging)
        })
    } else {
        stage(config, &gathered, stdin, stop, &mut created)
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
) -> Result<Report, RenderError> {
    let mut output = io::BufWriter::with_capacity(64 * 1024, output);
    let mut scope = Scoped::new(values);
    let result = pitcrew_template::render(
        StopReader { inner: input, stop },
        &mut output,
        source,
        &mut scope,
        &config.options,
    );
    stop.check()?;
    if let Err(pitcrew_template::Error::Template(problems)) = &result {
        log_problems(std::slice::from_ref(problems));
    }
    let report = result.map_err(|err| engine_error(err, source, None))?;
    output.flush().map_err(RenderError::Stdout)?;
    warn_unset(config, source, &report, &scope);
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
    Ok(report)
}

/// One error line per template problem (they name variables and positions, never values).
fn log_problems(problems: &[Problems]) {
    for problem in problems.iter().flat_map(Problems::iter) {
        tracing::error!("{problem}");
    }
}

/// Maps an engine error; `dest` is the output file, when there is one.
fn engine_error(err: pitcrew_template::Error, source: &str, dest: Option<&Path>) -> RenderError {
    match err {
        pitcrew_template::Error::Template(problems) => RenderError::Template(vec![problems]),
        pitcrew_template::Error::Read { error, .. } => {
            RenderError::File(FileError::input(source, "read", error))
        }
        pitcrew_template::Error::Write(error) => match dest {
            Some(dest) => RenderError::File(FileError::output(dest, "write", error)),
            None => RenderError::Stdout(error),
        },
    }
}

/// In the default (non-strict) mode an unset variable expands to nothing, as in GNU envsubst;
/// say which ones, by name, since that is usually a mistake in the pod spec.
fn warn_unset(config: &Config, source: &str, report: &Report, scope: &Scoped<'_>) {
    if config.options.strict {
        return;
    }
    let unset: Vec<&str> = report
        .names
        .iter()
        .map(String::as_str)
        .filter(|name| pitcrew_template::Variables::get(scope, name).is_none())
        .collect();
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

/// Step 2: secrets and outputs into temporary files; see the module docs.
fn stage(
    config: &Config,
    gathered: &Gathered,
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
        let file = AtomicFile::create(dest, config.write_options())?;
        match render_into(config, &gathered.values, stdin, "<stdin>", file, stop)? {
            Ok(file) => staging.outputs.push((PathBuf::from("<stdin>"), file.stage()?)),
            Err(found) => problems.push(found),
        }
    }
    for job in &gathered.plan.jobs {
        stop.check()?;
        match job.action {
            Action::Copy => {
                let file = files::copy_uncommitted(&job.source, &job.dest, config.write_options())?;
                staging.outputs.push((job.shown.clone(), file.stage()?));
            }
            Action::Render => {
                let input =
                    File::open(&job.source).map_err(|err| FileError::input(&job.shown, "read", err))?;
                let file = AtomicFile::create(&job.dest, config.write_options())?;
                let shown = job.shown.display().to_string();
                match render_into(config, &gathered.values, input, &shown, file, stop)? {
                    Ok(file) => staging.outputs.push((job.shown.clone(), file.stage()?)),
                    Err(found) => problems.push(found),
                }
            }
        }
    }
    if !problems.is_empty() {
        log_problems(&problems);
        tracing::info!("no output was written: every template is checked before any file is");
        return Err(RenderError::Template(problems));
    }
    stop.check()?;
    Ok(staging)
}

/// Renders one template into `file`: the filled file, or the template's problems.
fn render_into(
    config: &Config,
    values: &Values,
    input: impl Read,
    source: &str,
    mut file: AtomicFile,
    stop: &Stop,
) -> Result<Result<AtomicFile, Problems>, RenderError> {
    let mut scope = Scoped::new(values);
    let result = pitcrew_template::render(
        StopReader { inner: input, stop },
        &mut file,
        source,
        &mut scope,
        &config.options,
    );
    stop.check()?;
    match result {
        Ok(report) => {
            warn_unset(config, source, &report, &scope);
            Ok(Ok(file))
        }
        Err(pitcrew_template::Error::Template(problems)) => Ok(Err(problems)),
        Err(err) => Err(engine_error(err, source, Some(file.destination()))),
    }
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

/// The staged files of a run.
#[derive(Default)]
struct Staging {
    secrets: Vec<Staged>,
    /// With the input each came from, for the log.
    outputs: Vec<(PathBuf, Staged)>,
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
    for (source, staged) in staging.outputs {
        let dest = staged.destination().to_owned();
        let written = staged.commit()?;
        let (path, from, bytes, mode) = (dest.display(), source.display(), written.bytes, written.mode);
        match written.outcome {
            Outcome::Created | Outcome::Replaced => {
                summary.written += 1;
                tracing::info!(
                    path = %path, source = %from, bytes, mode = %mode, outcome = written.outcome.as_str(),
                    "{} {path} ({bytes} bytes, mode {mode}) from {from}",
                    if written.outcome == Outcome::Created { "created" } else { "replaced" }
                );
            }
            Outcome::Unchanged => {
                summary.unchanged += 1;
                let fixed = if written.metadata_changed {
                    format!("; mode/owner set to mode {mode}{}", owner_text(config.owner))
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
    Ok(summary)
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
    let mut problems = Vec::new();
    for directory in &gathered.plan.directories {
        if !directory.is_dir() {
            lines.push(format!("would create directory {}", directory.display()));
        }
    }
    for secret in &gathered.secrets {
        let variable = secret.spec.variable();
        lines.push(match secret.origin {
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
    let mut check = |input: &mut dyn Read, source: &str, dest: Option<&Path>, compare: &mut Compare| {
        let mut scope = Scoped::new(&gathered.values);
        let result = pitcrew_template::render(
            StopReader { inner: input, stop },
            &mut *compare,
            source,
            &mut scope,
            &config.options,
        );
        stop.check()?;
        match result {
            Ok(report) => {
                compare.finish();
                warn_unset(config, source, &report, &scope);
                Ok(true)
            }
            Err(pitcrew_template::Error::Template(found)) => {
                problems.push(found);
                Ok(false)
            }
            Err(err) => Err(engine_error(err, source, dest)),
        }
    };
    match &gathered.shape {
        Shape::Stream | Shape::FileToStdout { .. } => {
            let (mut input, source): (Box<dyn Read>, String) = match &gathered.shape {
                Shape::FileToStdout { source } => (
                    Box::new(File::open(source).map_err(|err| FileError::input(source, "read", err))?),
                    source.display().to_string(),
                ),
                _ => (Box::new(stdin), "<stdin>".to_owned()),
            };
            let mut compare = Compare::new(None);
            if check(&mut input, &source, None, &mut compare)? {
                lines.push(format!(
                    "would render {source} to stdout ({} bytes)",
                    compare.bytes
                ));
            }
        }
        Shape::StdinToFile { dest } => {
            let mut compare = Compare::new(Some(dest));
            let mut stdin = stdin;
            if check(&mut stdin, "<stdin>", Some(dest), &mut compare)? {
                lines.push(describe_output(config, "render", "<stdin>", dest, &compare, None));
            }
        }
        Shape::FileToFile { .. } | Shape::Tree { .. } => {}
    }
    for job in &gathered.plan.jobs {
        stop.check()?;
        let mut input = File::open(&job.source).map_err(|err| FileError::input(&job.shown, "read", err))?;
        let mut compare = Compare::new(Some(&job.dest));
        let shown = job.shown.display().to_string();
        let source_mode = input
            .metadata()
            .map(|metadata| Mode(metadata.permissions().mode() & 0o7777))
            .map_err(|err| FileError::input(&job.shown, "read", err))?;
        let verb = match job.action {
            Action::Render => {
                if !check(&mut input, &shown, Some(&job.dest), &mut compare)? {
                    continue;
                }
                "render"
            }
            Action::Copy => {
                io::copy(&mut input, &mut compare)
                    .map_err(|err| FileError::input(&job.shown, "read", err))?;
                compare.finish();
                "copy"
            }
        };
        let copied_mode = (job.action == Action::Copy).then_some(source_mode);
        lines.push(describe_output(
            config,
            verb,
            &shown,
            &job.dest,
            &compare,
            copied_mode,
        ));
    }
    if !problems.is_empty() {
        log_problems(&problems);
        return Err(RenderError::Template(problems));
    }
    if lines.is_empty() {
        lines.push("nothing to do".to_owned());
    }
    for line in lines {
        writeln!(out, "{line}").map_err(RenderError::Stdout)?;
    }
    Ok(())
}

/// A dry-run line for one output file.
fn describe_output(
    config: &Config,
    verb: &str,
    source: &str,
    dest: &Path,
    compare: &Compare,
    copied_mode: Option<Mode>,
) -> String {
    let existing_mode = std::fs::metadata(dest)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| Mode(metadata.permissions().mode() & 0o7777));
    let what = match (compare.existed, compare.equal) {
        (false, _) => "create",
        (true, _) if config.no_overwrite => "keep the existing file (--no-overwrite)",
        (true, true) => "leave unchanged",
        (true, false) => "replace",
    };
    let mode = config
        .mode
        .or(existing_mode)
        .or(copied_mode)
        .unwrap_or(Mode(DEFAULT_FILE_MODE));
    format!(
        "would {verb} {source} to {}: {what} ({} bytes, mode {mode}{})",
        dest.display(),
        compare.bytes,
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
    fn new(dest: Option<&Path>) -> Self {
        let existing = dest
            .filter(|dest| dest.is_file())
            .and_then(|dest| File::open(dest).ok())
            .map(BufReader::new);
        Compare {
            existed: existing.is_some(),
            equal: existing.is_some(),
            existing,
            bytes: 0,
            buffer: Vec::new(),
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
            let mut compare = Compare::new(Some(&path));
            for part in written {
                compare.write_all(part.as_bytes()).unwrap();
            }
            compare.finish();
            assert_eq!(compare.equal, equal, "{written:?}");
        }
        let compare = Compare::new(Some(&dir.path().join("missing")));
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
