//! `--sysctl` against the real kernel, harmlessly: keys are set only inside a network
//! namespace made for the test (`unshare --net`), which vanishes with it; a global key is
//! only ever "set" to the value it already has. Never change a global host sysctl here.
//!
//! The read-only /proc/sys of an unprivileged container is tested in a container by the
//! workspace's end-to-end tests; its message is unit-tested in src/sysctl.rs.

mod support;

use std::fs;
use std::process::{Command, Output};

use support::{BIN, assert_code, is_root, run, stderr, stdout};

/// Runs `script` under `sh` in a new network namespace, with `$BIN` set to the binary.
/// `None` (after saying why) where namespaces cannot be made.
fn in_new_netns(script: &str) -> Option<Output> {
    if !is_root() {
        eprintln!("skipped: a network namespace needs root");
        return None;
    }
    // util-linux's; a missing peer fails on CI and is a loud skip elsewhere.
    let unshare = pitcrew_testkit::require_binary("unshare", &["/usr/bin/unshare"])?;
    let output = Command::new(unshare)
        .args(["--net", "--", "sh", "-c", script])
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
