//! Which variable names a render expands: all of them, or an allow-list of names and globs
//! (`--only 'APP_*,DB_HOST'`, or GNU envsubst's SHELL-FORMAT argument turned into names).

use std::collections::HashSet;

use crate::scan::{is_name_byte, is_name_start};
use crate::vars::BuildNameHasher;

/// Which names are expanded. The default allows every name.
///
/// With an allow-list, references to other names are copied verbatim (see the crate docs),
/// which is what lets a shell script or an nginx config with `$1`, `$host` or `$$` go through
/// a render untouched except for the names asked for.
#[derive(Clone, Debug, Default)]
pub struct Allow {
    /// `None`: every name. Kept as an option so that `Default` means "all".
    only: Option<List>,
}

#[derive(Clone, Debug, Default)]
struct List {
    /// Hashed: looked up at every reference.
    names: HashSet<String, BuildNameHasher>,
    globs: Vec<String>,
}

impl Allow {
    /// Every name is expanded.
    pub fn all() -> Self {
        Self { only: None }
    }

    /// Comma-separated names and globs (`*`: any run of name characters, `?`: one), e.g.
    /// `APP_*,DB_HOST`. Spaces around items are ignored. An empty item or one with a character
    /// that cannot be in a name is refused, and the message names it.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut parsed = List::default();
        for (index, raw) in list.split(',').enumerate() {
            let item = raw.trim();
            if item.is_empty() {
                return Err(format!(
                    "empty item (number {}) in variable list {list:?}: expected comma-separated names or globs such as APP_*,DB_HOST",
                    index + 1
                ));
            }
            if let Some(bad) = item
                .bytes()
                .find(|&b| !(is_name_byte(b) || b == b'*' || b == b'?'))
            {
                return Err(format!(
                    "{item:?} in variable list is neither a name nor a glob: {:?} cannot be in a variable name (expected letters, digits, _, and the wildcards * and ?)",
                    char::from(bad)
                ));
            }
            if item.as_bytes()[0].is_ascii_digit() {
                return Err(format!(
                    "{item:?} in variable list starts with a digit, so it can never match a variable name (names start with a letter or _)"
                ));
            }
            if item.contains(['*', '?']) {
                parsed.globs.push(item.to_owned());
            } else {
                parsed.names.insert(item.to_owned());
            }
        }
        Ok(Self { only: Some(parsed) })
    }

    /// Exactly these names (no glob characters): what GNU envsubst's SHELL-FORMAT argument
    /// means. An empty iterator allows nothing, as `envsubst ''` substitutes nothing.
    pub fn names<I: IntoIterator<Item = String>>(names: I) -> Self {
        Self {
            only: Some(List {
                names: names.into_iter().collect(),
                globs: Vec::new(),
            }),
        }
    }

    /// Whether every name is allowed (no list was given).
    pub fn is_all(&self) -> bool {
        self.only.is_none()
    }

    /// Whether references to `name` are expanded.
    pub fn allows(&self, name: &str) -> bool {
        match &self.only {
            None => true,
            Some(list) => {
                list.names.contains(name)
                    || list
                        .globs
                        .iter()
                        .any(|glob| glob_matches(glob.as_bytes(), name.as_bytes()))
            }
        }
    }
}

/// `*` matches any run (also empty), `?` exactly one byte; everything else itself. Iterative
/// with one backtrack point, so it is linear-ish and cannot blow the stack.
fn glob_matches(glob: &[u8], name: &[u8]) -> bool {
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// Whether `name` is a POSIX name; used by tests and callers building lists by hand.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|&b| is_name_start(b)) && bytes.iter().all(|&b| is_name_byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_all_allow_everything() {
        assert!(Allow::default().allows("ANY"));
        assert!(Allow::all().is_all());
    }

    #[test]
    fn names_and_globs() {
        let allow = Allow::parse("APP_*, DB_HOST,?X,A*B*C").unwrap();
        assert!(allow.allows("APP_"));
        assert!(allow.allows("APP_PORT"));
        assert!(!allow.allows("APP"));
        assert!(allow.allows("DB_HOST"));
        assert!(!allow.allows("DB_HOSTS"));
        assert!(allow.allows("_X"));
        assert!(!allow.allows("X"));
        assert!(allow.allows("AxxBxC"));
        assert!(allow.allows("ABC"));
        assert!(!allow.allows("ABCD"));
        assert!(!allow.allows("HOME"));
    }

    #[test]
    fn bad_items_are_named() {
        let err = Allow::parse("APP_*,APP-*").unwrap_err();
        assert!(err.contains("\"APP-*\""), "{err}");
        assert!(err.contains("'-'"), "{err}");
        let err = Allow::parse("A,,B").unwrap_err();
        assert!(err.contains("empty item (number 2)"), "{err}");
        assert!(Allow::parse("").unwrap_err().contains("empty item"));
        assert!(Allow::parse("A,").unwrap_err().contains("empty item (number 2)"));
        assert!(Allow::parse("1A").unwrap_err().contains("starts with a digit"));
        assert!(Allow::parse("$A").unwrap_err().contains("'$'"));
    }

    #[test]
    fn exact_names_are_not_globs() {
        let allow = Allow::names(["A*".to_owned(), "B".to_owned()]);
        assert!(!allow.allows("AB"));
        assert!(allow.allows("B"));
        assert!(!Allow::names(Vec::new()).allows("B"));
    }

    #[test]
    fn glob_matching_edge_cases() {
        assert!(glob_matches(b"*", b""));
        assert!(glob_matches(b"**", b"abc"));
        assert!(glob_matches(b"*a*a*a", b"aaaa"));
        assert!(!glob_matches(b"*a*a*a*b", b"aaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!glob_matches(b"?", b""));
        assert!(glob_matches(b"a?c", b"abc"));
    }

    #[test]
    fn valid_names() {
        assert!(is_valid_name("_a1"));
        assert!(!is_valid_name("1a"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a-b"));
    }
}
