//! The steps pitcrew-prepare runs, parsed from their flag values, and spelled back the way a
//! user wrote them for log lines and errors.
//!
//! Two values are pairs split at a `:` (`--copy SRC:DEST`, `--symlink TARGET:LINK`). Paths
//! may hold a `:` themselves, so splitting at the first or the last one would silently guess
//! wrong for one side or the other. Instead the pair must hold exactly one `:` that is not
//! written `\:`; `\:` stands for a `:` inside a path and `\\` for a backslash, any other
//! backslash is kept as it is. A value with two bare `:` is refused with a message saying how
//! to escape, rather than copied somewhere nobody meant.

use std::fmt;
use std::path::{Path, PathBuf};

use pitcrew_core::files::{Mode, Owner};

/// One step, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `--copy SRC:DEST`.
    Copy {
        /// A file or a directory tree.
        source: PathBuf,
        /// Where it goes.
        destination: PathBuf,
        /// DEST ended in `/`: a file goes inside it, as with `cp`.
        into_directory: bool,
    },
    /// `--mkdir PATH`.
    Mkdir {
        /// The directory to have.
        path: PathBuf,
    },
    /// `--chown UID:GID PATH`.
    Chown {
        /// The owner to give.
        owner: Owner,
        /// The tree to give it to.
        path: PathBuf,
    },
    /// `--chmod MODE PATH`.
    Chmod {
        /// The mode to give.
        mode: Mode,
        /// The file or directory to give it to.
        path: PathBuf,
    },
    /// `--symlink TARGET:LINK`.
    Symlink {
        /// What the link points to, stored as given (relative targets stay relative).
        target: PathBuf,
        /// Where the link is.
        link: PathBuf,
    },
    /// `--sysctl KEY=VALUE`.
    Sysctl(Sysctl),
}

/// A kernel parameter to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The key as given (`vm.max_map_count` or `vm/max_map_count`), for messages.
    pub key: String,
    /// The file under /proc/sys (`vm/max_map_count`).
    pub relative: PathBuf,
    /// The value to write, as given.
    pub value: String,
}

/// The step names, as flags (`--copy`) and as lines of a steps list (`copy`).
pub const NAMES: [&str; 6] = ["copy", "mkdir", "chown", "chmod", "symlink", "sysctl"];

impl Step {
    /// How many values the flag `--<name>` takes.
    pub fn arity(name: &str) -> usize {
        if matches!(name, "chown" | "chmod") { 2 } else { 1 }
    }

    /// Parses the values of `--<name>`; the error names the flag and the bad value and says
    /// what was expected.
    pub fn parse(name: &str, values: &[&str]) -> Result<Step, String> {
        match (name, values) {
            ("copy", [value]) => {
                let (source, destination) = split_pair("--copy", value, "SRC:DEST")?;
                Ok(Step::Copy {
                    into_directory: destination.ends_with('/'),
                    source: source.into(),
                    destination: destination.into(),
                })
            }
            ("mkdir", [path]) => Ok(Step::Mkdir {
                path: non_empty_path("--mkdir", path)?,
            }),
            ("chown", [owner, path]) => Ok(Step::Chown {
                owner: owner.parse().map_err(|err| format!("--chown: {err}"))?,
                path: non_empty_path("--chown", path)?,
            }),
            ("chmod", [mode, path]) => Ok(Step::Chmod {
                mode: mode.parse().map_err(|err| format!("--chmod: {err}"))?,
                path: non_empty_path("--chmod", path)?,
            }),
            ("symlink", [value]) => {
                let (target, link) = split_pair("--symlink", value, "TARGET:LINK")?;
                if link.ends_with('/') {
                    return Err(format!(
                        "invalid --symlink value {value:?}: LINK {link:?} ends in '/'; name the link \
                         itself, e.g. /data/app.yaml"
                    ));
                }
                Ok(Step::Symlink {
                    target: target.into(),
                    link: link.into(),
                })
            }
            ("sysctl", [value]) => parse_sysctl(value).map(Step::Sysctl),
            _ => Err(format!(
                "--{name} takes {} value(s), got {}",
                Step::arity(name),
                values.len()
            )),
        }
    }

    /// Parses one line of a steps list (`copy /a:/b`, `chown 1000:1000 /data`); `None` for a
    /// blank or comment line. A leading `--` on the name is accepted, so lines can be pasted
    /// from args.
    pub fn parse_line(line: &str) -> Option<Result<Step, String>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let name = name.strip_prefix("--").unwrap_or(name);
        if !NAMES.contains(&name) {
            return Some(Err(format!(
                "unknown step {name:?}; expected one of copy, mkdir, chown, chmod, symlink, sysctl"
            )));
        }
        let rest = rest.trim_start();
        let values: Vec<&str> = if Step::arity(name) == 2 {
            match rest.split_once(char::is_whitespace) {
                Some((first, path)) => vec![first, path.trim_start()],
                None => vec![rest],
            }
        } else {
            vec![rest]
        };
        Some(Step::parse(name, &values))
    }

    /// The flag this step came from (`--copy`).
    pub fn flag(&self) -> &'static str {
        match self {
            Step::Copy { .. } => "--copy",
            Step::Mkdir { .. } => "--mkdir",
            Step::Chown { .. } => "--chown",
            Step::Chmod { .. } => "--chmod",
            Step::Symlink { .. } => "--symlink",
            Step::Sysctl(_) => "--sysctl",
        }
    }
}

