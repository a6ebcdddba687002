//! Evaluating `$…` forms that are complete in memory: `$NAME`, `$$`, and a whole `${…}`
//! expression with its nested words.
//!
//! The streaming layer ([`crate::stream`]) finds each form's extent and hands it here in one
//! piece, so evaluation never waits for input. Problems are recorded with their offset in that
//! piece; the streaming layer turns offsets into line and column.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;

use crate::allow::Allow;
use crate::error::{ProblemKind, REQUIRED_UNSET, REQUIRED_UNSET_OR_EMPTY};
use crate::scan::{Scan, Unit, as_name, name_len, scan_unit};
use crate::vars::{BuildNameHasher, Variables};

/// The bounds that keep memory and output finite whatever the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest `${…}` expression or name buffered, in bytes.
    pub(crate) expression: usize,
    /// How deep expressions may nest.
    pub(crate) depth: u32,
    /// The longest value one assignment may produce.
    pub(crate) value: usize,
    /// All values assigned in one render together.
    pub(crate) assigned: usize,
    /// How many problems are listed before the rest are only counted.
    pub(crate) problems: usize,
    /// How much is read at a time, and the size of the output buffer.
    pub(crate) chunk: usize,
}

impl Limits {
    /// What [`crate::render`] uses.
    pub(crate) const DEFAULT: Limits = Limits {
        expression: crate::MAX_EXPRESSION,
        depth: crate::MAX_DEPTH,
        value: crate::MAX_VALUE,
        assigned: crate::MAX_ASSIGNED,
        problems: crate::MAX_PROBLEMS,
        chunk: 64 * 1024,
    };
}

/// Something expanded text goes to: the buffered output.
pub(crate) trait Emit {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// Where the text of the form being evaluated goes.
pub(crate) enum Sink<'a> {
    /// To the output.
    Out(&'a mut dyn Emit),
    /// Into the value being assigned (`${V:=word}`), bounded by [`Limits::value`].
    Scratch,
    /// Nowhere: a word whose branch is not taken is walked only to check its syntax and to
    /// note the names it references.
    Dry,
}

/// What the configuration says about names and empty values.
pub(crate) struct Config<'a> {
    pub(crate) allow: &'a Allow,
    pub(crate) strict: bool,
    pub(crate) no_empty: bool,
    pub(crate) limits: Limits,
}

/// What evaluation accumulates.
#[derive(Default)]
pub(crate) struct State {
    /// The value being assigned; nested assignments share it (each from its own mark), so
    /// nesting cannot multiply memory.
    scratch: Vec<u8>,
    /// Set when the value being assigned went over the limit.
    overflow: bool,
    /// Bytes assigned so far in this render.
    assigned: usize,
    /// Problems of the form being evaluated: offset in it, and what.
    pub(crate) pending: Vec<(usize, ProblemKind)>,
    /// All problems seen, also those beyond the listing limit.
    pub(crate) total_problems: u64,
    /// Names referenced (allowed ones), for the report. Hashed, not sorted, because it is
    /// looked up at every reference; the report sorts it once at the end.
    pub(crate) names: HashSet<Box<str>, BuildNameHasher>,
    /// Names that expanded to nothing because they were unset and had no default (`$V`,
    /// `${V}`), for a caller's warning: `${V:-d}` and friends do not count.
    pub(crate) unset: HashSet<Box<str>, BuildNameHasher>,
    /// Names in order of occurrence, when collecting for [`crate::references`].
    pub(crate) order: Option<Vec<String>>,
    /// References evaluated.
    pub(crate) expansions: u64,
}

impl State {
    /// A state that records names in order (for [`crate::references`]).
    pub(crate) fn collecting() -> Self {
        Self {
            order: Some(Vec::new()),
            ..Self::default()
        }
    }

    fn put(&mut self, sink: &mut Sink<'_>, bytes: &[u8], value_limit: usize) -> io::Result<()> {
        match sink {
            Sink::Out(out) => out.put(bytes),
            Sink::Scratch => {
                if !self.overflow {
                    if self.scratch.len() + bytes.len() > value_limit {
                        self.overflow = true;
                    } else {
                        self.scratch.extend_from_slice(bytes);
                    }
                }
                Ok(())
            }
            Sink::Dry => Ok(()),
        }
    }

    fn reset_scratch(&mut self) {
        self.scratch.clear();
        // One huge assignment should not keep its memory for the rest of the render.
        self.scratch.shrink_to(1 << 16);
    }
}

/// The evaluator: variables, configuration and what has been found so far.
pub(crate) struct Eval<'a> {
    pub(crate) vars: &'a mut dyn Variables,
    pub(crate) cfg: Config<'a>,
    pub(crate) st: State,
}

