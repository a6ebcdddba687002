//! Where values come from: the [`Variables`] trait and its implementations for the std maps.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Where values come from. Values are bytes, as GNU envsubst is byte-oriented: a value may hold
/// any byte, including NUL, newlines and invalid UTF-8, and is copied as is.
pub trait Variables {
    /// The value of `name`, or `None` when it is unset.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// `${V=d}` / `${V:=d}` assign.
    fn set(&mut self, name: &str, value: Vec<u8>);
}

impl<S: BuildHasher> Variables for HashMap<String, Vec<u8>, S> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HashMap::get(self, name).map(Vec::as_slice)
    }

    fn set(&mut self, name: &str, value: Vec<u8>) {
        self.insert(name.to_owned(), value);
    }
}

impl Variables for BTreeMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        BTreeMap::get(self, name).map(Vec::as_slice)
    }

    fn set(&mut self, name: &str, value: Vec<u8>) {
        self.insert(name.to_owned(), value);
    }
}

/// A hash for variable names: FNV-1a, a few cycles for a short name where the std SipHash
/// costs tens of nanoseconds, which matters at one lookup per reference. Names come from the
/// operator's pod spec and templates, not from an attacker, so hash flooding is no concern.
#[derive(Debug, Clone, Copy)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`NameHasher`]s.
pub type BuildNameHasher = BuildHasherDefault<NameHasher>;

/// The map to keep variables in: a `HashMap` with the fast [`NameHasher`]. Implements
/// [`Variables`] like any `HashMap<String, Vec<u8>, _>`.
pub type VarMap = HashMap<String, Vec<u8>, BuildNameHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_map_gets_and_sets() {
        let mut map = VarMap::default();
        Variables::set(&mut map, "A", b"x".to_vec());
        assert_eq!(Variables::get(&map, "A"), Some(&b"x"[..]));
        assert_eq!(Variables::get(&map, "B"), None);
        let mut hasher = NameHasher::default();
        hasher.write(b"a");
        assert_eq!(hasher.finish(), 0xaf63_dc4c_8601_ec8c, "FNV-1a of \"a\"");
    }
}