impl fmt::Display for Step {
    /// The step as it would be written on a command line: `--copy /a:/b`, with `\:` escapes
    /// back in place and values holding spaces quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.flag())?;
        match self {
            Step::Copy {
                source,
                destination,
                into_directory,
            } => {
                let mut destination = escape(destination);
                if *into_directory && !destination.ends_with('/') {
                    destination.push('/');
                }
                write!(f, "{}", quoted(&format!("{}:{destination}", escape(source))))
            }
            Step::Mkdir { path } => write!(f, "{}", quoted(&path.to_string_lossy())),
            Step::Chown { owner, path } => write!(f, "{owner} {}", quoted(&path.to_string_lossy())),
            Step::Chmod { mode, path } => write!(f, "{mode} {}", quoted(&path.to_string_lossy())),
            Step::Symlink { target, link } => {
                write!(f, "{}", quoted(&format!("{}:{}", escape(target), escape(link))))
            }
            Step::Sysctl(sysctl) => write!(f, "{}", quoted(&format!("{}={}", sysctl.key, sysctl.value))),
        }
    }
}

/// A path with `\` and `:` escaped as a pair value needs them.
fn escape(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "\\\\").replace(':', "\\:")
}

/// `value` as is, or in double quotes when it is empty or holds whitespace or quotes, so a
/// path with spaces reads as one value in a log line.
fn quoted(value: &str) -> String {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        format!("{value:?}")
    } else {
        value.to_owned()
    }
}

fn non_empty_path(flag: &str, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err(format!("{flag}: the path is empty"));
    }
    Ok(PathBuf::from(path))
}

/// Splits `LEFT:RIGHT` at its one unescaped `:` (see the module docs).
fn split_pair(flag: &str, value: &str, shape: &str) -> Result<(String, String), String> {
    let mut sides = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&next @ (':' | '\\'))) => {
                current.push(next);
                chars.next();
            }
            (':', _) => sides.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    sides.push(current);
    let hint = "a ':' that is part of a path is written '\\:'";
    match <[String; 2]>::try_from(sides) {
        Ok([left, right]) if !left.is_empty() && !right.is_empty() => Ok((left, right)),
        Ok(_) => Err(format!(
            "invalid {flag} value {value:?}: expected {shape} with neither side empty"
        )),
        Err(sides) if sides.len() == 1 => Err(format!(
            "invalid {flag} value {value:?}: expected {shape}, found no ':' ({hint})"
        )),
        Err(_) => Err(format!(
            "invalid {flag} value {value:?}: expected {shape}, found more than one ':' ({hint})"
        )),
    }
}

