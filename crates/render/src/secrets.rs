//! Generated secrets (`--secret NAME=FORMAT:LENGTH`): random values from the OS that are
//! written once and then kept, so a re-run of the pod's init containers does not replace the
//! key every session was signed with (what `openssl rand -base64 32 > /cfg/jwt` does).
//!
//! A secret is the file NAME in the secrets directory. When it exists, its content is the
//! value (one trailing newline dropped, as for `--vars-dir`); otherwise a value is generated
//! here and written when the run commits its outputs. Either way, templates of the same run
//! see it as the variable derived from NAME (`jwt-secret` is `${jwt_secret}`).
//!
//! Values come from getrandom(2), the kernel's cryptographic generator, and are never logged
//! nor shown in errors; the type holding one shows only its length in `Debug`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use pitcrew_core::files::FileError;

use crate::RenderError;
use crate::values::{strip_one_newline, variable_name};

/// The largest LENGTH accepted: 4096 random bytes is already far more than any key needs,
/// and a typo such as `base64:3200000000` must not exhaust memory.
pub const MAX_LENGTH: usize = 4096;

/// How random bytes are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lower-case hex: 2 characters per random byte.
    Hex,
    /// Standard base64 with `=` padding, as `openssl rand -base64` gives (without its newline).
    Base64,
    /// URL-safe base64 (`-` and `_`) without padding, as JWTs and URLs use it.
    Base64Url,
    /// Letters and digits; LENGTH counts characters, each uniform over the 62.
    Alphanumeric,
}

impl Format {
    /// The names accepted on the command line.
    pub const NAMES: &str = "hex, base64, base64url, alphanumeric";

