//! `--signal`: which signal, which process, and sending it.
//!
//! The target is looked up again at every reload, because the app may have restarted (a new
//! pid) since the last one. `--pid-file` reads the pid the app wrote; `--process-name` scans
//! `/proc`, which shows the app's processes only when the pod shares one PID namespace
//! (`shareProcessNamespace: true`): that is the first thing a "no process named …" error says.
//!
//! A process matches `--process-name NAME` when its `comm` (the executable's name, which the
//! kernel cuts to 15 bytes) or the file name of its `argv[0]` is NAME; a NAME longer than 15
//! bytes also matches a `comm` holding its first 15. Our own process never matches, nor do
//! zombies. When several processes match and all but one have a matching parent (nginx's
//! master and its workers, a shell wrapper's children), that one — the master — is signalled:
//! nginx and most pre-forking servers take reload signals in their master. Two unrelated
//! matches are an error naming their pids: signalling one at random would be a guess.
//!
//! Pids from a file are checked before `kill(2)`: a pid of 0 or below would signal a whole
//! process group (or every process), so it is refused, and so is our own pid, which is what an
//! app's pid file says when the app runs in a PID namespace of its own (it is pid 1 there,
//! and so is the sidecar in its own).

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use super::ActionError;
use crate::error::ReloadError;

/// The signals `--signal` accepts, by the name logs use. Numbers are the Linux ones, taken
/// from rustix rather than written here.
pub const SIGNALS: [(&str, Signal); 12] = [
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("KILL", Signal::KILL),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("ALRM", Signal::ALARM),
    ("TERM", Signal::TERM),
    ("CONT", Signal::CONT),
    ("STOP", Signal::STOP),
    ("TSTP", Signal::TSTP),
    ("WINCH", Signal::WINCH),
];

/// The kernel keeps this many bytes of an executable's name in `/proc/PID/comm`
/// (TASK_COMM_LEN minus the NUL).
const COMM_LEN: usize = 15;

/// The most of a pid file that is read: a pid is a few digits; a file this large is not one.
const PID_FILE_LIMIT: u64 = 4096;

/// A signal `--signal` named, with the name logs show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName {
    /// `HUP`, `USR1`, …
    pub name: &'static str,
    /// The signal itself.
    pub signal: Signal,
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Reads a `--signal` value: a name with or without `SIG`, any case (`HUP`, `SIGHUP`, `hup`),
/// or its number (`1`). The error names the value and lists every accepted name.
pub fn parse_signal(text: &str) -> Result<SignalName, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let found = if !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_digit()) {
        // Parsed as u64 and compared, so `99999999999999999999` is "unknown", not an overflow.
        name.parse::<u64>().ok().and_then(|number| {
            SIGNALS
                .iter()
                .find(|(_, signal)| u64::try_from(signal.as_raw()).ok() == Some(number))
        })
    } else {
        SIGNALS.iter().find(|(known, _)| *known == name)
    };
    if let Some(&(name, signal)) = found {
        return Ok(SignalName { name, signal });
    }
    let shown = pitcrew_core::text::printable(trimmed.as_bytes(), 40);
    let what = if trimmed.is_empty() {
        "empty --signal".to_owned()
    } else {
        format!("unknown --signal {shown:?}")
    };
    Err(format!("{what}: expected one of {}", accepted_signals()))
}

/// `HUP (1), INT (2), …`, with a note on the other spellings.
fn accepted_signals() -> String {
    let list: Vec<String> = SIGNALS
        .iter()
        .map(|(name, signal)| format!("{name} ({})", signal.as_raw()))
        .collect();
    format!(
        "{} (names also with SIG and in lower case: SIGHUP, hup)",
        list.join(", ")
    )
}

/// Where the process to signal is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--process-name`: a `/proc` scan at each reload.
    ProcessName(String),
    /// `--pid-file`: read at each reload.
    PidFile(PathBuf),
}