/// Parses `KEY=VALUE`. The key is dotted (`net.ipv4.ip_local_port_range`) or slashed
/// (`net/ipv4/ip_local_port_range`); as with procps `sysctl`, in the dotted form a `/` stands
/// for a `.` inside a part (an interface name such as `eth0.1`: `net.ipv4.conf.eth0/1.rp_filter`).
/// Every part must be non-empty and neither `.` nor `..`, so the file written is always
/// under /proc/sys.
fn parse_sysctl(value: &str) -> Result<Sysctl, String> {
    let Some((key, setting)) = value.split_once('=') else {
        return Err(format!(
            "invalid --sysctl value {value:?}: expected KEY=VALUE such as vm.max_map_count=262144"
        ));
    };
    let key = key.trim();
    let bad_key = || {
        format!(
            "invalid --sysctl key {key:?}: expected a key such as vm.max_map_count or \
             net/ipv4/ip_local_port_range (no empty parts, no '.' or '..' parts, no spaces)"
        )
    };
    let dotted = key.find(['.', '/']).is_some_and(|at| key[at..].starts_with('.'));
    let slashed: String = if dotted {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    } else {
        key.to_owned()
    };
    let valid_part = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.chars().all(|c| c.is_ascii_graphic() && c != '=')
    };
    if !slashed.split('/').all(valid_part) {
        return Err(bad_key());
    }
    if setting.trim().is_empty() || setting.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "invalid --sysctl value for {key}: {setting:?}; expected a non-empty value on one line, \
             e.g. 262144 or \"1024 65535\""
        ));
    }
    Ok(Sysctl {
        key: key.to_owned(),
        relative: PathBuf::from(slashed),
        value: setting.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(value: &str) -> Result<(String, String, bool), String> {
        match Step::parse("copy", &[value])? {
            Step::Copy {
                source,
                destination,
                into_directory,
            } => Ok((
                source.to_string_lossy().into_owned(),
                destination.to_string_lossy().into_owned(),
                into_directory,
            )),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pair_splits_at_its_one_bare_colon_and_escapes_are_undone() {
        assert_eq!(copy("/a:/b").unwrap(), ("/a".into(), "/b".into(), false));
        assert_eq!(
            copy("/a b/c:/d e/").unwrap(),
            ("/a b/c".into(), "/d e/".into(), true)
        );
        assert_eq!(
            copy(r"/t/12\:00.log:/d/x\:y").unwrap(),
            ("/t/12:00.log".into(), "/d/x:y".into(), false)
        );
        assert_eq!(copy(r"/a\\:/b").unwrap(), (r"/a\".into(), "/b".into(), false));
        // A backslash before anything else is part of the path.
        assert_eq!(copy(r"/a\b:/c").unwrap(), (r"/a\b".into(), "/c".into(), false));
    }

    #[test]
    fn an_ambiguous_or_incomplete_pair_is_refused_with_the_escape_rule() {
        for (bad, why) in [
            ("/a", "no ':'"),
            ("/a:/b:/c", "more than one ':'"),
            ("c:/x:/y", "more than one ':'"),
            (":/b", "neither side empty"),
            ("/a:", "neither side empty"),
            ("", "no ':'"),
        ] {
            let err = copy(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(why), "{err}");
            assert!(err.contains("SRC:DEST"), "{err}");
        }
        assert!(copy("/a:/b:/c").unwrap_err().contains(r"'\:'"));
        let err = Step::parse("symlink", &["/a:/dir/"]).unwrap_err();
        assert!(err.contains("ends in '/'"), "{err}");
    }

    #[test]
    fn owners_and_modes_are_checked_when_parsed() {
        let err = Step::parse("chown", &["abc", "/x"]).unwrap_err();
        assert!(err.starts_with("--chown: invalid owner \"abc\""), "{err}");
        let err = Step::parse("chmod", &["999", "/x"]).unwrap_err();
        assert!(err.starts_with("--chmod: invalid mode \"999\""), "{err}");
        assert!(Step::parse("mkdir", &[""]).is_err());
    }

    #[test]
    fn sysctl_keys_are_dotted_or_slashed_and_stay_under_proc_sys() {
        let parse = |value: &str| match Step::parse("sysctl", &[value]) {
            Ok(Step::Sysctl(sysctl)) => Ok(sysctl),
            Ok(other) => panic!("{other:?}"),
            Err(err) => Err(err),
        };
        let sysctl = parse("vm.max_map_count=262144").unwrap();
        assert_eq!(sysctl.relative, Path::new("vm/max_map_count"));
        assert_eq!(sysctl.value, "262144");
        assert_eq!(
            parse("net/ipv4/ip_local_port_range=1024 65535").unwrap().relative,
            Path::new("net/ipv4/ip_local_port_range")
        );
        // procps: in the dotted form, '/' is a dot inside a part (a VLAN interface).
        assert_eq!(
            parse("net.ipv4.conf.eth0/1.rp_filter=1").unwrap().relative,
            Path::new("net/ipv4/conf/eth0.1/rp_filter")
        );
        assert_eq!(
            parse("net/ipv4/conf/eth0.1/rp_filter=1").unwrap().relative,
            Path::new("net/ipv4/conf/eth0.1/rp_filter")
        );
        for bad in [
            "vm..max_map_count=1",
            "../../etc/passwd=x",
            "vm/../../etc=x",
            "/vm/max_map_count=1",
            "vm.max_map_count.=1",
            ".vm=1",
            "=1",
            "vm max=1",
            "a.//.b=1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid --sysctl key"), "{bad}: {err}");
        }
        for bad in [
            "vm.max_map_count",
            "vm.max_map_count=",
            "vm.max_map_count= ",
            "k.v=1\n2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_of_a_steps_list_parse_like_flags() {
        let parse = |line| Step::parse_line(line).map(Result::unwrap);
        assert_eq!(parse("  # a comment"), None);
        assert_eq!(parse("   "), None);
        assert_eq!(
            parse("chown 1000:1000   /data dir/with spaces  "),
            Some(Step::Chown {
                owner: "1000:1000".parse().unwrap(),
                path: "/data dir/with spaces".into()
            })
        );
        assert_eq!(
            parse("--mkdir /data/cache"),
            Some(Step::Mkdir {
                path: "/data/cache".into()
            })
        );
        let err = Step::parse_line("cpy /a:/b").unwrap().unwrap_err();
        assert!(err.contains("unknown step \"cpy\""), "{err}");
        assert!(Step::parse_line("chmod 0755").unwrap().is_err());
        assert!(Step::parse_line("copy").unwrap().is_err());
    }

    #[test]
    fn steps_are_spelled_back_as_written() {
        for (name, values, shown) in [
            ("copy", vec![r"/t/a\:b:/d/"], r"--copy /t/a\:b:/d/"),
            ("copy", vec!["/a b:/c"], r#"--copy "/a b:/c""#),
            ("chown", vec!["1000:1000", "/data"], "--chown 1000:1000 /data"),
            ("chmod", vec!["755", "/data"], "--chmod 0755 /data"),
            (
                "sysctl",
                vec!["vm.max_map_count=262144"],
                "--sysctl vm.max_map_count=262144",
            ),
        ] {
            assert_eq!(Step::parse(name, &values).unwrap().to_string(), shown);
        }
    }
}