    fn as_str(self) -> &'static str {
        match self {
            Format::Hex => "hex",
            Format::Base64 => "base64",
            Format::Base64Url => "base64url",
            Format::Alphanumeric => "alphanumeric",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `--secret NAME=FORMAT:LENGTH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The file name in the secrets directory.
    pub name: String,
    /// How the value is written.
    pub format: Format,
    /// Random bytes (hex, base64, base64url) or characters (alphanumeric).
    pub length: usize,
}

impl SecretSpec {
    /// The template variable the secret is available as.
    pub fn variable(&self) -> String {
        variable_name(self.name.as_bytes())
    }

    /// What the value is made of, for log lines: `32 random bytes, base64`.
    pub fn describe(&self) -> String {
        match self.format {
            Format::Alphanumeric => format!("{} random characters, alphanumeric", self.length),
            format => format!("{} random bytes, {format}", self.length),
        }
    }
}

impl FromStr for SecretSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = format!(
            "expected NAME=FORMAT:LENGTH such as jwt-secret=base64:32, with FORMAT one of {}",
            Format::NAMES
        );
        let (name, kind) = text
            .split_once('=')
            .ok_or_else(|| format!("invalid --secret {text:?}: {expected}"))?;
        check_name(name).map_err(|why| format!("invalid --secret name {name:?}: {why}"))?;
        let (format, length) = kind
            .split_once(':')
            .ok_or_else(|| format!("invalid --secret {text:?}: {expected}"))?;
        let format = match format.to_ascii_lowercase().as_str() {
            "hex" => Format::Hex,
            "base64" => Format::Base64,
            "base64url" => Format::Base64Url,
            "alphanumeric" => Format::Alphanumeric,
            _ => {
                return Err(format!(
                    "unknown secret format {format:?} in --secret {text:?}: expected one of {}",
                    Format::NAMES
                ));
            }
        };
        let length = length
            .parse::<usize>()
            .ok()
            .filter(|length| (1..=MAX_LENGTH).contains(length))
            .ok_or_else(|| {
                format!(
                    "invalid secret length {length:?} in --secret {text:?}: expected a number from 1 to \
                     {MAX_LENGTH} (random bytes; characters for alphanumeric)"
                )
            })?;
        Ok(SecretSpec {
            name: name.to_owned(),
            format,
            length,
        })
    }
}

/// A secret's NAME is one file name: no path, and nothing Kubernetes' volume internals
/// (`..data`) or this tool's temporary files could be mistaken for.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty; expected a file name such as jwt-secret");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("a secret is one file in --secrets-dir: no / in its name");
    }
    if name == "." || name.starts_with("..") {
        return Err("names starting with .. (and .) are not file names pitcrew writes");
    }
    Ok(())
}

/// Random bytes from the OS.
fn random_bytes(length: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; length];
    getrandom::fill(&mut bytes).map_err(|err| io::Error::other(err.to_string()))?;
    Ok(bytes)
}

/// A new value in `format`.
pub fn generate(format: Format, length: usize) -> io::Result<Vec<u8>> {
    Ok(match format {
        Format::Hex => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            random_bytes(length)?
                .iter()
                .flat_map(|byte| [DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 15)]])
                .collect()
        }
        Format::Base64 => base64::engine::general_purpose::STANDARD
            .encode(random_bytes(length)?)
            .into_bytes(),
        Format::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(random_bytes(length)?)
            .into_bytes(),
        Format::Alphanumeric => alphanumeric(length)?,
    })
}

/// `length` characters uniform over `[A-Za-z0-9]`: a random byte below 248 (4 × 62) picks
/// `byte % 62`, a byte of 248 or more is thrown away, so no character is more likely than
/// another (a plain `% 62` would favour the first eight).
fn alphanumeric(length: usize) -> io::Result<Vec<u8>> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const LIMIT: u8 = 248;
    let mut value = Vec::with_capacity(length);
    while value.len() < length {
        // 3% of bytes are thrown away: ask for a few more than needed.
        let missing = length - value.len();
        for byte in random_bytes(missing + missing / 16 + 4)? {
            if byte < LIMIT && value.len() < length {
                value.push(ALPHABET[usize::from(byte % 62)]);
            }
        }
    }
    Ok(value)
}

/// Where a secret's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Generated by this run; written when the run commits.
    Generated,
    /// Read from the existing file, which is kept.
    Existing,
}

/// A secret with its value, ready for the templates and for writing.
pub struct Secret {
    /// What was asked for.
    pub spec: SecretSpec,
    /// The file.
    pub path: PathBuf,
    /// Generated now or read back.
    pub origin: Origin,
    /// The value (never logged).
    pub value: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("spec", &self.spec)
            .field("path", &self.path)
            .field("origin", &self.origin)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

/// Checks that the secrets do not clash with each other, then reads each existing one and
/// generates the missing ones (in memory only).
pub fn resolve(specs: &[SecretSpec], directory: &Path) -> Result<Vec<Secret>, RenderError> {
    for (index, spec) in specs.iter().enumerate() {
        for earlier in &specs[..index] {
            if earlier.name == spec.name {
                return Err(RenderError::Usage(format!(
                    "--secret {} is given twice",
                    spec.name
                )));
            }
            if earlier.variable() == spec.variable() {
                return Err(RenderError::Usage(format!(
                    "--secret {} and --secret {} would both be the template variable {}; rename one",
                    earlier.name,
                    spec.name,
                    spec.variable()
                )));
            }
        }
    }
    specs
        .iter()
        .map(|spec| {
            let path = directory.join(&spec.name);
            let (origin, value) = match read_existing(&path)? {
                Some(value) => (Origin::Existing, value),
                None => (
                    Origin::Generated,
                    generate(spec.format, spec.length).map_err(|err| {
                        RenderError::Failure(format!(
                            "cannot get random bytes from the OS for secret {}: {err}",
                            spec.name
                        ))
                    })?,
                ),
            };
            Ok(Secret {
                spec: spec.clone(),
                path,
                origin,
                value,
            })
        })
        .collect()
}

/// The value of an existing secret file, `None` when there is none.
fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, RenderError> {
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(FileError::input(path, "read secret", err).into()),
        Ok(_) => {}
    }
    if path.is_dir() {
        return Err(RenderError::Config(format!(
            "secret file {} is a directory; remove it or choose another --secret name",
            path.display()
        )));
    }
    let value =
        strip_one_newline(std::fs::read(path).map_err(|err| FileError::input(path, "read secret", err))?);
    if value.is_empty() {
        return Err(RenderError::Config(format!(
            "secret file {} exists but is empty (a failed earlier write?); delete it to have a new \
             secret generated",
            path.display()
        )));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_bad_part() {
        assert_eq!(
            "jwt-secret=base64:32".parse::<SecretSpec>(),
            Ok(SecretSpec {
                name: "jwt-secret".into(),
                format: Format::Base64,
                length: 32
            })
        );
        assert_eq!(
            "k=Base64URL:16".parse::<SecretSpec>().unwrap().format,
            Format::Base64Url
        );
        for (bad, shown) in [
            ("x=base32:10", "\"base32\""),
            ("x=hex:0", "\"0\""),
            ("x=hex:4097", "\"4097\""),
            ("x=hex:99999999999999999999999", "99999999999999999999999"),
            ("x=hex:-1", "\"-1\""),
            ("x=hex", "NAME=FORMAT:LENGTH"),
            ("x", "NAME=FORMAT:LENGTH"),
            ("=hex:3", "empty"),
            ("a/b=hex:3", "no /"),
            ("..=hex:3", "\"..\""),
            ("..data=hex:3", "\"..data\""),
            (".=hex:3", "\".\""),
            ("../x=hex:3", "\"../x\""),
        ] {
            let err = bad.parse::<SecretSpec>().unwrap_err();
            assert!(err.contains(shown), "{bad}: {err}");
        }
        assert!(
            "x=base32:10"
                .parse::<SecretSpec>()
                .unwrap_err()
                .contains("hex, base64, base64url, alphanumeric")
        );
    }

    #[test]
    fn formats_have_the_documented_shape() {
        let hex = generate(Format::Hex, 32).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.iter()
                .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
        );
        let base64 = generate(Format::Base64, 32).unwrap();
        assert_eq!(base64.len(), 44);
        assert!(base64.ends_with(b"="));
        let url = generate(Format::Base64Url, 32).unwrap();
        assert_eq!(url.len(), 43);
        assert!(
            url.iter()
                .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'_')
        );
        let alnum = generate(Format::Alphanumeric, 40).unwrap();
        assert_eq!(alnum.len(), 40);
        assert!(alnum.iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(
            generate(Format::Hex, 16).unwrap(),
            generate(Format::Hex, 16).unwrap()
        );
    }

    /// Every one of the 62 characters shows up about equally often: with 620 000 draws each
    /// is expected 10 000 times (standard deviation about 100); a modulo bias would give the
    /// first eight about 10 300.
    #[test]
    fn alphanumeric_is_uniform() {
        let value = alphanumeric(620_000).unwrap();
        let mut counts = [0u32; 256];
        for byte in value {
            counts[usize::from(byte)] += 1;
        }
        let used: Vec<u32> = counts.iter().copied().filter(|count| *count > 0).collect();
        assert_eq!(used.len(), 62);
        for count in used {
            assert!((9_500..10_500).contains(&count), "{count}");
        }
    }

    #[test]
    fn existing_secrets_are_read_back_and_missing_ones_generated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), "kept-value\n").unwrap();
        let specs: Vec<SecretSpec> = ["old=hex:8", "new=alphanumeric:12"]
            .iter()
            .map(|spec| spec.parse().unwrap())
            .collect();
        let secrets = resolve(&specs, dir.path()).unwrap();
        assert_eq!(secrets[0].origin, Origin::Existing);
        assert_eq!(secrets[0].value, b"kept-value");
        assert_eq!(secrets[1].origin, Origin::Generated);
        assert_eq!(secrets[1].value.len(), 12);
        assert!(!dir.path().join("new").exists(), "resolve writes nothing");
        assert!(!format!("{:?}", secrets[0]).contains("kept-value"));
    }

    #[test]
    fn empty_or_clashing_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let spec = |text: &str| text.parse::<SecretSpec>().unwrap();
        let err = resolve(&[spec("empty=hex:8")], dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("empty") && err.to_string().contains("delete it"),
            "{err}"
        );
        assert_eq!(err.exit_code().code(), 78);
        let err = resolve(&[spec("a-b=hex:8"), spec("a.b=hex:8")], dir.path()).unwrap_err();
        assert!(err.to_string().contains("a_b"), "{err}");
        assert_eq!(err.exit_code().code(), 64);
        let err = resolve(&[spec("a=hex:8"), spec("a=hex:9")], dir.path()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
