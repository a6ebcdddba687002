//! `--sysctl KEY=VALUE`: `sysctl -w` for the privileged init container search engines need
//! (`vm.max_map_count=262144`), done only when the value differs.
//!
//! The current value is read first and compared with whitespace collapsed, since the kernel
//! shows `net.ipv4.ip_local_port_range` as `1024\t65535`: a value already in place is not
//! written again. Outside a privileged container /proc/sys is mounted read-only; that, and
//! the other ways a write fails, get a message saying what the pod spec needs (exit 74 for
//! "cannot write", 78 for a key this kernel does not have or a value it refuses).

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

use pitcrew_core::exit::ExitCode;

use crate::context::{Context, Loudness, Verb};
use crate::error::StepError;
use crate::step::Sysctl;

/// `1024\t65535\n` and `1024 65535` are the same setting.
fn normalise(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn sysctl(cx: &mut Context<'_>, sysctl: &Sysctl) -> Result<String, StepError> {
    let path = cx.settings.proc_sys.join(&sysctl.relative);
    let current = fs::read_to_string(&path).map_err(|err| read_error(sysctl, &path, &err))?;
    let current = normalise(&current);
    let wanted = normalise(&sysctl.value);
    if current == wanted {
        return Ok(format!("{} is already {current}", sysctl.key));
    }
    if !cx.dry_run() {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut file| file.write_all(sysctl.value.as_bytes()))
            .map_err(|err| write_error(sysctl, &path, &err))?;
        // The kernel may round or clamp: say what it holds now.
        if let Ok(after) = fs::read_to_string(&path)
            && normalise(&after) != wanted
        {
            tracing::warn!(
                "{} reads {:?} after writing {wanted:?}: the kernel adjusted the value",
                sysctl.key,
                normalise(&after)
            );
        }
    }
    cx.changed(
        Verb::Set,
        format_args!("sysctl {} to {wanted} (it was {current})", sysctl.key),
        Loudness::Each,
    );
    Ok(format!(
        "{} {} to {wanted} (it was {current})",
        Verb::Set.word(cx.dry_run()),
        sysctl.key
    ))
}

fn read_error(sysctl: &Sysctl, path: &Path, err: &io::Error) -> StepError {
    let (message, code) = if err.kind() == io::ErrorKind::NotFound {
        (
            format!(
                "unknown sysctl key {}: {} does not exist (a key of another kernel version or \
                 module, a typo, or a per-network-namespace key that is not visible here)",
                sysctl.key,
                path.display()
            ),
            ExitCode::Config,
        )
    } else {
        (
            format!(
                "cannot read sysctl {} ({}): {}",
                sysctl.key,
                path.display(),
                describe(err)
            ),
            ExitCode::NoInput,
        )
    };
    StepError::Other { message, code }
}

/// The message for a failed write: what the pod spec needs, for the failures pods meet.
pub(crate) fn write_error(sysctl: &Sysctl, path: &Path, err: &io::Error) -> StepError {
    let what = format!("cannot set sysctl {} ({})", sysctl.key, path.display());
    let (message, code) = match err.raw_os_error() {
        // EROFS: how a container runtime mounts /proc/sys for an unprivileged container.
        Some(30) => (
            format!(
                "{what}: /proc/sys is read-only in this container; setting a kernel parameter \
                 needs a privileged init container (securityContext: {{privileged: true, runAsUser: 0}})"
            ),
            ExitCode::Io,
        ),
        // EACCES, EPERM: not root, or a key the container's namespaces may not change.
        Some(13 | 1) => (
            format!(
                "{what}: permission denied; setting a kernel parameter needs root in a privileged \
                 init container (securityContext: {{privileged: true, runAsUser: 0}})"
            ),
            ExitCode::Io,
        ),
        // EINVAL: the kernel refused the value (out of range, wrong number of fields).
        Some(22) => (
            format!(
                "{what}: the kernel refused the value {:?} (out of range or malformed for this key)",
                sysctl.value
            ),
            ExitCode::Config,
        ),
        _ => (format!("{what}: {}", describe(err)), ExitCode::Io),
    };
    StepError::Other { message, code }
}

/// An io::Error's text without the "(os error N)" tail, lower-cased like the rest of the line.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text.find(" (os error").map_or(text.as_str(), |end| &text[..end]);
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use crate::step::Step;
    use pitcrew_core::stop::Stop;

    fn setting(value: &str) -> Sysctl {
        match Step::parse("sysctl", &[value]).unwrap() {
            Step::Sysctl(sysctl) => sysctl,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_read_only_proc_sys_says_a_privileged_init_container_is_needed() {
        let sysctl = setting("vm.max_map_count=262144");
        let err = write_error(
            &sysctl,
            Path::new("/proc/sys/vm/max_map_count"),
            &io::Error::from_raw_os_error(30),
        );
        assert_eq!(err.exit_code(), ExitCode::Io);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot set sysctl vm.max_map_count (/proc/sys/vm/max_map_count): /proc/sys is read-only"
            ),
            "{text}"
        );
        assert!(text.contains("privileged: true"), "{text}");

        let err = write_error(&sysctl, Path::new("/x"), &io::Error::from_raw_os_error(13));
        assert!(err.to_string().contains("permission denied") && err.to_string().contains("privileged"));
        let err = write_error(&sysctl, Path::new("/x"), &io::Error::from_raw_os_error(22));
        assert_eq!(err.exit_code(), ExitCode::Config);
        assert!(err.to_string().contains("refused the value \"262144\""), "{err}");
        let err = write_error(&sysctl, Path::new("/x"), &io::Error::from_raw_os_error(5));
        assert_eq!(err.exit_code(), ExitCode::Io);
        assert!(err.to_string().ends_with(": input/output error"), "{err}");
    }

    fn run_in(root: &Path, value: &str, dry_run: bool) -> (Result<String, StepError>, String) {
        let settings = Settings {
            dry_run,
            proc_sys: root.to_owned(),
            ..Settings::default()
        };
        let stop = Stop::never();
        let mut out = Vec::new();
        let result = {
            let mut cx = Context::new(&settings, &stop, &mut out);
            sysctl(&mut cx, &setting(value))
        };
        (result, String::from_utf8(out).unwrap())
    }

    /// A stand-in /proc/sys: the comparison and the messages do not depend on the kernel;
    /// the real kernel is written in tests/sysctl.rs, inside a network namespace of its own.
    #[test]
    fn a_value_equal_but_for_whitespace_is_left_alone_and_an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        let file = dir.path().join("net/ipv4/ip_local_port_range");
        fs::write(&file, "1024\t65535\n").unwrap();
        let before = fs::metadata(&file).unwrap().modified().unwrap();
        let (result, _) = run_in(dir.path(), "net.ipv4.ip_local_port_range=1024   65535", false);
        assert_eq!(
            result.unwrap(),
            "net.ipv4.ip_local_port_range is already 1024 65535"
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "1024\t65535\n");
        assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), before);

        let (result, out) = run_in(dir.path(), "net.ipv4.ip_local_port_range=2000 3000", true);
        assert!(result.unwrap().starts_with("would set"));
        assert_eq!(
            out,
            "would set sysctl net.ipv4.ip_local_port_range to 2000 3000 (it was 1024 65535)\n"
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "1024\t65535\n");

        let (result, _) = run_in(dir.path(), "vm.no_such_key=1", false);
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config);
        assert!(
            err.to_string().starts_with("unknown sysctl key vm.no_such_key:"),
            "{err}"
        );
    }
}