impl Eval<'_> {
    /// Records a problem at `at` (an offset in the form being evaluated), or only counts it
    /// once the listing limit is reached.
    fn problem(&mut self, at: usize, kind: ProblemKind) {
        let listed = usize::try_from(self.st.total_problems).unwrap_or(usize::MAX);
        if listed < self.cfg.limits.problems {
            self.st.pending.push((at, kind));
        } else if listed == self.cfg.limits.problems {
            // Marks where the unlisted ones begin; the count is filled in at the end.
            self.st.pending.push((at, ProblemKind::Omitted { count: 0 }));
        }
        self.st.total_problems += 1;
    }

    fn note(&mut self, name: &str) {
        if let Some(order) = &mut self.st.order {
            order.push(name.to_owned());
        } else if !self.st.names.contains(name) {
            self.st.names.insert(name.into());
        }
    }

    fn put(&mut self, sink: &mut Sink<'_>, bytes: &[u8]) -> io::Result<()> {
        self.st.put(sink, bytes, self.cfg.limits.value)
    }

    /// Evaluates `unit`, found complete at `u[at..]`; `depth` is how many `${` enclose it.
    pub(crate) fn unit(
        &mut self,
        u: &[u8],
        at: usize,
        unit: Unit,
        sink: &mut Sink<'_>,
        depth: u32,
    ) -> io::Result<()> {
        match unit {
            Unit::Text(len) => self.put(sink, &u[at..at + len]),
            Unit::Dollars { escape } => self.put(sink, if escape { b"$" } else { b"$$" }),
            Unit::Name { len } => {
                let name = as_name(&u[at + 1..at + len]);
                if !self.cfg.allow.allows(name) {
                    return self.put(sink, &u[at..at + len]);
                }
                self.note(name);
                self.plain(name, at, sink)
            }
            Unit::Braced { len } => self.braced(u, at, len, sink, depth),
        }
    }

    /// Evaluates the text `u[from..to]`: plain bytes and every `$…` form in it. A `${` with no
    /// matching `}` (possible only at the top level of [`crate::references`]) is text.
    pub(crate) fn word(
        &mut self,
        u: &[u8],
        from: usize,
        to: usize,
        sink: &mut Sink<'_>,
        depth: u32,
    ) -> io::Result<()> {
        let mut at = from;
        while at < to {
            let Some(found) = memchr::memchr(b'$', &u[at..to]) else {
                return self.put(sink, &u[at..to]);
            };
            if found > 0 {
                self.put(sink, &u[at..at + found])?;
            }
            at += found;
            let rest = &u[at..to];
            let unit = match scan_unit(rest, true, self.cfg.allow, self.cfg.limits.expression, None) {
                Scan::Done(unit) => unit,
                Scan::Unterminated | Scan::NeedMore(_) => Unit::Text(rest.len().min(2)),
            };
            self.unit(u, at, unit, sink, depth)?;
            at += unit.len();
        }
        Ok(())
    }

    /// `$V` or `${V}`: no default, so strict mode and `no_empty` apply.
    fn plain(&mut self, name: &str, at: usize, sink: &mut Sink<'_>) -> io::Result<()> {
        if matches!(sink, Sink::Dry) {
            return Ok(());
        }
        self.st.expansions += 1;
        match self.vars.get(name) {
            None => {
                if !self.st.unset.contains(name) {
                    self.st.unset.insert(name.into());
                }
                if self.cfg.strict {
                    self.problem(
                        at,
                        ProblemKind::Unset {
                            name: name.to_owned(),
                        },
                    );
                }
                Ok(())
            }
            Some([]) => {
                if self.cfg.no_empty {
                    self.problem(
                        at,
                        ProblemKind::Empty {
                            name: name.to_owned(),
                        },
                    );
                }
                Ok(())
            }
            Some(value) => self.st.put(sink, value, self.cfg.limits.value),
        }
    }

    /// Writes the value of `name` (set, as the caller checked).
    fn value(&mut self, name: &str, sink: &mut Sink<'_>) -> io::Result<()> {
        let value = self.vars.get(name).unwrap_or_default();
        self.st.put(sink, value, self.cfg.limits.value)
    }

    /// A whole `${…}` expression at `u[at..at + len]`.
    fn braced(&mut self, u: &[u8], at: usize, len: usize, sink: &mut Sink<'_>, depth: u32) -> io::Result<()> {
        let close = at + len - 1;
        let prefix = u.get(at + 2).copied().filter(|&b| b == b'#' || b == b'!');
        let name_at = at + 2 + usize::from(prefix.is_some());
        let name_end = name_at + name_len(&u[name_at.min(close)..close]);
        let name = as_name(&u[name_at.min(name_end)..name_end]);
        if !self.cfg.allow.allows(name) {
            return self.put(sink, &u[at..at + len]);
        }
        if depth >= self.cfg.limits.depth {
            self.problem(
                at,
                ProblemKind::TooDeep {
                    limit: self.cfg.limits.depth,
                },
            );
            return Ok(());
        }
        if let Some(prefix) = prefix {
            let operator = char::from(prefix).to_string();
            self.problem(
                at,
                ProblemKind::UnknownOperator {
                    name: name.to_owned(),
                    operator,
                },
            );
            return Ok(());
        }
        self.note(name);
        let rest = &u[name_end..close];
        let (colon, operator) = match rest {
            [] => return self.plain(name, at, sink),
            [b':', op @ (b'-' | b'=' | b'+' | b'?'), ..] => (true, *op),
            [op @ (b'-' | b'=' | b'+' | b'?'), ..] => (false, *op),
            _ => {
                let operator = operator_text(rest);
                self.problem(
                    at,
                    ProblemKind::UnknownOperator {
                        name: name.to_owned(),
                        operator,
                    },
                );
                return Ok(());
            }
        };
        let word_at = name_end + 1 + usize::from(colon);
        if matches!(sink, Sink::Dry) {
            // Not evaluated: only its syntax and names matter. A `?` message is never expanded.
            if operator != b'?' {
                self.word(u, word_at, close, sink, depth + 1)?;
            }
            return Ok(());
        }
        self.st.expansions += 1;
        let usable = match self.vars.get(name) {
            None => false,
            Some(value) => !(colon && value.is_empty()),
        };
        match (operator, usable) {
            (b'-' | b'=', true) => {
                self.value(name, sink)?;
                self.word(u, word_at, close, &mut Sink::Dry, depth + 1)
            }
            (b'-', false) | (b'+', true) => self.word(u, word_at, close, sink, depth + 1),
            (b'+', false) => self.word(u, word_at, close, &mut Sink::Dry, depth + 1),
            (b'=', false) => self.assign(u, name, at, (word_at, close), sink, depth),
            (_, true) => self.value(name, sink),
            (_, false) => {
                let message = if word_at == close {
                    if colon {
                        REQUIRED_UNSET_OR_EMPTY
                    } else {
                        REQUIRED_UNSET
                    }
                    .to_owned()
                } else {
                    String::from_utf8_lossy(&u[word_at..close]).into_owned()
                };
                self.problem(
                    at,
                    ProblemKind::Required {
                        name: name.to_owned(),
                        message: Some(message),
                    },
                );
                Ok(())
            }
        }
    }

    /// `${V=word}` with `V` unset (or `${V:=word}` with it unset or empty): expands the word into
    /// the scratch value, assigns it, and writes it unless an enclosing assignment is already
    /// collecting it.
    fn assign(
        &mut self,
        u: &[u8],
        name: &str,
        at: usize,
        (from, to): (usize, usize),
        sink: &mut Sink<'_>,
        depth: u32,
    ) -> io::Result<()> {
        let outermost = !matches!(sink, Sink::Scratch);
        let mark = self.st.scratch.len();
        self.word(u, from, to, &mut Sink::Scratch, depth + 1)?;
        if self.st.overflow {
            // The outermost assignment holds the longest value, so it is the one that is too
            // long; inner ones are left unassigned.
            if outermost {
                let limit = self.cfg.limits.value;
                self.problem(
                    at,
                    ProblemKind::ValueTooLong {
                        name: name.to_owned(),
                        limit,
                    },
                );
                self.st.overflow = false;
                self.st.reset_scratch();
            }
            return Ok(());
        }
        let value = self.st.scratch[mark..].to_vec();
        if self.st.assigned + value.len() > self.cfg.limits.assigned {
            let limit = self.cfg.limits.assigned;
            self.problem(
                at,
                ProblemKind::AssignmentsTooLarge {
                    name: name.to_owned(),
                    limit,
                },
            );
        } else {
            self.st.assigned += value.len();
            self.vars.set(name, value);
        }
        if outermost {
            let scratch = std::mem::take(&mut self.st.scratch);
            let written = self.put(sink, &scratch);
            self.st.scratch = scratch;
            self.st.reset_scratch();
            written?;
        }
        Ok(())
    }
}

