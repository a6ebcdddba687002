//! End-to-end tests of the arm64 images (`pitcrew/wait:dev-arm64`, `pitcrew/tail:dev-arm64`),
//! on this amd64 machine.
//!
//! - Their config says linux/arm64, what a node's runtime matches against (and the amd64
//!   image's says linux/amd64): a wrong platform there is the `exec format error` an arm64
//!   user would see.
//! - The binary inside (copied out with `docker create` + `docker cp`: an arm64 container
//!   cannot run here without a binfmt_misc handler, a machine-wide change the tests do not make)
//!   is a static aarch64 ELF, and runs under Debian's `qemu-aarch64-static` against real peers:
//!   wait for a PostgreSQL that comes up late and an HTTPS nginx; tail following a file
//!   through a rotation to stdout and to an HTTP sink, ended cleanly by SIGTERM (qemu-user
//!   hands the signal to the emulated program).
//!
//! The peers are Debian's x86-64 programs on loopback. Run by `cargo xtask test` after the
//! images step built the arm64 images.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pitcrew_e2e::{
    Container, Process, TAIL_ARM64_IMAGE, WAIT_ARM64_IMAGE, WAIT_IMAGE, must_run, ready, skipped, unique_name,
};
use pitcrew_testkit::http_receiver::HttpReceiver;
use pitcrew_testkit::nginx::NginxPeer;
use pitcrew_testkit::postgres::{self, PostgresPeer};

/// Generous: emulated code on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// `EM_AARCH64`, the ELF machine number of arm64.
const EM_AARCH64: u16 = 183;
/// The program header of a dynamically linked executable naming its loader.
const PT_INTERP: u32 = 3;

/// `Os/Architecture` from the image's config.
fn platform_of(image: &str) -> String {
    let config = pitcrew_e2e::inspect_image(image);
    format!(
        "{}/{}",
        config["Os"].as_str().unwrap_or_default(),
        config["Architecture"].as_str().unwrap_or_default()
    )
}

#[test]
fn the_arm64_images_say_linux_arm64_and_the_amd64_image_linux_amd64() {
    if !ready(WAIT_ARM64_IMAGE) || !ready(TAIL_ARM64_IMAGE) || !ready(WAIT_IMAGE) {
        return;
    }
    for (image, expected) in [
        (WAIT_ARM64_IMAGE, "linux/arm64"),
        (TAIL_ARM64_IMAGE, "linux/arm64"),
        (WAIT_IMAGE, "linux/amd64"),
    ] {
        assert_eq!(platform_of(image), expected, "the platform in {image}'s config");
    }
}

/// Debian's qemu-user for aarch64, or `None` (after SKIPPED) when it is missing and skipping
/// is allowed.
fn qemu() -> Option<PathBuf> {
    let found = pitcrew_testkit::require_binary("qemu-aarch64-static", &["/usr/bin/qemu-aarch64-static"]);
    if found.is_none() {
        assert!(
            !must_run(),
            "qemu-aarch64-static is missing (Debian package qemu-user-static; PITCREW_E2E=1: not skipping)"
        );
        skipped("qemu-aarch64-static is missing (Debian package qemu-user-static)");
    }
    found
}