/// `--signal` with its target, checked.
#[derive(Debug, Clone)]
pub struct SignalAction {
    signal: SignalName,
    target: Target,
    /// Where `/proc` is: always `/proc`, except in unit tests that build a fake one.
    proc_root: PathBuf,
}

impl SignalAction {
    /// Checks the flags: a signal needs exactly one target; a target without a signal gets
    /// HUP (what nginx, HAProxy, Prometheus and most daemons reload on).
    pub fn from_flags(
        signal: Option<&str>,
        process_name: Option<&str>,
        pid_file: Option<&Path>,
    ) -> Result<Option<SignalAction>, ReloadError> {
        let target = match (process_name, pid_file) {
            (Some(_), Some(_)) => {
                return Err(ReloadError::Usage(
                    "--process-name and --pid-file both name the process to signal: give one".to_owned(),
                ));
            }
            (Some(name), None) => Target::ProcessName(check_process_name(name)?),
            (None, Some(path)) if path.as_os_str().is_empty() => {
                return Err(ReloadError::Usage(
                    "--pid-file is empty: expected the path of the file the app writes its pid to".to_owned(),
                ));
            }
            (None, Some(path)) => Target::PidFile(path.to_owned()),
            (None, None) => {
                return match signal {
                    None => Ok(None),
                    Some(signal) => {
                        // Check the name first: a typo there is the more useful error.
                        let signal = parse_signal(signal).map_err(ReloadError::Usage)?;
                        Err(ReloadError::Usage(format!(
                            "--signal {signal} needs the process to send it to: --process-name NAME \
                             (with shareProcessNamespace: true in the pod spec) or --pid-file PATH"
                        )))
                    }
                };
            }
        };
        let signal = match signal {
            Some(text) => parse_signal(text).map_err(ReloadError::Usage)?,
            None => SignalName {
                name: "HUP",
                signal: Signal::HUP,
            },
        };
        Ok(Some(SignalAction {
            signal,
            target,
            proc_root: PathBuf::from("/proc"),
        }))
    }

    /// The signal sent.
    pub fn signal(&self) -> SignalName {
        self.signal
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The start-up description: `signal HUP to the process named nginx (found in /proc at
    /// each reload)`.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::ProcessName(name) => format!(
                "signal {} to the process named {name} (looked up in /proc at each reload)",
                self.signal
            ),
            Target::PidFile(path) => format!(
                "signal {} to the pid in {} (read at each reload)",
                self.signal,
                path.display()
            ),
        }
    }

    /// Finds the process and signals it. `Ok` says what was done: `signal HUP to nginx (pid 7)`.
    pub fn run(&self) -> Result<String, ActionError> {
        let own_pid = rustix::process::getpid().as_raw_nonzero().get();
        let (pid, label) = match &self.target {
            Target::ProcessName(name) => {
                let pid = find_by_name(&self.proc_root, name, own_pid).map_err(|message| ActionError {
                    action: format!("signal {} to {name}", self.signal),
                    message,
                })?;
                (pid, format!("{name} (pid {pid})"))
            }
            Target::PidFile(path) => {
                let pid = read_pid_file(path, own_pid)
                    .and_then(|pid| not_a_zombie(&self.proc_root, pid, path))
                    .map_err(|message| ActionError {
                        action: format!("signal {} to the pid in {}", self.signal, path.display()),
                        message,
                    })?;
                let comm = read_small(&self.proc_root.join(pid.to_string()).join("comm"))
                    .map(|comm| comm.trim().to_owned())
                    .filter(|comm| !comm.is_empty());
                let label = match comm {
                    Some(comm) => format!(
                        "{} (pid {pid}, from {})",
                        pitcrew_core::text::printable(comm.as_bytes(), COMM_LEN),
                        path.display()
                    ),
                    None => format!("pid {pid} (from {})", path.display()),
                };
                (pid, label)
            }
        };
        let action = format!("signal {} to {label}", self.signal);
        send(pid, self.signal.signal).map_err(|errno| ActionError {
            message: kill_failure(errno, pid, &self.target),
            action: action.clone(),
        })?;
        Ok(action)
    }
}

