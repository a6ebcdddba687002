//! Finding where one `$…` form ends, without evaluating it.
//!
//! Both the streaming top level and the in-memory evaluation of words use these functions, so a
//! nested `${…}` is matched by exactly the same rules wherever it appears: the extent found
//! while streaming is always the extent the evaluator later walks. Every function works on a
//! slice that starts at a `$` and may be cut short (`eof == false`): then it asks for more
//! input instead of guessing.

use crate::allow::Allow;

/// Whether `byte` may start a POSIX name (`[A-Za-z_]`).
#[inline]
pub(crate) fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

/// Whether `byte` may continue a POSIX name (`[A-Za-z0-9_]`).
#[inline]
pub(crate) fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The length of the name at the start of `bytes` (0 when there is none).
#[inline]
pub(crate) fn name_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(&first) if is_name_start(first) => bytes
            .iter()
            .position(|&b| !is_name_byte(b))
            .unwrap_or(bytes.len()),
        _ => 0,
    }
}

/// A name as `&str`. Names are ASCII by construction, so this never fails in practice; the
/// fallback keeps the engine panic-free even if a caller passes something else.
#[inline]
pub(crate) fn as_name(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// One complete `$…` form at the start of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Bytes that are plain text: a `$` followed by no name (`$1`, `$ `, `$` at the end) is
    /// one byte, `${` followed by no name (`${1}`, `${}`) is two.
    Text(usize),
    /// `$$` (two bytes): a literal `$` when `escape`, else copied as `$$` (allow-list mode, when
    /// no allowed name follows).
    Dollars { escape: bool },
    /// `$NAME`, `len` bytes including the `$`.
    Name { len: usize },
    /// `${…}` up to its matching `}`, `len` bytes including both.
    Braced { len: usize },
}

impl Unit {
    /// How many input bytes the unit covers.
    pub(crate) fn len(self) -> usize {
        match self {
            Unit::Text(len) | Unit::Name { len } | Unit::Braced { len } => len,
            Unit::Dollars { .. } => 2,
        }
    }
}

/// Where the brace matcher stopped for lack of input, so that it resumes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Offset from the `$` that opened the expression.
    pub(crate) at: usize,
    /// How many nested `${` are open at `at`.
    pub(crate) depth: u32,
}

/// The outcome of [`scan_unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The unit is complete in the slice.
    Done(Unit),
    /// The slice ends before the unit does; call again with more input (and `resume`).
    NeedMore(Option<Resume>),
    /// `${NAME…` with no matching `}` before the end of input.
    Unterminated,
}

/// The outcome of [`match_braces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Braces {
    /// The matching `}` is at offset `end - 1`.
    Closed(usize),
    /// More input is needed; resume from here.
    NeedMore(Resume),
    /// The input ended with the expression still open.
    Eof,
}

/// Whether `s[at..]` opens a nested expression: `${` followed by a name start, or by `#`/`!`
/// and a name start (`${#V}`, `${!V}`: not supported, but matched so they can be reported
/// or copied whole). `None` when the slice ends too early to tell.
fn opens(s: &[u8], at: usize, eof: bool) -> Option<bool> {
    // s[at] == b'$' and s[at + 1] == b'{' are known.
    let Some(&third) = s.get(at + 2) else {
        return if eof { Some(false) } else { None };
    };
    if is_name_start(third) {
        return Some(true);
    }
    if third == b'#' || third == b'!' {
        return match s.get(at + 3) {
            Some(&fourth) => Some(is_name_start(fourth)),
            None if eof => Some(false),
            None => None,
        };
    }
    Some(false)
}