/// The unsupported operator at the start of `rest` (what follows the name), as the user would
/// name it: `%`, `%%`, `#`, `##`, `/`, `//`, `/#`, `^^`, `:` (substring) …. Bytes that are not
/// printable ASCII are shown as `\xNN`.
fn operator_text(rest: &[u8]) -> String {
    let len = match rest {
        [b':', ..] => 1,
        [first, second, ..] if first == second && b"%#/^,".contains(first) => 2,
        [b'/', b'#' | b'%', ..] => 2,
        _ => 1,
    };
    let mut text = String::new();
    for &byte in &rest[..len.min(rest.len())] {
        if byte.is_ascii_graphic() || byte == b' ' {
            text.push(char::from(byte));
        } else {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::operator_text;

    #[test]
    fn operators_are_named_as_written() {
        assert_eq!(operator_text(b"%x"), "%");
        assert_eq!(operator_text(b"%%x"), "%%");
        assert_eq!(operator_text(b"##"), "##");
        assert_eq!(operator_text(b"/#a/b"), "/#");
        assert_eq!(operator_text(b":0:2"), ":");
        assert_eq!(operator_text(b"\xff"), "\\xff");
        assert_eq!(operator_text(b"\n"), "\\x0a");
        assert_eq!(operator_text(b" "), " ");
    }
}