/// `--process-name` is a name, as `ps` shows it: not empty, not a path.
fn check_process_name(name: &str) -> Result<String, ReloadError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ReloadError::Usage(
            "--process-name is empty: expected the app's executable name, e.g. nginx".to_owned(),
        ));
    }
    if name.contains('/') {
        let base = name.rsplit('/').next().unwrap_or_default();
        return Err(ReloadError::Usage(format!(
            "--process-name {name:?} is a path: give the executable's name, e.g. {base:?}"
        )));
    }
    Ok(name.to_owned())
}

/// `kill(pid, signal)`; `pid` is positive (checked by every caller).
fn send(pid: i32, signal: Signal) -> Result<(), Errno> {
    let pid = Pid::from_raw(pid).ok_or(Errno::INVAL)?;
    rustix::process::kill_process(pid, signal)
}

/// Why `kill(2)` failed, with the fix.
fn kill_failure(errno: Errno, pid: i32, target: &Target) -> String {
    match errno {
        Errno::PERM => format!(
            "permission denied for pid {pid}: the sidecar must run as the same user as the app \
             (securityContext.runAsUser: the app's uid; runAsUser: 0 when the app runs as root). \
             Adding the KILL capability helps only a root sidecar: Kubernetes gives a non-root \
             container no capabilities"
        ),
        Errno::SRCH => match target {
            Target::ProcessName(_) => {
                format!("pid {pid} exited before it could be signalled (the app is restarting?)")
            }
            Target::PidFile(path) => format!(
                "no process has pid {pid} (from {}): the pid file is stale (the app is not \
                 running), or the app runs in another PID namespace (set \
                 shareProcessNamespace: true in the pod spec)",
                path.display()
            ),
        },
        other => format!(
            "cannot signal pid {pid}: {}",
            pitcrew_core::io_error::describe(&std::io::Error::from(other))
        ),
    }
}

/// Reads a pid file: its first line, trimmed, must be a positive pid other than our own.
fn read_pid_file(path: &Path, own_pid: i32) -> Result<i32, String> {
    let shown = path.display();
    let bytes = read_limited(path).map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            " (is the app running and writing its pid there? is the file on a volume both \
             containers mount?)"
        } else {
            ""
        };
        format!(
            "cannot read the pid file {shown}: {}{hint}",
            pitcrew_core::io_error::describe(&err)
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next().unwrap_or_default().trim();
    if first.is_empty() {
        return Err(format!(
            "the pid file {shown} is empty (the app has not written its pid yet?)"
        ));
    }
    let excerpt = pitcrew_core::text::printable(first.as_bytes(), 40);
    let pid = match first.parse::<i64>() {
        Ok(pid) if pid > 0 => i32::try_from(pid)
            .map_err(|_| format!("the pid file {shown} holds {excerpt}, which is too large for a pid"))?,
        Ok(_) => {
            return Err(format!(
                "the pid file {shown} holds {excerpt}, which is not a pid (a pid is a positive \
                 number; 0 and below would signal a whole process group)"
            ));
        }
        Err(_) => {
            return Err(format!(
                "the pid file {shown} does not hold a pid: its first line is {excerpt:?}, \
                 expected a positive number"
            ));
        }
    };
    if pid == own_pid {
        return Err(format!(
            "the pid file {shown} holds {pid}, which is this sidecar's own pid: the app wrote it \
             in a PID namespace of its own; set shareProcessNamespace: true in the pod spec"
        ));
    }
    Ok(pid)
}