/// Copies `/<binary>` out of `image` into `dir` (`docker create`, never started, + `docker cp`).
fn copy_out(image: &str, binary: &str, dir: &Path) -> PathBuf {
    let container = Container {
        name: unique_name("arm64-copy"),
    };
    let created = Command::new("docker")
        .args(["create", "--name", &container.name, image])
        .stdin(Stdio::null())
        .output()
        .expect("docker create runs");
    assert!(
        created.status.success(),
        "docker create {image}: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let path = dir.join(binary);
    let copied = Command::new("docker")
        .args(["cp", &format!("{}:/{binary}", container.name)])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("docker cp runs");
    assert!(
        copied.status.success(),
        "docker cp /{binary} out of {image}: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    path
}

/// The ELF facts that decide whether a node can run the file: class, byte order, machine and
/// whether it asks for a loader. Errors name what was found instead.
fn check_static_aarch64(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(format!("not an ELF file: starts with {:02x?}", bytes.get(..4)));
    }
    if bytes.get(4..6) != Some([2, 1].as_slice()) {
        return Err(format!(
            "not a 64-bit little-endian ELF: class and data bytes {:?}",
            bytes.get(4..6)
        ));
    }
    match u16_at(18) {
        Some(EM_AARCH64) => {}
        other => return Err(format!("e_machine {other:?}, expected {EM_AARCH64} (EM_AARCH64)")),
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return Err("truncated ELF header".into());
    };
    let phoff = usize::try_from(phoff).map_err(|_| format!("e_phoff {phoff} out of range"))?;
    for index in 0..usize::from(phnum) {
        let at = phoff + index * usize::from(phentsize);
        match u32_at(at) {
            None => return Err(format!("program header {index} lies past the end of the file")),
            Some(PT_INTERP) => {
                return Err(format!(
                    "program header {index} is PT_INTERP: dynamically linked, needs a loader a scratch image lacks"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[test]
fn the_elf_check_refuses_what_a_node_could_not_run() {
    // The check itself, on files whose answer is known: the host's own dynamic executables
    // (x86-64 and with a loader) and a file that is not ELF at all.
    let host = Path::new("/bin/sh");
    let err = check_static_aarch64(host).unwrap_err();
    assert!(err.contains("e_machine Some(62)"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("script");
    std::fs::write(&text, "#!/bin/sh\n").unwrap();
    let err = check_static_aarch64(&text).unwrap_err();
    assert!(err.contains("not an ELF file"), "{err}");
    // An aarch64 header with a PT_INTERP program header: refused as dynamically linked.
    let mut elf = vec![0u8; 64 + 56];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&1u16.to_le_bytes());
    elf[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
    let dynamic = dir.path().join("dynamic");
    std::fs::write(&dynamic, &elf).unwrap();
    let err = check_static_aarch64(&dynamic).unwrap_err();
    assert!(err.contains("PT_INTERP"), "{err}");
    // The same header without it passes.
    elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&dynamic, &elf).unwrap();
    assert_eq!(check_static_aarch64(&dynamic), Ok(()));
}

/// Waits until `path` holds `text`; panics with the file after `DEADLINE`.
fn wait_for_text(path: &Path, text: &str) {
    let start = Instant::now();
    loop {
        let seen = std::fs::read_to_string(path).unwrap_or_default();
        if seen.contains(text) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {text:?} in {} within {DEADLINE:?}:\n{seen}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the process exits; panics after `DEADLINE` (the process is killed on drop).
fn wait_exit(process: &mut Process, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = process.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what} still running after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_arm64_wait_binary_is_static_aarch64_and_waits_for_a_late_postgres_and_https_nginx_under_qemu() {
    if !ready(WAIT_ARM64_IMAGE) {
        return;
    }
    let Some(qemu) = qemu() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_out(WAIT_ARM64_IMAGE, "pitcrew-wait", dir.path());
    check_static_aarch64(&binary).unwrap_or_else(|err| panic!("{WAIT_ARM64_IMAGE}: /pitcrew-wait: {err}"));

    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let database = prepared.url(postgres::USER, Some(postgres::PASSWORD), postgres::DATABASE);
    let https = nginx.https_url("/healthz");
    let stderr = dir.path().join("stderr");
    let mut waiting = Process(
        Command::new(&qemu)
            .arg(&binary)
            .args([&database, &https, "--db-login", "--timeout", "3m"])
            .arg("--ca-file")
            .arg(nginx.ca_pem_path())
            .arg("--termination-log=/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("qemu-aarch64-static runs"),
    );
    // PostgreSQL starts only once the emulated waiter has really been refused: its retry loop,
    // timers and logging run on arm64 too.
    wait_for_text(&stderr, "connection refused");
    let _postgres = prepared.start();
    let status = wait_exit(&mut waiting, "pitcrew-wait under qemu");
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{logs}");
    let shown = database.replace(postgres::PASSWORD, "***");
    assert!(logs.contains(&format!("{shown} is ready after")), "{logs}");
    assert!(logs.contains(&format!("{https} is ready after")), "{logs}");
}

/// Appends `line-NNNNNN …` lines numbered `lines` to `path`.
fn append(path: &Path, lines: std::ops::Range<u32>) {
    let mut text = String::new();
    for n in lines {
        let _ = writeln!(text, "line-{n:06} from an emulated sidecar, ünïcödé");
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The `line-NNNNNN` numbers in `text`, in order (raw lines or JSON records alike).
fn numbers(text: &str) -> Vec<u32> {
    text.split("line-")
        .skip(1)
        .filter_map(|rest| rest.get(..6)?.parse().ok())
        .collect()
}

#[test]
fn the_arm64_tail_binary_follows_a_rotation_to_stdout_and_http_and_sigterm_ends_it_under_qemu() {
    if !ready(TAIL_ARM64_IMAGE) {
        return;
    }
    let Some(qemu) = qemu() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_out(TAIL_ARM64_IMAGE, "pitcrew-tail", dir.path());
    check_static_aarch64(&binary).unwrap_or_else(|err| panic!("{TAIL_ARM64_IMAGE}: /pitcrew-tail: {err}"));

    let receiver = HttpReceiver::start();
    let log = dir.path().join("app.log");
    append(&log, 0..500);
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let checkpoint = dir.path().join("checkpoint");
    let mut sidecar = Process(
        Command::new(&qemu)
            .arg(&binary)
            .args(["-n+1", "-F"])
            .arg(&log)
            .args(["--sink", "stdout", "--sink", &receiver.url("/logs")])
            .arg(format!("--checkpoint={}", checkpoint.display()))
            .arg("--termination-log=/dev/null")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("qemu-aarch64-static runs"),
    );
    wait_for_text(&stdout, "line-000499 ");
    // Rotated the way logrotate does it: renamed, and a new file in its place.
    append(&log, 500..700);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 700..1000);
    wait_for_text(&stdout, "line-000999 ");

    let term = Command::new("kill")
        .args(["-s", "TERM", &sidecar.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success(), "kill -s TERM failed: {term}");
    let status = wait_exit(&mut sidecar, "pitcrew-tail under qemu after SIGTERM");
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{logs}");

    let expected: Vec<u32> = (0..1000).collect();
    let printed = std::fs::read_to_string(&stdout).unwrap();
    assert_eq!(numbers(&printed), expected, "stdout; stderr:\n{logs}");
    // Every line reached the HTTP sink once, in order, before the clean exit.
    let delivered: String = receiver
        .requests()
        .iter()
        .filter(|request| request.succeeded())
        .map(pitcrew_testkit::http_receiver::ReceivedRequest::text)
        .collect();
    assert_eq!(numbers(&delivered), expected, "HTTP sink; stderr:\n{logs}");
    assert!(
        checkpoint.is_file(),
        "no checkpoint saved on SIGTERM; stderr:\n{logs}"
    );
}
