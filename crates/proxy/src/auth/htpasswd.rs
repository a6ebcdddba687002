//! `--htpasswd-file`: `user:hash` lines as Apache's `htpasswd -B` writes them. Only bcrypt
//! (`$2a$`, `$2b$`, `$2y$`) is accepted: MD5-crypt (`$apr1$`), `{SHA}`, DES crypt and plain
//! text are broken by a laptop, so a file holding one is refused at start, naming its line
//! (never the hash).
//!
//! bcrypt is slow on purpose (tens of milliseconds at the usual cost), so checks run on the
//! blocking pool, a few at a time, and a user's correct password is remembered (as a SHA-256
//! digest, per version of the file) so that a client sending the same Basic credentials on
//! every request pays for bcrypt once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

/// How many verified (user, password) pairs are remembered before the memory is emptied.
const REMEMBERED: usize = 4096;

/// A cost above this makes every first login of a user take a second or more.
const SLOW_COST: u32 = 13;

/// The users of one version of the file.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    /// Digests of `user \0 password` pairs that bcrypt accepted.
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Why Basic credentials were refused (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownUser,
    WrongPassword,
}

impl Refusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::UnknownUser => "htpasswd: unknown user",
            Refusal::WrongPassword => "htpasswd: wrong password",
        }
    }
}

impl Users {
    /// How many users there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Checks `user`'s `password`; runs bcrypt on the blocking pool, holding one of `slots`,
    /// unless this pair was verified before (a remembered pair waits for no slot).
    pub(crate) async fn verify(
        self: Arc<Self>,
        user: &str,
        password: &[u8],
        slots: &tokio::sync::Semaphore,
    ) -> Result<(), Refusal> {
        let key = pair_digest(user, password);
        if self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(());
        }
        // An unknown user is checked against another user's hash anyway, so that the time of
        // the answer does not say which user names exist.
        let (hash, known) = match self.hashes.get(user) {
            Some(hash) => (hash.clone(), true),
            None => match self.hashes.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return Err(Refusal::UnknownUser),
            },
        };
        let password = password.to_vec();
        // Closed only when the runtime stops; then refusing is right.
        let Ok(_slot) = slots.acquire().await else {
            return Err(Refusal::WrongPassword);
        };
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        match (known, matched) {
            (false, _) => Err(Refusal::UnknownUser),
            (true, false) => Err(Refusal::WrongPassword),
            (true, true) => {
                let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
                if verified.len() >= REMEMBERED {
                    verified.clear();
                }
                verified.insert(key);
                Ok(())
            }
        }
    }
}

fn pair_digest(user: &str, password: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password);
    hasher.finalize().into()
}

/// Parses the file; errors name the line and the kind of hash, never the hash.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<(Users, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let line = bytes[..err.valid_up_to()].split(|&b| b == b'\n').count();
        format!("line {line}: not UTF-8")
    })?;
    let mut hashes: HashMap<String, String> = HashMap::new();
    let mut line_of: HashMap<String, usize> = HashMap::new();
    let mut slow = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim_end_matches(['\r', ' ', '\t']);
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {number}: no `:` between user and hash"));
        };
        if user.is_empty() {
            return Err(format!("line {number}: empty user name"));
        }
        if user.chars().any(char::is_control) {
            return Err(format!("line {number}: the user name has control characters"));
        }
        let cost = check_hash(hash).map_err(|problem| format!("line {number}: user {user:?}: {problem}"))?;
        if cost >= SLOW_COST {
            slow.push(number);
        }
        if let Some(first) = line_of.get(user) {
            return Err(format!(
                "line {number}: user {user:?} again (first on line {first})"
            ));
        }
        line_of.insert(user.to_owned(), number);
        hashes.insert(user.to_owned(), hash.to_owned());
    }
    if hashes.is_empty() {
        tracing::warn!(
            "--htpasswd-file {}: no users; every Basic credential is refused",
            path.display()
        );
    }
    if !slow.is_empty() {
        tracing::warn!(
            "--htpasswd-file {}: bcrypt cost {SLOW_COST} or more on lines {slow:?}: each first \
             login of those users takes a second or more of CPU",
            path.display()
        );
    }
    let summary = format!("{} users", hashes.len());
    Ok((
        Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
        },
        summary,
    ))
}