/// Finds the `}` that closes the expression whose body scanning starts at `from.at` (offsets
/// from the opening `$`). Inside, `$$` is a pair, a nested opener (see [`opens`]) adds a level
/// and `}` removes one; everything else is text.
pub(crate) fn match_braces(s: &[u8], from: Resume, eof: bool) -> Braces {
    let Resume { mut at, mut depth } = from;
    loop {
        let Some(found) = memchr::memchr2(b'$', b'}', &s[at.min(s.len())..]) else {
            return if eof {
                Braces::Eof
            } else {
                Braces::NeedMore(Resume {
                    at: s.len().max(at),
                    depth,
                })
            };
        };
        let j = at + found;
        if s[j] == b'}' {
            if depth == 0 {
                return Braces::Closed(j + 1);
            }
            depth -= 1;
            at = j + 1;
            continue;
        }
        match s.get(j + 1) {
            None if eof => return Braces::Eof,
            None => return Braces::NeedMore(Resume { at: j, depth }),
            Some(b'$') => at = j + 2,
            Some(b'{') => match opens(s, j, eof) {
                None => return Braces::NeedMore(Resume { at: j, depth }),
                Some(true) => {
                    depth += 1;
                    at = j + 2;
                }
                Some(false) => at = j + 2,
            },
            Some(_) => at = j + 1,
        }
    }
}

/// Finds the extent of the `$…` form at the start of `s` (`s[0] == b'$'`).
///
/// `name_limit` bounds the lookahead for the name after `$$` in allow-list mode: a form longer
/// than that (`$${` included) is treated as not allowed (the `$$` is copied) rather than read
/// without bound.
pub(crate) fn scan_unit(
    s: &[u8],
    eof: bool,
    allow: &Allow,
    name_limit: usize,
    resume: Option<Resume>,
) -> Scan {
    debug_assert_eq!(s.first(), Some(&b'$'));
    let Some(&second) = s.get(1) else {
        return if eof {
            Scan::Done(Unit::Text(1))
        } else {
            Scan::NeedMore(None)
        };
    };
    match second {
        b'$' => scan_dollars(s, eof, allow, name_limit),
        b'{' => {
            if let Some(resume) = resume {
                return braced(s, resume, eof);
            }
            match opens(s, 0, eof) {
                None => Scan::NeedMore(None),
                Some(false) => Scan::Done(Unit::Text(2)),
                Some(true) => braced(s, Resume { at: 2, depth: 0 }, eof),
            }
        }
        byte if is_name_start(byte) => {
            let len = name_len(&s[1..]);
            if 1 + len == s.len() && !eof {
                Scan::NeedMore(None)
            } else {
                Scan::Done(Unit::Name { len: 1 + len })
            }
        }
        _ => Scan::Done(Unit::Text(1)),
    }
}

fn braced(s: &[u8], from: Resume, eof: bool) -> Scan {
    match match_braces(s, from, eof) {
        Braces::Closed(len) => Scan::Done(Unit::Braced { len }),
        Braces::NeedMore(resume) => Scan::NeedMore(Some(resume)),
        Braces::Eof => Scan::Unterminated,
    }
}

