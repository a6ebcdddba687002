//! `*.prom` files passed through to `/metrics`, as node_exporter's textfile collector does:
//! a batch job or a cron script writes `name.prom` (atomically: temp file + rename) into
//! `--textfile-dir`, and the sidecar serves its families at every scrape.
//!
//! At each scrape the directory is listed (not recursively); files named `*.prom` that are
//! regular files (a symlink to one counts: ConfigMap volumes are symlinks) and do not start
//! with `.` are read in name order, each at most [`MAX_FILE_BYTES`]. A file is re-parsed only
//! when its inode, size, mtime or ctime changed, so a scrape of unchanged files costs a
//! directory listing and a `stat` per file.
//!
//! A file is served whole or not at all. It is left out, `pitcrew_metrics_textfile_scrape_error`
//! is 1 for that scrape, and a warning is logged (once per version of a bad file, at most once
//! per [`LOG_INTERVAL`] for the rest) when:
//! - it cannot be read, is too big, is not UTF-8 or does not parse ([`crate::textfile::parse`]
//!   says why, by line);
//! - one of its families has a name served already by the sidecar itself (a log rule's,
//!   status or StatsD metric, anything `pitcrew_metrics_*`), counting the series names a type
//!   implies (`x_total`/`x`, `x_bucket`, `x_sum`, …);
//! - one of its families is also in an earlier file with another TYPE or HELP, or with the
//!   same series (name and labels): the earlier file wins. Same TYPE and HELP and other
//!   series merge into one family, as node_exporter does.
//!
//! Output: Prometheus text 0.0.4 as the files say it; OpenMetrics with the format's rules:
//! a counter family is named without `_total`, `untyped` is `unknown`, HELP escapes `"` too,
//! and a histogram's or summary's samples are grouped per label set. A counter whose samples
//! are not named `…_total` (or that holds a negative or NaN value) is `unknown` in
//! OpenMetrics: renaming its series would make their name depend on the scrape format.
//! `pitcrew_metrics_textfile_mtime_seconds{file}` gives each served file's modification time.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pitcrew_core::admin::{AdminState, Exposition, Format};

use super::throttle::{Throttle, suppressed_note};
use crate::textfile::{self, Family, MetricType, Options, format_value, write_text};

/// Files larger than this are left out: a textfile holds a job's few metrics, and a runaway
/// writer must not make every scrape read gigabytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// At most one warning per kind of trouble (unreadable directory, clashing file) this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A file modified less than this long ago is read again at each scrape (see `State::load`).
const RACY: Duration = Duration::from_secs(2);

/// The sidecar's own metrics namespace: no textfile family may use it.
const RESERVED_PREFIX: &str = "pitcrew_metrics_";

/// The textfile directory, read at each scrape.
#[derive(Debug)]
pub struct TextfileSource {
    dir: PathBuf,
}

impl TextfileSource {
    /// A source for `dir` (which may not exist yet: an empty directory until it does).
    pub fn new(dir: PathBuf) -> Self {
        TextfileSource { dir }
    }

    /// Adds the directory's families to what `/metrics` shows.
    pub fn attach(self, state: &AdminState) {
        state.add_exposition(Arc::new(self.exposition()));
    }

    /// The writer `attach` registers: call [`Exposition::write`] to get a scrape's text.
    pub fn exposition(self) -> TextfileExposition {
        TextfileExposition {
            dir: self.dir,
            state: Mutex::new(State {
                cache: HashMap::new(),
                dir_log: Throttle::new(LOG_INTERVAL),
                clash_log: Throttle::new(LOG_INTERVAL),
            }),
        }
    }
}

/// Writes the textfiles' families at each scrape.
#[derive(Debug)]
pub struct TextfileExposition {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Path → the last version read of it.
    cache: HashMap<PathBuf, Cached>,
    dir_log: Throttle,
    clash_log: Throttle,
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    /// Modification time, Unix seconds.
    mtime: f64,
    /// The families, or why the file is left out.
    parsed: Result<Arc<Vec<Family>>, String>,
}

