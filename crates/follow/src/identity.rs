//! File identity: device + inode AND a fingerprint of the first bytes.
//!
//! Device + inode alone is not enough: file systems reuse an inode number as soon as the file
//! that had it is gone, so after a rotation a brand-new file can carry the number of one in the
//! checkpoint (fluent-bit #4895, #11455: resumed at a wrong offset). A fingerprint of the first
//! bytes alone is not enough either: two files whose first lines are identical (a CSV header, a
//! banner) collide (Vector #5833). A [`FileKey`] therefore needs both to match.
//!
//! # How keys compare
//!
//! A file shorter than [`FINGERPRINT_BYTES`] has a fingerprint over fewer bytes (`len`), and the
//! fingerprint grows with the file until it covers [`FINGERPRINT_BYTES`]. So keys are not
//! compared with `==` against a file: a key with fingerprint length `L` **matches** a file when
//! device and inode are equal and the file's first `L` bytes hash to the key's hash
//! ([`FileKey::matches`]). A file that grew keeps matching its older keys; a file truncated and
//! rewritten, or a new file on a reused inode, does not (unless its first `L` bytes are the same,
//! which for `L = 0`, an empty file, is always true — harmless, as an empty file's offset is 0).
//!
//! The hash is 64-bit FNV-1a, fixed by its definition: the same bytes give the same hash in
//! every build, Rust version and architecture, which a checkpoint written by one binary and read
//! by the next needs (std's `DefaultHasher` promises none of that).

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

/// 64-bit FNV-1a: offset basis and prime from the specification (Fowler, Noll, Vo).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

impl Fingerprint {
    /// The fingerprint of a file whose first bytes are `head` (only the first
    /// [`FINGERPRINT_BYTES`] count).
    pub fn of(head: &[u8]) -> Fingerprint {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            // At most FINGERPRINT_BYTES (1024): always fits.
            len: u32::try_from(head.len()).unwrap_or(u32::MAX),
            hash: fnv1a64(head),
        }
    }

    /// Whether a file starting with `head` carries this fingerprint: its first `len` bytes
    /// hash to `hash`. False when `head` is shorter than `len`.
    pub fn matches(&self, head: &[u8]) -> bool {
        let len = self.len as usize;
        head.len() >= len && fnv1a64(&head[..len]) == self.hash
    }
}

impl FileKey {
    /// Whether this key names the file with device `dev`, inode `ino` and first bytes `head`
    /// (see the module docs: the fingerprint is matched as a prefix).
    pub fn matches(&self, dev: u64, ino: u64, head: &[u8]) -> bool {
        self.dev == dev && self.ino == ino && self.fingerprint.matches(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite: stability across builds is the point.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_growing_file_keeps_matching_its_shorter_fingerprint() {
        let short = Fingerprint::of(b"first line\n");
        assert_eq!(short.len, 11);
        assert!(short.matches(b"first line\nsecond line\n"));
        assert!(!short.matches(b"first line"), "a shorter head cannot match");
        assert!(!short.matches(b"other line\nsecond line\n"));
    }

    #[test]
    fn only_the_first_fingerprint_bytes_count() {
        let mut long = vec![b'x'; FINGERPRINT_BYTES];
        let base = Fingerprint::of(&long);
        long.extend_from_slice(b"anything after");
        assert_eq!(Fingerprint::of(&long), base);
        assert_eq!(base.len as usize, FINGERPRINT_BYTES);
    }

    #[test]
    fn inode_reuse_and_identical_heads_are_told_apart() {
        let key = FileKey {
            dev: 1,
            ino: 42,
            fingerprint: Fingerprint::of(b"old content\n"),
        };
        assert!(key.matches(1, 42, b"old content\nmore\n"));
        // Same inode number, other content: a reused inode.
        assert!(!key.matches(1, 42, b"new content\n"));
        // Same content, other inode: another file with an identical first line.
        assert!(!key.matches(1, 43, b"old content\nmore\n"));
        assert!(!key.matches(2, 42, b"old content\nmore\n"));
    }
}
