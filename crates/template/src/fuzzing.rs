//! The body of the fuzz target (`fuzz/fuzz_targets/render.rs`) and of the stable smoke test
//! that runs it over a pseudo-random corpus: it lives in the library so both share it.
//!
//! The input is split into option flags, three values and a template. The template is rendered
//! with small limits (so that they are reached often) several ways, and the results must agree:
//! no panic, the same outcome whether the input arrives whole or a few bytes per read, report
//! counts that match what was read and written, output no longer than the bound the limits
//! promise, errors that never contain a value, and a render with an empty allow-list that
//! returns the input unchanged.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::eval::Limits;
use crate::{Allow, Error, Options, Report, references, stream};

/// Small limits, so the fuzzer reaches every bound with short inputs.
const LIMITS: Limits = Limits {
    expression: 256,
    depth: 8,
    value: 4096,
    assigned: 16 * 1024,
    problems: 10,
    // Small buffers: compaction and output flushes happen all the time.
    chunk: 64,
};

/// Starts every value, so that a value showing up in an error message can be told apart.
const MARKER: u8 = 0x07;

/// A reader that returns at most `chunk` bytes per read, like a slow pipe (also used by the
/// crate's tests).
pub struct Chunked<'a> {
    /// What is left to read.
    pub data: &'a [u8],
    /// The most bytes one read returns.
    pub chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.chunk.min(buf.len()).min(self.data.len());
        buf[..len].copy_from_slice(&self.data[..len]);
        self.data = &self.data[len..];
        Ok(len)
    }
}

/// Splits `data`, renders, and panics if any property does not hold. See the module docs.
///
/// # Panics
///
/// When a property does not hold: that is what the fuzzer looks for.
pub fn fuzz_check(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut vars = BTreeMap::new();
    for name in ["A", "B", "C"] {
        let Some((&len, after)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len % 16).min(after.len());
        let mut value = vec![MARKER];
        value.extend_from_slice(&after[..len]);
        if flags & 0x10 != 0 && name == "A" {
            // A long value, to reach the output and assignment bounds.
            value = value.repeat(200);
        }
        vars.insert(name.to_owned(), value);
        rest = &after[len..];
    }
    if flags & 0x08 != 0 {
        vars.insert("D".to_owned(), Vec::new());
    }
    let template = rest;
    let options = Options {
        allow: if flags & 0x04 != 0 {
            Allow::parse("A,C*,E").unwrap_or_default()
        } else {
            Allow::all()
        },
        strict: flags & 0x01 != 0,
        no_empty: flags & 0x02 != 0,
    };
    let chunk = usize::from(flags >> 5) + 1;

    let whole = run(template, usize::MAX, &vars, &options);
    let chunked = run(template, chunk, &vars, &options);
    match (&whole, &chunked) {
        (Ok((out, report)), Ok((chunked_out, chunked_report))) => {
            assert!(out == chunked_out, "output differs with {chunk}-byte reads");
            assert_eq!(report, chunked_report, "report differs with {chunk}-byte reads");
            assert_eq!(report.bytes_in, template.len() as u64);
            assert_eq!(report.bytes_out, out.len() as u64);
            let largest = vars
                .values()
                .map(Vec::len)
                .max()
                .unwrap_or(0)
                .max(LIMITS.value)
                .max(1);
            assert!(
                out.len() <= template.len() * largest,
                "{} bytes out of {} in",
                out.len(),
                template.len()
            );
            if !template.contains(&b'$') {
                assert!(out == template, "text without `$` must pass unchanged");
            }
        }
        (Err(error), Err(chunked_error)) => {
            assert_eq!(
                error.to_string(),
                chunked_error.to_string(),
                "errors differ with {chunk}-byte reads"
            );
            let Error::Template(problems) = error else {
                panic!("only template problems can happen here: {error}");
            };
            assert!(!problems.is_empty());
            assert!(problems.len() <= LIMITS.problems + 1);
            let lines = memchr::memchr_iter(b'\n', template).count() as u64 + 1;
            for problem in problems {
                assert!(problem.line >= 1 && problem.line <= lines, "{problem}");
                assert!(problem.column >= 1, "{problem}");
            }
            let text = error.to_string();
            assert!(
                !text.as_bytes().contains(&MARKER) || template.contains(&MARKER),
                "an error message shows a value: {text:?}"
            );
        }
        _ => panic!("whole and {chunk}-byte reads disagree: {whole:?} / {chunked:?}"),
    }

    // With an allow-list that allows nothing, the template comes back unchanged.
    let untouched = Options {
        allow: Allow::names(Vec::new()),
        ..options.clone()
    };
    match run(template, chunk, &vars, &untouched) {
        Ok((out, _)) => assert!(out == template, "an empty allow-list changed the text"),
        Err(error) => panic!("an empty allow-list failed: {error}"),
    }

    for name in references(template) {
        assert!(crate::is_valid_name(&name), "{name:?}");
    }
}

fn run(
    template: &[u8],
    chunk: usize,
    vars: &BTreeMap<String, Vec<u8>>,
    options: &Options,
) -> Result<(Vec<u8>, Report), Error> {
    let mut vars = vars.clone();
    let mut out = Vec::new();
    let reader = Chunked {
        data: template,
        chunk,
    };
    let report = stream::render_with(reader, &mut out, "fuzz", &mut vars, options, LIMITS)?;
    Ok((out, report))
}