/// A family as served: possibly merged from several files.
struct Served {
    family: Family,
    /// Series already in it (sample name, sorted labels), to refuse a duplicate from a later
    /// file.
    series: HashSet<(String, Vec<(String, String)>)>,
}

impl Exposition for TextfileExposition {
    fn write(&self, format: Format, out: &mut String) {
        let taken = names_in(out);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (served, mtimes, error) = state.collect(&self.dir, &taken);
        drop(state);
        let families: Vec<Family> = served.into_iter().map(|served| served.family).collect();
        match format {
            Format::PrometheusText => write_text(&families, out),
            Format::OpenMetrics => write_openmetrics(&families, out),
        }
        write_own(format, error, &mtimes, out);
    }
}

impl State {
    /// The families to serve, the served files' mtimes, and whether any file was left out.
    fn collect(&mut self, dir: &Path, taken: &HashSet<String>) -> (Vec<Served>, Vec<(String, f64)>, bool) {
        let mut error = false;
        let files = match list(dir) {
            Ok(files) => files,
            Err(err) => {
                if let Some(suppressed) = self.dir_log.allow(Instant::now()) {
                    tracing::warn!(
                        "textfiles: cannot list {}: {err}; no textfile is served until it can be{}",
                        dir.display(),
                        suppressed_note(suppressed)
                    );
                }
                return (Vec::new(), Vec::new(), true);
            }
        };
        // Forget files that are gone, so the cache stays as small as the directory.
        self.cache
            .retain(|path, _| files.iter().any(|(listed, _)| listed == path));

        let mut served: Vec<Served> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut claimed: HashSet<String> = HashSet::new();
        let mut mtimes = Vec::new();
        for (path, metadata) in files {
            let cached = self.load(&path, &metadata);
            let mtime = cached.mtime;
            let Ok(families) = &cached.parsed else {
                error = true;
                continue;
            };
            let families = Arc::clone(families);
            if let Err(why) = fits(&families, &served, &by_name, &claimed, taken) {
                error = true;
                if let Some(suppressed) = self.clash_log.allow(Instant::now()) {
                    tracing::warn!(
                        "textfile {}: {why}; the file is left out{}",
                        path.display(),
                        suppressed_note(suppressed)
                    );
                }
                continue;
            }
            for family in families.iter() {
                let keys = family.samples.iter().map(series_key);
                if let Some(&index) = by_name.get(&family.name) {
                    let into = &mut served[index];
                    into.series.extend(keys);
                    if into.family.help.is_none() {
                        into.family.help.clone_from(&family.help);
                    }
                    into.family.samples.extend(family.samples.iter().cloned());
                } else {
                    claimed.extend(implied_names(&family.name, family.kind));
                    by_name.insert(family.name.clone(), served.len());
                    served.push(Served {
                        family: family.clone(),
                        series: keys.collect(),
                    });
                }
            }
            mtimes.push((path.to_string_lossy().into_owned(), mtime));
        }
        (served, mtimes, error)
    }

    /// The file's families, from the cache when its stamp has not changed.
    fn load(&mut self, path: &Path, metadata: &std::fs::Metadata) -> &Cached {
        let stamp = Stamp {
            inode: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec()),
        };
        // A file changed within the last seconds may change again within the file system's
        // timestamp granularity (a few ms) with the same size: its stamp would not show it
        // (git's "racy" files). Such a file is read again until it has been still for a while.
        let settled = metadata
            .modified()
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= RACY);
        let fresh = settled && self.cache.get(path).is_some_and(|cached| cached.stamp == stamp);
        if !fresh {
            #[allow(clippy::cast_precision_loss)] // Unix seconds with ms precision are plenty
            let mtime = metadata.mtime() as f64
                + f64::from(u32::try_from(metadata.mtime_nsec() / 1_000_000).unwrap_or(0)) / 1000.0;
            let parsed = read_and_parse(path, metadata.size());
            if let Err(why) = &parsed {
                // Once per version of the file: it is not read again until it changes.
                tracing::warn!(
                    "textfile {}: {why}; the file is left out until it changes",
                    path.display()
                );
            }
            self.cache.insert(
                path.to_owned(),
                Cached {
                    stamp,
                    mtime,
                    parsed: parsed.map(Arc::new),
                },
            );
        }
        &self.cache[path]
    }
}

