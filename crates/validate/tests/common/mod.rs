//! Shared helpers for the binary's tests: run `pitcrew-validate` with exactly the environment
//! a test gives it, read its log lines, and make certificates with rcgen.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-validate");

/// A value with every character that breaks naive quoting, for leak checks.
pub const SECRET: &str = "s3cr3t&/#?@:x y";

/// What a run gave.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout (the tool prints nothing there; kept to prove it).
    pub stdout: String,
    /// stderr (the logs).
    pub stderr: String,
    /// The termination log's content, empty when it was not written.
    pub termination: String,
}

impl Run {
    /// Asserts the exit code, showing the logs when it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit code; stderr:\n{}", self.stderr);
        self
    }

    /// Asserts that every text appears in the logs.
    pub fn shows(&self, texts: &[&str]) -> &Self {
        for text in texts {
            assert!(
                self.stderr.contains(text),
                "{text:?} not in stderr:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Asserts that `text` appears neither in the logs nor in the termination log.
    pub fn never_shows(&self, text: &str) -> &Self {
        assert!(
            !self.stderr.contains(text),
            "{text:?} leaked into stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.termination.contains(text),
            "{text:?} leaked into the termination log: {}",
            self.termination
        );
        self
    }

    /// The ERROR lines of a text-format run, less the summary line.
    pub fn problems(&self) -> Vec<&str> {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .collect();
        match lines.split_last() {
            Some((last, rest)) if last.contains(" checked, ") => rest.to_vec(),
            _ => lines,
        }
    }

    /// The records of a `--log-format json` run.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stderr
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
            .collect()
    }
}

/// Runs the binary with `args` and only the environment `env` (plus a termination log in a
/// temp dir).
pub fn validate(args: &[&str], env: &[(&str, &str)]) -> Run {
    validate_in(None, args, env)
}

/// [`validate`] in the working directory `cwd`.
pub fn validate_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let log_dir = tempfile::tempdir().unwrap();
    let termination = log_dir.path().join("termination-log");
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PITCREW_TERMINATION_LOG", &termination)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let output = command.output().expect("cannot start pitcrew-validate");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        termination: std::fs::read_to_string(&termination).unwrap_or_default(),
    }
}

/// Writes `content` to `path`, creating its directory.
pub fn write(path: &Path, content: impl AsRef<[u8]>) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    path.to_path_buf()
}

/// A path as an argument.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A key from tests/data (RSA keys: ring cannot generate them).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A key pair from a PEM file in tests/data.
pub fn data_key(name: &str) -> KeyPair {
    KeyPair::from_pem(&std::fs::read_to_string(data(name)).unwrap()).unwrap()
}

/// Sets notBefore and notAfter to now plus `from` and `until` days (negative: in the past).
/// (rcgen's date type is the `time` crate's, which it does not re-export.)
pub fn set_validity(params: &mut CertificateParams, from: i64, until: i64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = |days: i64| {
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let shift = Duration::from_secs(days.unsigned_abs() * 86_400);
        if days >= 0 {
            epoch + now + shift
        } else {
            epoch + now - shift
        }
    };
    params.not_before = at(from);
    params.not_after = at(until);
}

/// A certificate and its key.
pub struct Issued {
    /// The certificate.
    pub cert: Certificate,
    /// Its key.
    pub key: KeyPair,
}

/// A self-signed CA.
pub fn ca(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(name).self_signed(&key).unwrap();
    Issued { cert, key }
}

/// An intermediate CA signed by `issuer`.
pub fn intermediate(name: &str, issuer: &Issued) -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(name)
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap();
    Issued { cert, key }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// What a leaf certificate looks like.
pub struct Leaf<'a> {
    /// SANs: DNS names, or IP addresses.
    pub names: &'a [&'a str],
    /// notBefore, in days from now.
    pub from: i64,
    /// notAfter, in days from now.
    pub until: i64,
    /// Its key (a fresh P-256 key when `None`).
    pub key: Option<KeyPair>,
    /// Signed by this CA (self-signed when `None`).
    pub issuer: Option<&'a Issued>,
}

impl Default for Leaf<'_> {
    fn default() -> Self {
        Leaf {
            names: &["app.test"],
            from: -1,
            until: 90,
            key: None,
            issuer: None,
        }
    }
}

impl Leaf<'_> {
    /// Makes the certificate.
    pub fn issue(self) -> Issued {
        let key = self.key.unwrap_or_else(|| KeyPair::generate().unwrap());
        let names: Vec<String> = self.names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().map_or("leaf", String::as_str));
        set_validity(&mut params, self.from, self.until);
        let cert = match self.issuer {
            Some(issuer) => params.signed_by(&key, &issuer.cert, &issuer.key).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        Issued { cert, key }
    }
}
