//! What a download must satisfy before it is put in place: an expected digest (`--sha256`,
//! `--sha512`, or a `SHA256SUMS`-style file), a size range and a content type; and the
//! running hash that is fed while the bytes arrive, so nothing is ever read twice.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use sha2::Digest as _;

/// A hash algorithm `--sha256`/`--sha512` and checksum files name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (64 hex digits).
    Sha256,
    /// SHA-512 (128 hex digits).
    Sha512,
}

impl Algorithm {
    /// `sha256` or `sha512`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The digest length in bytes.
    fn len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// The algorithm whose hex digest has `hex_len` digits.
    fn for_hex_len(hex_len: usize) -> Option<Algorithm> {
        match hex_len {
            64 => Some(Algorithm::Sha256),
            128 => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// An expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// The digest bytes.
    pub digest: Vec<u8>,
}

impl Expected {
    /// Parses a hex digest for `algorithm` (upper or lower case; surrounding spaces ignored).
    /// The error names the flag, the length found and the one expected.
    pub fn parse(algorithm: Algorithm, text: &str) -> Result<Expected, String> {
        let flag = format!("--{}", algorithm.as_str());
        let text = text.trim();
        let want = algorithm.len() * 2;
        if !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid {flag} {:?}: not hexadecimal; expected {want} hex digits",
                shorten(text, 140)
            ));
        }
        let digest = parse_hex(text).unwrap_or_default();
        if digest.len() != algorithm.len() || text.len() != want {
            return Err(format!(
                "invalid {flag} value: {} hex digits where {} has {want}{}",
                text.len(),
                algorithm.as_str(),
                match Algorithm::for_hex_len(text.len()) {
                    Some(other) if other != algorithm => format!(" (that is a {} digest)", other.as_str()),
                    _ => String::new(),
                }
            ));
        }
        Ok(Expected { algorithm, digest })
    }

    /// The digest in lower-case hex.
    pub fn hex(&self) -> String {
        hex(&self.digest)
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex())
    }
}

/// Lower-case hex of `bytes`.
pub use pitcrew_core::text::hex;

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    let digit = |byte: u8| {
        char::from(byte)
            .to_digit(16)
            .and_then(|value| u8::try_from(value).ok())
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// `text` cut to `limit` characters, for messages that quote user input.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(limit).collect();
    short.push('…');
    short
}

/// A running hash, fed as the bytes arrive. Its state is kept across a resumed download.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm().as_str())
    }
}

impl Hasher {
    /// A fresh hash for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Which algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(hash) => hash.update(bytes),
            Hasher::Sha512(hash) => hash.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(hash) => hash.finalize().to_vec(),
            Hasher::Sha512(hash) => hash.finalize().to_vec(),
        }
    }
}

/// The digest of the file at `path`, or `None` when it is not a regular file (or is gone).
/// Blocking: call it off the async runtime.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut hasher = Hasher::new(algorithm);
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(Some(hasher.finish()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// A `SHA256SUMS`-style file: `HEX  name`, `HEX *name` (binary mode), or BSD's
/// `SHA256 (name) = HEX`. The algorithm comes from the digest's length (64 or 128 hex digits)
/// or the BSD tag. Lines of any other shape (comments, a PGP signature's armour) are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums {
    entries: Vec<(String, Expected)>,
}

impl Checksums {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Checksums {
        let entries = text.lines().filter_map(parse_line).collect();
        Checksums { entries }
    }

    /// The expected digest for `name`: an exact match of the listed name, or of its last
    /// path component (`./dist/app.tar.gz` lists `app.tar.gz`). `Err` when listed twice with
    /// different digests.
    pub fn lookup(&self, name: &str) -> Result<Option<&Expected>, String> {
        let base = |listed: &str| listed.rsplit('/').next().unwrap_or(listed).to_owned();
        let exact: Vec<&Expected> = self
            .entries
            .iter()
            .filter(|(listed, _)| listed == name)
            .map(|(_, expected)| expected)
            .collect();
        let found = if exact.is_empty() {
            self.entries
                .iter()
                .filter(|(listed, _)| base(listed) == name)
                .map(|(_, expected)| expected)
                .collect()
        } else {
            exact
        };
        match found.as_slice() {
            [] => Ok(None),
            [first, rest @ ..] if rest.iter().all(|other| other == first) => Ok(Some(first)),
            _ => Err(format!(
                "{name:?} is listed more than once with different digests"
            )),
        }
    }

    /// How many entries were found.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_line(line: &str) -> Option<(String, Expected)> {
    let line = line.trim_end_matches('\r');
    // BSD: `SHA256 (name) = hex`.
    for (tag, algorithm) in [("SHA256 (", Algorithm::Sha256), ("SHA512 (", Algorithm::Sha512)] {
        if let Some(rest) = line.strip_prefix(tag)
            && let Some((name, hex)) = rest.rsplit_once(") = ")
        {
            return Expected::parse(algorithm, hex)
                .ok()
                .map(|expected| (name.to_owned(), expected));
        }
    }
    // GNU: `hex  name` or `hex *name`; a leading `\` marks an escaped name, which we skip.
    let (hex, rest) = line.split_once(' ')?;
    let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
    let algorithm = Algorithm::for_hex_len(hex.len())?;
    if name.is_empty() || hex.starts_with('\\') {
        return None;
    }
    let name = name.strip_prefix("./").unwrap_or(name);
    Expected::parse(algorithm, hex)
        .ok()
        .map(|expected| (name.to_owned(), expected))
}

/// An expected media type, `type/subtype` or `type/*`, compared case-insensitively with the
/// response's Content-Type, parameters (`; charset=…`) ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType(String);

impl std::str::FromStr for ContentType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let essence = media_type(text);
        let valid = essence.split_once('/').is_some_and(|(kind, sub)| {
            let token = |part: &str| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&byte))
            };
            token(kind) && token(sub) && kind != "*"
        });
        if !valid {
            return Err(format!(
                "invalid --content-type {text:?}: expected a media type such as text/csv, \
                 application/json or image/*"
            ));
        }
        Ok(ContentType(essence))
    }
}