/// `pid` unless it has exited and not been reaped: `kill(2)` succeeds on such a zombie, and
/// the signal is lost.
fn not_a_zombie(proc_root: &Path, pid: i32, pid_file: &Path) -> Result<i32, String> {
    let stat = read_small(&proc_root.join(pid.to_string()).join("stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|close| stat[close + 1..].split_whitespace().next());
    if state == Some("Z") {
        return Err(format!(
            "pid {pid} (from {}) has exited and not been reaped yet: the app is not running",
            pid_file.display()
        ));
    }
    Ok(pid)
}

/// At most [`PID_FILE_LIMIT`] bytes of `path`.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(PID_FILE_LIMIT)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A small `/proc` file as text; `None` when it is gone (the process exited) or unreadable.
fn read_small(path: &Path) -> Option<String> {
    read_limited(path)
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// One process as the scan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessInfo {
    pid: i32,
    parent: i32,
    comm: String,
    /// The file name of `argv[0]` (after its last `/`); empty for kernel threads.
    argv0: String,
}

/// Whether a process with this `comm` and `argv[0]` file name is the one named `name`.
fn name_matches(name: &str, comm: &str, argv0: &str) -> bool {
    if comm == name || argv0 == name {
        return true;
    }
    // The kernel cut `comm`: compare the part it kept, when nothing else was there to compare.
    name.len() > COMM_LEN
        && comm.len() == COMM_LEN
        && name.as_bytes().get(..COMM_LEN) == Some(comm.as_bytes())
}

/// Reads one `/proc/PID` entry; `None` for zombies and for processes that went away meanwhile.
fn read_process(dir: &Path, pid: i32) -> Option<ProcessInfo> {
    let stat = read_small(&dir.join("stat"))?;
    // `PID (COMM) STATE PPID …`: COMM may hold spaces and parentheses, so split at the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let parent = fields.next()?.parse().ok()?;
    let comm = read_small(&dir.join("comm"))?;
    let comm = comm.strip_suffix('\n').unwrap_or(&comm).to_owned();
    let cmdline = read_small(&dir.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split('\0').next().unwrap_or_default();
    let argv0 = argv0.rsplit('/').next().unwrap_or_default().to_owned();
    Some(ProcessInfo {
        pid,
        parent,
        comm,
        argv0,
    })
}

/// The pid of the one process named `name` (see the module docs), or why there is none.
fn find_by_name(proc_root: &Path, name: &str, own_pid: i32) -> Result<i32, String> {
    let entries = std::fs::read_dir(proc_root).map_err(|err| {
        format!(
            "cannot list {}: {}",
            proc_root.display(),
            pitcrew_core::io_error::describe(&err)
        )
    })?;
    let mut others_seen = 0_usize;
    let mut matches: Vec<ProcessInfo> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|text| text.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Some(process) = read_process(&entry.path(), pid) else {
            continue;
        };
        // Our own threads are not listed, but children we started (none in production) are:
        // the count below is of processes that are not us.
        others_seen += 1;
        if name_matches(name, &process.comm, &process.argv0) {
            matches.push(process);
        }
    }
    if matches.is_empty() {
        let seen = if others_seen == 0 {
            "this container sees no process but its own, so the pod does not share its PID namespace"
                .to_owned()
        } else {
            format!("{others_seen} other processes are visible, none with that name")
        };
        return Err(format!(
            "no process named {name} is visible ({seen}): set shareProcessNamespace: true in the \
             pod spec, or use --pid-file"
        ));
    }
    let masters: Vec<&ProcessInfo> = matches
        .iter()
        .filter(|process| !matches.iter().any(|other| other.pid == process.parent))
        .collect();
    if let [master] = masters.as_slice() {
        return Ok(master.pid);
    }
    let mut pids: Vec<i32> = masters.iter().map(|process| process.pid).collect();
    pids.sort_unstable();
    let list: Vec<String> = pids.iter().map(i32::to_string).collect();
    Err(format!(
        "{} processes are named {name} (pids {}), none the parent of the others: cannot tell \
         which to signal; use --pid-file",
        pids.len(),
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_spellings() {
        for (text, name, number) in [
            ("HUP", "HUP", 1),
            ("SIGHUP", "HUP", 1),
            ("hup", "HUP", 1),
            ("sighup", "HUP", 1),
            ("SigHup", "HUP", 1),
            (" HUP ", "HUP", 1),
            ("1", "HUP", 1),
            ("USR1", "USR1", 10),
            ("10", "USR1", 10),
            ("SIGUSR2", "USR2", 12),
            ("TERM", "TERM", 15),
            ("15", "TERM", 15),
            ("int", "INT", 2),
            ("QUIT", "QUIT", 3),
            ("WINCH", "WINCH", 28),
            ("SIGWINCH", "WINCH", 28),
            ("ALRM", "ALRM", 14),
            ("KILL", "KILL", 9),
            ("01", "HUP", 1),
        ] {
            let parsed = parse_signal(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
            assert_eq!(parsed.name, name, "{text:?}");
            assert_eq!(parsed.signal.as_raw(), number, "{text:?}");
        }
    }

    #[test]
    fn unknown_signals_name_the_value_and_list_the_valid_ones() {
        for bad in [
            "HUPP",
            "SIG",
            "SIGSIGHUP",
            "0",
            "-1",
            "+1",
            "64",
            "34",
            "4294967297",
            "99999999999999999999999999999",
            "1.0",
            "HUP,USR1",
            "ＨＵＰ",
            "SEGV",
            "H UP",
        ] {
            let err = parse_signal(bad).unwrap_err();
            let shown = pitcrew_core::text::printable(bad.trim().as_bytes(), 40);
            assert!(err.contains(&format!("{shown:?}")), "{bad:?}: {err}");
            assert!(err.contains("HUP (1)") && err.contains("WINCH (28)"), "{err}");
        }
        let empty = parse_signal("  ").unwrap_err();
        assert!(empty.starts_with("empty --signal"), "{empty}");
        let long = parse_signal(&"X".repeat(10_000)).unwrap_err();
        assert!(
            long.len() < 500,
            "a huge value is not echoed whole: {} bytes",
            long.len()
        );
    }

    #[test]
    fn flags_need_exactly_one_target_and_default_to_hup() {
        let usage =
            |signal: Option<&str>, name: Option<&str>, file: Option<&str>| match SignalAction::from_flags(
                signal,
                name,
                file.map(Path::new),
            ) {
                Err(ReloadError::Usage(message)) => message,
                other => panic!("expected a usage error, got {other:?}"),
            };
        assert!(SignalAction::from_flags(None, None, None).unwrap().is_none());
        let message = usage(Some("HUP"), None, None);
        assert!(
            message.contains("--process-name") && message.contains("--pid-file"),
            "{message}"
        );
        let message = usage(Some("BOGUS"), None, None);
        assert!(message.contains("unknown --signal \"BOGUS\""), "{message}");
        let message = usage(Some("HUP"), Some("nginx"), Some("/run/nginx.pid"));
        assert!(message.contains("give one"), "{message}");
        let message = usage(None, Some(""), None);
        assert!(message.contains("--process-name is empty"), "{message}");
        let message = usage(None, Some("/usr/sbin/nginx"), None);
        assert!(message.contains("\"nginx\""), "{message}");
        let message = usage(None, None, Some(""));
        assert!(message.contains("--pid-file is empty"), "{message}");
        let message = usage(Some("nope"), Some("nginx"), None);
        assert!(message.contains("unknown --signal \"nope\""), "{message}");

        let action = SignalAction::from_flags(None, Some("nginx"), None)
            .unwrap()
            .unwrap();
        assert_eq!(action.signal().name, "HUP");
        assert_eq!(action.target(), &Target::ProcessName("nginx".into()));
        let action = SignalAction::from_flags(Some("usr2"), None, Some(Path::new("/run/a.pid")))
            .unwrap()
            .unwrap();
        assert_eq!(action.signal().name, "USR2");
        assert_eq!(
            action.describe(),
            "signal USR2 to the pid in /run/a.pid (read at each reload)"
        );
    }

    #[test]
    fn names_match_comm_argv0_and_a_cut_comm() {
        assert!(name_matches("nginx", "nginx", ""));
        assert!(name_matches("nginx", "other", "nginx"));
        assert!(!name_matches("nginx", "nginx-debug", "nginx-debug"));
        assert!(!name_matches("ngin", "nginx", "nginx"));
        let long = "prometheus-config-reloader";
        assert!(name_matches(long, &long[..15], ""));
        assert!(name_matches(long, "x", long));
        assert!(name_matches("prometheus-conf", "prometheus-conf", ""));
        // A 15-byte name is compared whole: it is not a cut longer one.
        assert!(!name_matches("prometheus-conf", "prometheus-confi", ""));
        assert!(!name_matches(&long[..14], &long[..15], ""));
    }

    /// A fake /proc: `(pid, parent, state, comm, cmdline)`.
    fn fake_proc(processes: &[(i32, i32, &str, &str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("uptime"), "1.0 1.0\n").unwrap();
        for &(pid, parent, state, comm, cmdline) in processes {
            let process = dir.path().join(pid.to_string());
            std::fs::create_dir(&process).unwrap();
            std::fs::write(
                process.join("stat"),
                format!("{pid} ({comm}) {state} {parent} 1 1 0 -1 4194560 0"),
            )
            .unwrap();
            std::fs::write(process.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(process.join("cmdline"), cmdline).unwrap();
        }
        dir
    }

    #[test]
    fn the_master_is_chosen_over_its_workers() {
        let proc = fake_proc(&[
            (1, 0, "S", "pause", "/pause\0"),
            (
                7,
                1,
                "S",
                "nginx",
                "nginx: master process /usr/sbin/nginx -g daemon off;\0",
            ),
            (30, 7, "S", "nginx", "nginx: worker process\0"),
            (31, 7, "S", "nginx", "nginx: worker process\0"),
            (40, 1, "S", "pitcrew-reload", "/pitcrew-reload\0--watch\0/etc\0"),
        ]);
        assert_eq!(find_by_name(proc.path(), "nginx", 40), Ok(7));
    }

    #[test]
    fn two_unrelated_matches_name_both_pids_and_the_fix() {
        let proc = fake_proc(&[
            (1, 0, "S", "pause", "/pause\0"),
            (12, 1, "S", "app", "/bin/app\0"),
            (9, 1, "S", "app", "/bin/app\0-x\0"),
            (13, 12, "S", "app", "/bin/app\0"),
        ]);
        let err = find_by_name(proc.path(), "app", 99).unwrap_err();
        assert!(err.contains("2 processes are named app (pids 9, 12)"), "{err}");
        assert!(err.contains("use --pid-file"), "{err}");
    }

    #[test]
    fn no_match_says_what_is_visible_and_the_fix() {
        let proc = fake_proc(&[(1, 0, "S", "pitcrew-reload", "/pitcrew-reload\0")]);
        let err = find_by_name(proc.path(), "nginx", 1).unwrap_err();
        assert!(err.starts_with("no process named nginx is visible"), "{err}");
        assert!(err.contains("sees no process but its own"), "{err}");
        assert!(
            err.contains("shareProcessNamespace: true") && err.contains("--pid-file"),
            "{err}"
        );

        let proc = fake_proc(&[
            (1, 0, "S", "pause", "/pause\0"),
            (5, 1, "Z", "nginx", ""),
            (6, 1, "S", "sh", "/bin/sh\0"),
        ]);
        let err = find_by_name(proc.path(), "nginx", 99).unwrap_err();
        assert!(
            err.contains("2 other processes are visible"),
            "zombies do not count: {err}"
        );
    }

    #[test]
    fn argv0_and_odd_comms_are_read() {
        let proc = fake_proc(&[
            (1, 0, "S", "pause", "/pause\0"),
            (8, 1, "S", "we ird) R 1 (x", "/opt/app/bin/my-app\0--flag\0"),
            (9, 1, "S", "java", "/usr/bin/java\0-jar\0"),
        ]);
        assert_eq!(find_by_name(proc.path(), "my-app", 99), Ok(8));
        assert_eq!(find_by_name(proc.path(), "we ird) R 1 (x", 99), Ok(8));
        assert_eq!(find_by_name(proc.path(), "java", 99), Ok(9));
        // Our own pid never matches, even when it has the name.
        assert!(find_by_name(proc.path(), "java", 9).is_err());
        let err = find_by_name(&proc.path().join("missing"), "java", 1).unwrap_err();
        assert!(err.starts_with("cannot list"), "{err}");
    }

    #[test]
    fn pid_files_are_checked_before_anything_is_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.pid");
        let read = |content: &[u8]| {
            std::fs::write(&file, content).unwrap();
            read_pid_file(&file, 4242)
        };
        assert_eq!(read(b"123\n"), Ok(123));
        assert_eq!(read(b"  123  \n"), Ok(123));
        // PostgreSQL's postmaster.pid: the pid is the first line.
        assert_eq!(read(b"77\n/var/lib/postgresql/data\n1700000000\n5432\n"), Ok(77));
        for (content, expected) in [
            (&b""[..], "is empty"),
            (b"\n\n", "is empty"),
            (b"abc", "does not hold a pid: its first line is \"abc\""),
            (b"12ab", "does not hold a pid"),
            (b"\xff\xfe\x00garbage", "does not hold a pid"),
            (b"0", "which is not a pid"),
            (b"-1", "which is not a pid"),
            (b"-4242", "which is not a pid"),
            (b"99999999999", "too large for a pid"),
            (b"99999999999999999999999999", "does not hold a pid"),
            (b"4242", "this sidecar's own pid"),
        ] {
            let err = read(content).unwrap_err();
            assert!(err.contains(expected), "{content:?}: {err}");
            assert!(err.contains(&file.display().to_string()), "{err}");
        }
        let big = vec![b'7'; 1_000_000];
        let err = read(&big).unwrap_err();
        assert!(err.len() < 500, "{} bytes", err.len());
        let err = read_pid_file(&dir.path().join("missing.pid"), 1).unwrap_err();
        assert!(
            err.contains("cannot read the pid file") && err.contains("not found"),
            "{err}"
        );
        assert!(err.contains("is the app running"), "{err}");
    }

    #[test]
    fn a_zombie_from_a_pid_file_is_not_signalled() {
        let proc = fake_proc(&[(5, 1, "Z", "nginx", ""), (6, 1, "S", "nginx", "nginx\0")]);
        let file = Path::new("/run/nginx.pid");
        let err = not_a_zombie(proc.path(), 5, file).unwrap_err();
        assert!(err.contains("pid 5 (from /run/nginx.pid) has exited"), "{err}");
        assert_eq!(not_a_zombie(proc.path(), 6, file), Ok(6));
        // Gone from /proc: kill(2) says so (ESRCH), with its own message.
        assert_eq!(not_a_zombie(proc.path(), 7, file), Ok(7));
    }

    #[test]
    fn kill_failures_name_the_fix() {
        let by_name = Target::ProcessName("nginx".into());
        let by_file = Target::PidFile("/run/nginx.pid".into());
        let message = kill_failure(Errno::PERM, 7, &by_name);
        assert!(
            message.contains("same user as the app") && message.contains("KILL"),
            "{message}"
        );
        let message = kill_failure(Errno::SRCH, 7, &by_file);
        assert!(
            message.contains("no process has pid 7 (from /run/nginx.pid)"),
            "{message}"
        );
        assert!(
            message.contains("stale") && message.contains("shareProcessNamespace"),
            "{message}"
        );
        let message = kill_failure(Errno::SRCH, 7, &by_name);
        assert!(message.contains("exited before"), "{message}");
        let message = kill_failure(Errno::INVAL, 7, &by_name);
        assert!(message.starts_with("cannot signal pid 7: "), "{message}");
        assert!(!message.contains("os error"), "{message}");
    }
}
