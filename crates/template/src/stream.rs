//! The streaming top level: reads the input in chunks into one fixed buffer, copies plain text
//! in large slices, and hands each `$…` form to the evaluator once it is complete in the buffer.
//!
//! Memory is bounded by design: the input buffer holds one chunk plus the longest expression
//! allowed ([`Limits::expression`]); the output buffer is one chunk; an expression or name that
//! does not fit is reported ([`ProblemKind::TooLong`]) and skipped without being buffered.
//! Line numbers are counted as the buffer is consumed, so a problem's position costs nothing
//! until a problem happens.

use std::io::{self, Read, Write};

use crate::error::{Error, Problem, ProblemKind, Problems};
use crate::eval::{Config, Emit, Eval, Limits, Sink, State};
use crate::scan::{Braces, Resume, Scan, Unit, as_name, is_name_byte, match_braces, name_len, scan_unit};
use crate::vars::Variables;
use crate::{Options, Report};

/// The input side: the reader, its buffer, and the line bookkeeping.
struct Input<'s, R> {
    reader: R,
    source: &'s str,
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet consumed.
    start: usize,
    end: usize,
    eof: bool,
    bytes_in: u64,
    /// Absolute input offset of `buf[0]`.
    base: u64,
    /// Newlines before `buf[counted]` are counted in `line`.
    counted: usize,
    /// The line `buf[counted]` is on (1-based).
    line: u64,
    /// Absolute offset of that line's first byte.
    line_start: u64,
}

impl<R: Read> Input<'_, R> {
    fn window(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Moves the unconsumed bytes to the front of the buffer and reads once more.
    fn fill(&mut self) -> Result<(), Error> {
        if self.start > 0 {
            self.count_to(self.start);
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.counted -= self.start;
            self.end -= self.start;
            self.start = 0;
        }
        debug_assert!(
            self.end < self.buf.len(),
            "the caller keeps the window below the buffer size"
        );
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => {
                    self.end += read;
                    self.bytes_in += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(Error::Read {
                        input: self.source.to_owned(),
                        error,
                    });
                }
            }
            return Ok(());
        }
    }

    /// Counts the newlines in `buf[counted..index]`.
    fn count_to(&mut self, index: usize) {
        let seen = &self.buf[self.counted..index];
        let newlines = memchr::memchr_iter(b'\n', seen).count();
        if newlines > 0 {
            self.line += newlines as u64;
            let last = memchr::memrchr(b'\n', seen).unwrap_or(0);
            self.line_start = self.base + (self.counted + last + 1) as u64;
        }
        self.counted = index;
    }

    /// Line and column (1-based, bytes) of `buf[index]`; `index` never goes backwards.
    fn position(&mut self, index: usize) -> (u64, u64) {
        self.count_to(index);
        (self.line, self.base + index as u64 - self.line_start + 1)
    }
}

/// Line and column of `unit[offset]`, given those of `unit[0]`.
fn position_in(unit: &[u8], (line, column): (u64, u64), offset: usize) -> (u64, u64) {
    let before = &unit[..offset.min(unit.len())];
    match memchr::memrchr(b'\n', before) {
        None => (line, column + offset as u64),
        Some(last) => (
            line + memchr::memchr_iter(b'\n', before).count() as u64,
            (offset - last) as u64,
        ),
    }
}

/// The output side: a buffer in front of the writer. Once the template is known to have
/// problems, nothing more is written: the caller discards the output anyway.
struct Out<W> {
    writer: W,
    /// Up to `chunk` bytes not yet written.
    buf: Vec<u8>,
    chunk: usize,
    written: u64,
    discard: bool,
}