/// `$$`: always an escape when every name is allowed; with an allow-list only when an allowed
/// name follows (`$$NAME`, `$${NAME`), so that `$$` in shell scripts survives.
fn scan_dollars(s: &[u8], eof: bool, allow: &Allow, name_limit: usize) -> Scan {
    if allow.is_all() {
        return Scan::Done(Unit::Dollars { escape: true });
    }
    let name_at = match s.get(2) {
        None if eof => return Scan::Done(Unit::Dollars { escape: false }),
        None => return Scan::NeedMore(None),
        Some(b'{') => 3,
        Some(_) => 2,
    };
    let rest = s.get(name_at..).unwrap_or_default();
    let len = name_len(rest);
    if name_at + len > name_limit {
        // Too long to be an allowed name (see `Render::list_copies`), decided on the length
        // alone so that it does not depend on how the input was split into reads.
        return Scan::Done(Unit::Dollars { escape: false });
    }
    if len == rest.len() && !eof {
        // The name (or the byte after `${`) may go on in the next read.
        return Scan::NeedMore(None);
    }
    let escape = len > 0 && allow.allows(as_name(&rest[..len]));
    Scan::Done(Unit::Dollars { escape })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str, eof: bool) -> Scan {
        scan_unit(s.as_bytes(), eof, &Allow::all(), 1 << 16, None)
    }

    #[test]
    fn simple_forms() {
        assert_eq!(all("$A b", true), Scan::Done(Unit::Name { len: 2 }));
        assert_eq!(all("$A_1-", false), Scan::Done(Unit::Name { len: 4 }));
        assert_eq!(all("$A_1", false), Scan::NeedMore(None));
        assert_eq!(all("$A_1", true), Scan::Done(Unit::Name { len: 4 }));
        assert_eq!(all("$1", true), Scan::Done(Unit::Text(1)));
        assert_eq!(all("$", true), Scan::Done(Unit::Text(1)));
        assert_eq!(all("$", false), Scan::NeedMore(None));
        assert_eq!(all("$$", false), Scan::Done(Unit::Dollars { escape: true }));
        assert_eq!(all("${1}", true), Scan::Done(Unit::Text(2)));
        assert_eq!(all("${}", true), Scan::Done(Unit::Text(2)));
        assert_eq!(all("${", false), Scan::NeedMore(None));
        assert_eq!(all("${", true), Scan::Done(Unit::Text(2)));
        assert_eq!(all("${#}", true), Scan::Done(Unit::Text(2)));
        assert_eq!(all("${#", false), Scan::NeedMore(None));
        assert_eq!(all("${#A}", true), Scan::Done(Unit::Braced { len: 5 }));
    }

    #[test]
    fn nesting_is_matched() {
        assert_eq!(
            all("${A:-${B:-x}}tail", true),
            Scan::Done(Unit::Braced { len: 13 })
        );
        assert_eq!(all("${A:-$${B}}", true), Scan::Done(Unit::Braced { len: 10 }));
        assert_eq!(all("${A:-${1}}", true), Scan::Done(Unit::Braced { len: 9 }));
        assert_eq!(all("${A:-{x}}", true), Scan::Done(Unit::Braced { len: 8 }));
        assert_eq!(all("${A:-${B}", true), Scan::Unterminated);
        assert_eq!(all("${A", true), Scan::Unterminated);
    }

    #[test]
    fn resumes_where_it_stopped() {
        let text = b"${A:-${B:-x}}";
        let mut resume = None;
        for end in 1..text.len() {
            match scan_unit(&text[..end], false, &Allow::all(), 1 << 16, resume) {
                Scan::NeedMore(next) => resume = next.or(resume),
                other => panic!("{end}: {other:?}"),
            }
        }
        assert_eq!(
            scan_unit(text, false, &Allow::all(), 1 << 16, resume),
            Scan::Done(Unit::Braced { len: 13 })
        );
    }

    #[test]
    fn dollars_with_an_allow_list_look_at_the_name() {
        let allow = Allow::parse("A*").unwrap();
        let scan = |s: &str, eof| scan_unit(s.as_bytes(), eof, &allow, 8, None);
        assert_eq!(scan("$$AB ", false), Scan::Done(Unit::Dollars { escape: true }));
        assert_eq!(scan("$${AB}", false), Scan::Done(Unit::Dollars { escape: true }));
        assert_eq!(scan("$$B ", false), Scan::Done(Unit::Dollars { escape: false }));
        assert_eq!(scan("$$ ", false), Scan::Done(Unit::Dollars { escape: false }));
        assert_eq!(scan("$$AB", false), Scan::NeedMore(None));
        assert_eq!(scan("$$AB", true), Scan::Done(Unit::Dollars { escape: true }));
        assert_eq!(scan("$$", false), Scan::NeedMore(None));
        assert_eq!(scan("$$", true), Scan::Done(Unit::Dollars { escape: false }));
        // Past the lookahead limit the name is not read further.
        assert_eq!(
            scan("$$AAAAAAAAAA", false),
            Scan::Done(Unit::Dollars { escape: false })
        );
    }
}