/// `*.prom` regular files (symlinks followed) not starting with `.`, sorted by name. A missing
/// directory is an empty one (it may be created after the sidecar starts).
fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        // `*.prom` exactly, as node_exporter matches it.
        #[allow(clippy::case_sensitive_file_extension_comparisons)]
        if name.starts_with('.') || !name.ends_with(".prom") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a ConfigMap volume's files are links into `..data`. A link that
        // points nowhere (mid-swap) is skipped this scrape.
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => files.push((path, metadata)),
            _ => {}
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn read_and_parse(path: &Path, size: u64) -> Result<Vec<Family>, String> {
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{size} bytes, more than the {MAX_FILE_BYTES} bytes a textfile may have"
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|err| format!("cannot read: {err}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "grew past the {MAX_FILE_BYTES} bytes a textfile may have while read"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|err| format!("not UTF-8 (at byte {})", err.utf8_error().valid_up_to()))?;
    textfile::parse(&text, Options::default()).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Whether a file's families can join those served so far.
fn fits(
    families: &[Family],
    served: &[Served],
    by_name: &HashMap<String, usize>,
    claimed: &HashSet<String>,
    taken: &HashSet<String>,
) -> Result<(), String> {
    for family in families {
        let name = &family.name;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "metric {name:?} is in the sidecar's own {RESERVED_PREFIX:?} namespace"
            ));
        }
        let implied = implied_names(name, family.kind);
        if let Some(clash) = implied.iter().find(|implied| taken.contains(*implied)) {
            return Err(format!(
                "metric {name:?} clashes with {clash:?}, which the sidecar serves itself"
            ));
        }
        if let Some(&index) = by_name.get(name) {
            let earlier = &served[index];
            if earlier.family.kind != family.kind {
                return Err(format!(
                    "metric {name:?} is a {} here but a {} in an earlier file",
                    family.kind.as_str(),
                    earlier.family.kind.as_str()
                ));
            }
            if let (Some(ours), Some(theirs)) = (&family.help, &earlier.family.help)
                && ours != theirs
            {
                return Err(format!(
                    "metric {name:?} has another HELP than in an earlier file"
                ));
            }
            if let Some(sample) = family
                .samples
                .iter()
                .find(|sample| earlier.series.contains(&series_key(sample)))
            {
                return Err(format!(
                    "series {:?} with the same labels is in an earlier file",
                    sample.name
                ));
            }
        } else if let Some(clash) = implied.iter().find(|implied| claimed.contains(*implied)) {
            return Err(format!(
                "metric {name:?} clashes with {clash:?} of an earlier file"
            ));
        }
    }
    Ok(())
}

fn series_key(sample: &textfile::Sample) -> (String, Vec<(String, String)>) {
    let mut labels = sample.labels.clone();
    labels.sort();
    (sample.name.clone(), labels)
}

/// Every name a family of this type occupies in either format: its series and, for a
/// counter, the OpenMetrics family name without `_total` (and `_created`).
fn implied_names(name: &str, kind: MetricType) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    match kind {
        MetricType::Counter => {
            let base = name.strip_suffix("_total").unwrap_or(name);
            names.push(base.to_owned());
            names.push(format!("{base}_total"));
            names.push(format!("{base}_created"));
        }
        MetricType::Histogram => {
            for suffix in ["_bucket", "_sum", "_count", "_created"] {
                names.push(format!("{name}{suffix}"));
            }
        }
        MetricType::Summary => {
            for suffix in ["_sum", "_count", "_created"] {
                names.push(format!("{name}{suffix}"));
            }
        }
        MetricType::Gauge | MetricType::Untyped => {}
    }
    names.dedup();
    names
}

