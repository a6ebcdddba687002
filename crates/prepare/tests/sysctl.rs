//! `--sysctl` against the real kernel, harmlessly: keys are set only inside a network
//! namespace made for the test (`unshare --net`), which vanishes with it; a global key is
//! only ever "set" to the value it already has. Never change a global host sysctl here.
//!
//! The read-only /proc/sys of an unprivileged container is made here the way container
//! runtimes make it (a read-only bind mount over /proc/sys, in a mount namespace of the test's
//! own); the workspace's end-to-end tests also meet it in a real container.

mod support;

use std::fs;
use std::process::{Command, Output};

use pitcrew_testkit::is_root;
use support::{BIN, assert_code, run, stderr, stdout};

/// Runs `script` under `sh` in a new network and mount namespace, with `$BIN` set to the
/// binary.
/// `None` (after saying why) where namespaces cannot be made.
fn in_new_netns(script: &str) -> Option<Output> {
    if !is_root() {
        eprintln!("skipped: a network namespace needs root");
        return None;
    }
    // util-linux's; a missing peer fails on CI and is a loud skip elsewhere.
    let unshare = pitcrew_testkit::require_binary("unshare", &["/usr/bin/unshare"])?;
    let output = Command::new(unshare)
        .args(["--net", "--mount", "--", "sh", "-c", script])
        .env("BIN", BIN)
        .env_remove("PITCREW_LOG_FORMAT")
        .output()
        .unwrap();
    Some(output)
}

#[test]
fn a_per_namespace_key_is_set_read_back_and_left_alone_the_second_time() {
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let script = r#"
        "$BIN" --sysctl 'net.ipv4.ip_local_port_range=40000 50000' || exit 10
        echo "value: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
        "$BIN" --sysctl 'net/ipv4/ip_local_port_range=40000	50000' || exit 11
        "$BIN" --dry-run --sysctl 'net.ipv4.ping_group_range=100 200' || exit 12
        echo "ping after dry run: $(cat /proc/sys/net/ipv4/ping_group_range)"
        "$BIN" --sysctl 'net.ipv4.ping_group_range=100 200' || exit 13
        echo "ping: $(cat /proc/sys/net/ipv4/ping_group_range)"
    "#;
    let Some(output) = in_new_netns(script) else {
        return;
    };
    assert_code(&output, 0);
    let out = stdout(&output);
    let log = stderr(&output);
    assert!(out.contains("value: 40000\t50000"), "{out}");
    assert!(
        log.contains("set sysctl net.ipv4.ip_local_port_range to 40000 50000 (it was "),
        "{log}"
    );
    // Tab or spaces: the same value, not written again.
    assert!(
        log.contains(
            "step 1/1 --sysctl \"net/ipv4/ip_local_port_range=40000\\t50000\": \
             net/ipv4/ip_local_port_range is already 40000 50000"
        ),
        "{log}"
    );
    assert!(
        out.contains("would set sysctl net.ipv4.ping_group_range to 100 200"),
        "{out}"
    );
    assert!(!out.contains("ping after dry run: 100"), "{out}");
    assert!(out.contains("ping: 100\t200"), "{out}");
    // The host's namespace was never touched.
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap(),
        host_before
    );
}

#[test]
fn a_global_key_already_at_the_value_is_reported_unchanged_and_not_written() {
    let path = "/proc/sys/vm/max_map_count";
    let current = fs::read_to_string(path).unwrap().trim().to_owned();
    // Spaces around the value: compared with whitespace collapsed, still equal.
    let output = run(&["--sysctl", &format!("vm.max_map_count= {current} ")]);
    assert_code(&output, 0);
    let text = stderr(&output);
    assert!(
        text.contains(&format!("vm.max_map_count is already {current}")),
        "{text}"
    );
    assert!(text.contains("nothing to change: 1 step already done"), "{text}");
    assert_eq!(fs::read_to_string(path).unwrap().trim(), current);
}

/// Not root (the image's user): the kernel refuses, and the message says what the pod spec
/// needs. In a network namespace of its own, so that even a privilege drop that failed
/// could only change a throwaway namespace.
#[test]
fn without_root_the_error_says_a_privileged_init_container_is_needed() {
    let script = r#"
        setpriv --reuid=65532 --regid=65532 --clear-groups -- "$BIN" --sysctl 'net.ipv4.ping_group_range=100 200'
        echo "exit: $?"
        echo "ping: $(cat /proc/sys/net/ipv4/ping_group_range)"
    "#;
    if pitcrew_testkit::require_binary("setpriv", &["/usr/bin/setpriv"]).is_none() {
        return;
    }
    let Some(output) = in_new_netns(script) else {
        return;
    };
    let out = stdout(&output);
    assert!(out.contains("exit: 74"), "{out}\n{}", stderr(&output));
    assert!(out.contains("ping: 1\t0"), "{out}");
    let text = stderr(&output);
    assert!(
        text.contains("cannot set sysctl net.ipv4.ping_group_range (/proc/sys/net/ipv4/ping_group_range): permission denied")
            && text.contains("privileged: true"),
        "{text}"
    );
}

/// What an unprivileged container sees: /proc/sys mounted read-only.
#[test]
fn a_read_only_proc_sys_says_a_privileged_init_container_is_needed() {
    let script = r#"
        mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 20
        "$BIN" --sysctl 'net.ipv4.ping_group_range=100 200'
        echo "exit: $?"
        "$BIN" --sysctl 'net.ipv4.ping_group_range=1 0' || exit 21
    "#;
    let Some(output) = in_new_netns(script) else {
        return;
    };
    assert_code(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("exit: 74"), "{out}");
    let text = stderr(&output);
    assert!(
        text.contains("/proc/sys is read-only in this container; setting a kernel parameter needs a privileged init container"),
        "{text}"
    );
    // A value already in place needs no write: fine even read-only.
    assert!(
        text.contains("net.ipv4.ping_group_range is already 1 0"),
        "{text}"
    );
}