impl ContentType {
    /// Whether a response's Content-Type value matches.
    pub fn matches(&self, actual: &str) -> bool {
        let actual = media_type(actual);
        match self.0.strip_suffix("/*") {
            Some(kind) => actual.split_once('/').is_some_and(|(found, _)| found == kind),
            None => actual == self.0,
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Text/CSV; charset=utf-8` → `text/csv`.
fn media_type(text: &str) -> String {
    text.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A byte count for people: `512 B`, `1.5 KiB`, `1.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision loss is fine for a figure shown with one decimal.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size on the command line: a number of bytes with an optional unit, `k`/`M`/`G`/`T`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), e.g. `500MiB`, `2G`, `1`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => 0,
    };
    let number: Option<u64> = digits.parse().ok();
    match number {
        Some(number) if factor > 0 => number.checked_mul(factor).ok_or_else(|| {
            format!(
                "invalid size {text:?}: larger than the largest accepted, {} bytes",
                u64::MAX
            )
        }),
        _ => Err(format!(
            "invalid size {text:?}: expected bytes with an optional unit, e.g. 1, 500k, 20MiB, 2G"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_parse_in_either_case_and_wrong_lengths_name_the_lengths() {
        let expected = Expected::parse(Algorithm::Sha256, &EMPTY_SHA256.to_uppercase()).unwrap();
        assert_eq!(expected.hex(), EMPTY_SHA256);
        let err = Expected::parse(Algorithm::Sha256, &EMPTY_SHA256[..63]).unwrap_err();
        assert!(
            err.contains("63 hex digits where sha256 has 64"),
            "odd length: {err}"
        );
        let err = Expected::parse(Algorithm::Sha256, &EMPTY_SHA256[..62]).unwrap_err();
        assert!(err.contains("62 hex digits where sha256 has 64"), "{err}");
        let err = Expected::parse(Algorithm::Sha512, EMPTY_SHA256).unwrap_err();
        assert!(err.contains("that is a sha256 digest"), "{err}");
        let err = Expected::parse(Algorithm::Sha256, &"zz".repeat(32)).unwrap_err();
        assert!(err.contains("not hexadecimal"), "{err}");
        let huge = "a".repeat(100_000);
        assert!(Expected::parse(Algorithm::Sha256, &huge).unwrap_err().len() < 300);
    }

    #[test]
    fn the_running_hash_matches_the_known_empty_digest_and_a_file_hash() {
        assert_eq!(hex(&Hasher::new(Algorithm::Sha256).finish()), EMPTY_SHA256);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"abc").unwrap();
        let mut hasher = Hasher::new(Algorithm::Sha512);
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(
            hash_file(&path, Algorithm::Sha512).unwrap().unwrap(),
            hasher.finish()
        );
        assert_eq!(
            hash_file(&dir.path().join("gone"), Algorithm::Sha256).unwrap(),
            None
        );
        assert_eq!(hash_file(dir.path(), Algorithm::Sha256).unwrap(), None);
    }

    #[test]
    fn checksum_files_in_gnu_and_bsd_styles() {
        let sha512 = "ab".repeat(64);
        let text = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{EMPTY_SHA256}  empty.txt\n\
             {} *./dist/app.tar.gz\nSHA512 (big.bin) = {sha512}\r\n# comment\nnot a line\n",
            "11".repeat(32)
        );
        let sums = Checksums::parse(&text);
        assert_eq!(sums.len(), 3);
        let empty = sums.lookup("empty.txt").unwrap().unwrap();
        assert_eq!(empty.hex(), EMPTY_SHA256);
        assert_eq!(sums.lookup("app.tar.gz").unwrap().unwrap().hex(), "11".repeat(32));
        let big = sums.lookup("big.bin").unwrap().unwrap();
        assert_eq!(big.algorithm, Algorithm::Sha512);
        assert_eq!(big.hex(), sha512);
        assert_eq!(sums.lookup("other").unwrap(), None);
        let twice = Checksums::parse(&format!("{EMPTY_SHA256}  a\n{}  a\n", "22".repeat(32)));
        assert!(twice.lookup("a").unwrap_err().contains("more than once"));
    }

    #[test]
    fn content_types_compare_by_media_type_only() {
        let csv: ContentType = "text/csv".parse().unwrap();
        assert!(csv.matches("text/csv"));
        assert!(csv.matches("Text/CSV; charset=utf-8"));
        assert!(!csv.matches("text/html"));
        assert!(!csv.matches(""));
        let any_image: ContentType = "image/*".parse().unwrap();
        assert!(any_image.matches("image/png"));
        assert!(!any_image.matches("text/png"));
        for bad in ["csv", "", "*/*", "text/", "a b/c"] {
            assert!(bad.parse::<ContentType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_take_units_and_huge_values_are_refused_not_wrapped() {
        assert_eq!(parse_size("1").unwrap(), 1);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("500k").unwrap(), 500_000);
        assert_eq!(parse_size("20MiB").unwrap(), 20 << 20);
        assert_eq!(parse_size("2 G").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["", "-1", "1.5G", "ten", "5 parsecs", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(
            parse_size("18446744073709551615G")
                .unwrap_err()
                .contains("largest")
        );
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