/// The names `text` (the registry's part of the scrape, in either format) already uses:
/// every sample name, and every name a `# TYPE` line implies.
fn names_in(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                let kind = match kind {
                    "counter" => MetricType::Counter,
                    "histogram" | "gaugehistogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    _ => MetricType::Gauge,
                };
                names.extend(implied_names(name, kind));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Families in OpenMetrics 1.0 (without `# EOF`: the admin server ends the scrape).
fn write_openmetrics(families: &[Family], out: &mut String) {
    for family in families {
        let counter_total = family.kind == MetricType::Counter
            && family.name.ends_with("_total")
            && family
                .samples
                .iter()
                .all(|sample| sample.value >= 0.0 && sample.name == family.name);
        let (name, kind) = match family.kind {
            MetricType::Counter if counter_total => (
                family.name.strip_suffix("_total").unwrap_or(&family.name),
                "counter",
            ),
            MetricType::Counter | MetricType::Untyped => (family.name.as_str(), "unknown"),
            MetricType::Gauge => (family.name.as_str(), "gauge"),
            MetricType::Histogram => (family.name.as_str(), "histogram"),
            MetricType::Summary => (family.name.as_str(), "summary"),
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        if let Some(help) = &family.help {
            let _ = writeln!(out, "# HELP {name} {}", escape(help, true));
        }
        // OpenMetrics wants each metric's (label set's) samples together: a histogram's
        // buckets, count and sum for one label set, then the next. Files may interleave them.
        let grouped = matches!(family.kind, MetricType::Histogram | MetricType::Summary);
        let mut order: Vec<Vec<(String, String)>> = Vec::new();
        let mut groups: HashMap<Vec<(String, String)>, Vec<&textfile::Sample>> = HashMap::new();
        for sample in &family.samples {
            let key = if grouped {
                let mut labels: Vec<(String, String)> = sample
                    .labels
                    .iter()
                    .filter(|(label, _)| label != "le" && label != "quantile")
                    .cloned()
                    .collect();
                labels.sort();
                labels
            } else {
                Vec::new()
            };
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(sample);
        }
        for key in order {
            for sample in &groups[&key] {
                write_sample(&sample.name, &sample.labels, sample.value, out);
            }
        }
    }
}

fn write_sample(name: &str, labels: &[(String, String)], value: f64, out: &mut String) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape(value, true));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// `\\`, `\n` and, for label values and OpenMetrics HELP, `\"`.
fn escape(text: &str, quotes: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quotes => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `pitcrew_metrics_textfile_scrape_error` and `pitcrew_metrics_textfile_mtime_seconds`, the
/// same in both formats (gauges).
fn write_own(_format: Format, error: bool, mtimes: &[(String, f64)], out: &mut String) {
    out.push_str(
        "# HELP pitcrew_metrics_textfile_scrape_error 1 if a textfile was left out of this scrape (unreadable, invalid or clashing), else 0.\n\
         # TYPE pitcrew_metrics_textfile_scrape_error gauge\n",
    );
    let _ = writeln!(out, "pitcrew_metrics_textfile_scrape_error {}", u8::from(error));
    out.push_str(
        "# HELP pitcrew_metrics_textfile_mtime_seconds Modification time of each textfile served, in Unix seconds.\n\
         # TYPE pitcrew_metrics_textfile_mtime_seconds gauge\n",
    );
    for (file, mtime) in mtimes {
        write_sample(
            "pitcrew_metrics_textfile_mtime_seconds",
            &[("file".to_owned(), file.clone())],
            *mtime,
            out,
        );
    }
}
