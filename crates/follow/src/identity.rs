//! File identity: device + inode AND a fingerprint of the first bytes. (Skeleton.)

/// How many leading bytes the fingerprint covers at most.
pub const FINGERPRINT_BYTES: usize = 1024;

/// A stable (across builds and versions) hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Bytes covered (fewer than [`FINGERPRINT_BYTES`] while the file is shorter).
    pub len: u32,
    /// The hash.
    pub hash: u64,
}

/// Who a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// The first bytes.
    pub fingerprint: Fingerprint,
}