/// The cost of a bcrypt hash, or what kind of hash it is instead.
fn check_hash(hash: &str) -> Result<u32, String> {
    let kind = if hash.starts_with("$apr1$") {
        Some("an Apache MD5 ($apr1$) hash")
    } else if hash.starts_with("$1$") {
        Some("an MD5-crypt ($1$) hash")
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        Some("a SHA-crypt ($5$/$6$) hash")
    } else if hash.starts_with("{SHA}") {
        Some("a {SHA} hash")
    } else if hash.starts_with("$2x$") {
        Some("a $2x$ bcrypt hash (the variant with the old sign bug)")
    } else {
        None
    };
    let advice = "only bcrypt is accepted (`htpasswd -B`)";
    if let Some(kind) = kind {
        return Err(format!("{kind}; {advice}"));
    }
    if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
        return Err(format!("not a bcrypt hash (plain text or DES crypt?); {advice}"));
    }
    // bcrypt's own errors quote the hash: only its verdict is used.
    let parts = bcrypt::HashParts::from_str(hash).map_err(|_| "a malformed bcrypt hash".to_owned())?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost} is outside 4..=31"));
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Apache's own `htpasswd -nbB -C 5 alice wonderland` (2.4.71).
    const ALICE: &str = "alice:$2y$05$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy";

    fn users(text: &str) -> Arc<Users> {
        Arc::new(parse(Path::new("htpasswd"), text.as_bytes()).unwrap().0)
    }

    fn slots() -> tokio::sync::Semaphore {
        tokio::sync::Semaphore::new(2)
    }

    #[tokio::test]
    async fn verifies_bcrypt() {
        let bob_hash = bcrypt::hash("builder:with:colons", 4).unwrap();
        let file = format!("# users\n{ALICE}\r\n\nbob:{bob_hash}\n");
        let users = users(&file);
        assert_eq!(users.len(), 2);
        assert_eq!(
            Arc::clone(&users).verify("alice", b"wonderland", &slots()).await,
            Ok(())
        );
        // Remembered: the same answer without bcrypt (and still only for the right password).
        assert_eq!(
            Arc::clone(&users).verify("alice", b"wonderland", &slots()).await,
            Ok(())
        );
        assert_eq!(
            Arc::clone(&users).verify("alice", b"Wonderland", &slots()).await,
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            Arc::clone(&users).verify("alice", b"", &slots()).await,
            Err(Refusal::WrongPassword)
        );
        assert_eq!(
            Arc::clone(&users)
                .verify("bob", b"builder:with:colons", &slots())
                .await,
            Ok(())
        );
        assert_eq!(
            Arc::clone(&users).verify("carol", b"wonderland", &slots()).await,
            Err(Refusal::UnknownUser)
        );
        // The pair digest separates user from password: "alic" + "ewonderland" is not alice.
        assert_eq!(
            Arc::clone(&users).verify("alic", b"ewonderland", &slots()).await,
            Err(Refusal::UnknownUser)
        );
    }

    #[tokio::test]
    async fn empty_file_refuses_everyone() {
        let users = users("\n# nobody\n");
        assert_eq!(users.len(), 0);
        assert_eq!(
            users.verify("alice", b"wonderland", &slots()).await,
            Err(Refusal::UnknownUser)
        );
    }

    #[test]
    fn other_hash_kinds_are_refused_by_line_without_the_hash() {
        let cases = [
            ("bob:$apr1$X7k9j56i$wzM3X3ZHz5cBk81R1Xuql/", "$apr1$"),
            ("bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=", "{SHA}"),
            ("bob:$1$abcdefgh$0123456789abcdefghijkl", "$1$"),
            ("bob:$6$salt$hashhashhash", "$6$"),
            (
                "bob:$2x$05$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy",
                "$2x$",
            ),
            ("bob:plaintextpassword", "plain text"),
            ("bob:$2y$05$tooshort", "malformed bcrypt"),
            (
                "bob:$2y$99$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy",
                "cost 99",
            ),
        ];
        for (line, kind) in cases {
            let text = format!("{ALICE}\n\n{line}\n");
            let err = parse(Path::new("h"), text.as_bytes()).err().expect(line);
            assert!(err.starts_with("line 3: user \"bob\": "), "{err}");
            assert!(err.contains(kind), "{err}");
            let hash = line.split_once(':').unwrap().1;
            assert!(!err.contains(hash), "the hash leaked: {err}");
        }
    }

    #[test]
    fn malformed_lines() {
        for (text, expected) in [
            ("alice\n", "line 1: no `:`"),
            (
                ":$2y$05$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy\n",
                "line 1: empty user",
            ),
            (
                &format!("{ALICE}\n{ALICE}\n"),
                "line 2: user \"alice\" again (first on line 1)",
            ),
        ] {
            let err = parse(Path::new("h"), text.as_bytes()).err().expect(text);
            assert!(err.contains(expected), "{err}");
        }
    }
}
