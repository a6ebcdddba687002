//! Where values come from: the [`Variables`] trait and its implementations for the std maps.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

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