impl<W: Write> Out<W> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.writer.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl<W: Write> Emit for Out<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.discard {
            return Ok(());
        }
        self.written += bytes.len() as u64;
        if self.buf.len() + bytes.len() > self.chunk {
            self.flush_buf()?;
            if bytes.len() >= self.chunk {
                return self.writer.write_all(bytes);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// The whole render state.
struct Render<'a, 's, R, W> {
    input: Input<'s, R>,
    out: Out<W>,
    eval: Eval<'a>,
    problems: Vec<Problem>,
}

/// [`crate::render`] with explicit limits (the fuzz check uses small ones).
pub(crate) fn render_with(
    reader: impl Read,
    writer: impl Write,
    source: &str,
    vars: &mut dyn Variables,
    options: &Options,
    limits: Limits,
) -> Result<Report, Error> {
    let mut state = Render {
        input: Input {
            reader,
            source,
            // One read plus the longest form: a form that starts at the end of a read still
            // fits once the buffer is compacted.
            buf: vec![0; limits.expression + limits.chunk],
            start: 0,
            end: 0,
            eof: false,
            bytes_in: 0,
            base: 0,
            counted: 0,
            line: 1,
            line_start: 0,
        },
        out: Out {
            writer,
            buf: Vec::with_capacity(limits.chunk),
            chunk: limits.chunk,
            written: 0,
            discard: false,
        },
        eval: Eval {
            vars,
            cfg: Config {
                allow: &options.allow,
                strict: options.strict,
                no_empty: options.no_empty,
                limits,
            },
            st: State::default(),
        },
        problems: Vec::new(),
    };
    state.run()?;
    let Render {
        input,
        mut out,
        eval,
        mut problems,
    } = state;
    if !problems.is_empty() {
        let listed = problems.len()
            - usize::from(
                matches!(problems.last(), Some(p) if matches!(p.kind, ProblemKind::Omitted { .. })),
            );
        problems[..listed].sort_by_key(|problem| (problem.line, problem.column));
        if let Some(Problem {
            kind: ProblemKind::Omitted { count },
            ..
        }) = problems.last_mut()
        {
            *count = eval.st.total_problems - listed as u64;
        }
        return Err(Error::Template(Problems(problems)));
    }
    out.flush_buf()
        .and_then(|()| out.writer.flush())
        .map_err(Error::Write)?;
    Ok(Report {
        bytes_in: input.bytes_in,
        bytes_out: out.written,
        expansions: eval.st.expansions,
        names: eval.st.names.into_iter().map(String::from).collect(),
        unset: eval.st.unset.into_iter().map(String::from).collect(),
    })
}

impl<R: Read, W: Write> Render<'_, '_, R, W> {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            if self.input.start == self.input.end {
                if self.input.eof {
                    return Ok(());
                }
                self.input.fill()?;
                continue;
            }
            let window = &self.input.buf[self.input.start..self.input.end];
            match memchr::memchr(b'$', window) {
                None => {
                    self.out.put(window).map_err(Error::Write)?;
                    self.input.start = self.input.end;
                }
                Some(found) => {
                    self.out.put(&window[..found]).map_err(Error::Write)?;
                    self.input.start += found;
                    self.dollar()?;
                }
            }
        }
    }

    /// Handles the `$…` form at `input.start`, reading more input until it is complete.
    fn dollar(&mut self) -> Result<(), Error> {
        let limits = self.eval.cfg.limits;
        let mut resume = None;
        loop {
            let window = self.input.window();
            match scan_unit(
                window,
                self.input.eof,
                self.eval.cfg.allow,
                limits.expression,
                resume,
            ) {
                Scan::Done(unit) if unit.len() > limits.expression => return self.oversized(unit),
                Scan::Done(unit) => {
                    let mut sink = Sink::Out(&mut self.out);
                    self.eval
                        .unit(window, 0, unit, &mut sink, 0)
                        .map_err(Error::Write)?;
                    self.settle();
                    self.input.start += unit.len();
                    return Ok(());
                }
                Scan::Unterminated => return self.unterminated(),
                Scan::NeedMore(next) => {
                    // The form is longer than the window: once that is over the limit, the
                    // form is too long, whatever the reads were (a complete form over the limit
                    // is caught above, so the outcome does not depend on how input arrives).
                    if window.len() > limits.expression {
                        return self.too_long(next);
                    }
                    resume = next;
                    self.input.fill()?;
                }
            }
        }
    }

    /// Turns the problems of the form at `input.start` into positioned ones.
    fn settle(&mut self) {
        if self.eval.st.pending.is_empty() {
            return;
        }
        let start = self.input.position(self.input.start);
        let unit = self.input.window();
        for (offset, kind) in self.eval.st.pending.drain(..) {
            let (line, column) = position_in(unit, start, offset);
            self.problems.push(Problem {
                source: self.input.source.to_owned(),
                line,
                column,
                kind,
            });
        }
        self.out.discard = true;
    }

    /// Records a problem at `input.start` through the same path as the evaluator's.
    fn problem_here(&mut self, kind: ProblemKind) {
        let listed = usize::try_from(self.eval.st.total_problems).unwrap_or(usize::MAX);
        if listed <= self.eval.cfg.limits.problems {
            let kind = if listed == self.eval.cfg.limits.problems {
                ProblemKind::Omitted { count: 0 }
            } else {
                kind
            };
            self.eval.st.pending.push((0, kind));
        }
        self.eval.st.total_problems += 1;
        self.settle();
    }

    /// The name of the `${NAME…` at the start of the window, if it is complete there.
    fn braced_name(&self) -> Option<&str> {
        let window = self.input.window();
        let at = if matches!(window.get(2), Some(b'#' | b'!')) {
            3
        } else {
            2
        };
        let rest = window.get(at..)?;
        let len = name_len(rest);
        (len < rest.len() || self.input.eof).then(|| as_name(&rest[..len]))
    }

    /// With an allow-list, whether the form at the start of the window is copied: its name
    /// (`None`: not complete in the window) is not allowed. A name too long to hold counts as
    /// not allowed: a list's names are short, only a glob could match it, and copying is what
    /// "only allowed names are touched" asks for.
    fn list_copies(&self, name: Option<&str>) -> bool {
        let allow = self.eval.cfg.allow;
        !allow.is_all()
            && name.is_none_or(|name| name.len() + 3 > self.eval.cfg.limits.expression || !allow.allows(name))
    }

    /// A complete form longer than the limit: treated exactly as one found too long while
    /// streaming (reported, or copied when its name is not allowed), so that the outcome does
    /// not depend on the reads.
    fn oversized(&mut self, unit: Unit) -> Result<(), Error> {
        let limit = self.eval.cfg.limits.expression;
        let name = match unit {
            Unit::Braced { .. } => self.braced_name(),
            _ => self.input.window().get(1..unit.len()).map(as_name),
        };
        if self.list_copies(name) {
            let window = &self.input.buf[self.input.start..self.input.end];
            self.out.put(&window[..unit.len()]).map_err(Error::Write)?;
        } else {
            self.problem_here(ProblemKind::TooLong { limit });
        }
        self.input.start += unit.len();
        Ok(())
    }

    /// `${NAME…` with no `}` before the end of input: a problem if the name is expanded, text
    /// otherwise. Either way scanning goes on after the `${`, so later problems are found too.
    fn unterminated(&mut self) -> Result<(), Error> {
        if self.list_copies(self.braced_name()) {
            self.out.put(b"${").map_err(Error::Write)?;
        } else {
            self.problem_here(ProblemKind::Unterminated);
        }
        self.input.start += 2;
        Ok(())
    }

    /// A form longer than the limit: reported (or, for a name that is not expanded, copied)
    /// and then skipped without buffering it.
    fn too_long(&mut self, resume: Option<Resume>) -> Result<(), Error> {
        let limit = self.eval.cfg.limits.expression;
        // With an allow-list, a form whose name is not allowed is copied as it goes by.
        let Some(mut resume) = resume else {
            // `$NAME` with an endless name.
            let list = self.list_copies(None);
            if list {
                self.out.put(b"$").map_err(Error::Write)?;
            } else {
                self.problem_here(ProblemKind::TooLong { limit });
            }
            self.input.start += 1;
            loop {
                let window = &self.input.buf[self.input.start..self.input.end];
                let end = window.iter().position(|&b| !is_name_byte(b));
                let name_part = &window[..end.unwrap_or(window.len())];
                if list {
                    self.out.put(name_part).map_err(Error::Write)?;
                }
                self.input.start += name_part.len();
                if end.is_some() || self.input.eof {
                    return Ok(());
                }
                self.input.fill()?;
            }
        };
        let copy = self.list_copies(self.braced_name());
        // The position is taken now, while the start is still in the buffer.
        let position = self.input.position(self.input.start);
        loop {
            let window = &self.input.buf[self.input.start..self.input.end];
            let (consumed, done) = match match_braces(window, resume, self.input.eof) {
                Braces::Closed(end) => (end, Some(ProblemKind::TooLong { limit })),
                Braces::Eof => (window.len(), Some(ProblemKind::Unterminated)),
                Braces::NeedMore(next) => {
                    resume = Resume {
                        at: 0,
                        depth: next.depth,
                    };
                    (next.at, None)
                }
            };
            if copy {
                self.out.put(&window[..consumed]).map_err(Error::Write)?;
            }
            self.input.start += consumed;
            if let Some(kind) = done {
                if !copy {
                    self.push_at(position, kind);
                }
                return Ok(());
            }
            self.input.fill()?;
        }
    }

    /// Records a problem at a position taken earlier.
    fn push_at(&mut self, (line, column): (u64, u64), kind: ProblemKind) {
        let listed = usize::try_from(self.eval.st.total_problems).unwrap_or(usize::MAX);
        self.eval.st.total_problems += 1;
        let kind = match listed.cmp(&self.eval.cfg.limits.problems) {
            std::cmp::Ordering::Less => kind,
            std::cmp::Ordering::Equal => ProblemKind::Omitted { count: 0 },
            std::cmp::Ordering::Greater => return,
        };
        self.problems.push(Problem {
            source: self.input.source.to_owned(),
            line,
            column,
            kind,
        });
        self.out.discard = true;
    }
}

#[cfg(test)]
mod tests {
    use super::position_in;

    #[test]
    fn positions_inside_a_unit() {
        let unit = b"${A:-\n  ${B}\n}";
        assert_eq!(position_in(unit, (3, 5), 0), (3, 5));
        assert_eq!(position_in(unit, (3, 5), 2), (3, 7));
        assert_eq!(position_in(unit, (3, 5), 8), (4, 3));
    }
}
