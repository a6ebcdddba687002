//! Every tool image's binary carries its dependency list (an SBOM), embedded by `cargo auditable
//! build` in `cargo xtask images`: the binary is copied out of the image as a user would
//! (`docker create`, `docker cp`) and read with the format's own reader (auditable-info, from
//! the rust-secure-code project that makes cargo-auditable).
//!
//! Scanners (`cargo audit bin`, `rust-audit-info`, syft, trivy, grype) find the list in an ELF
//! section named `.dep-v0` holding zlib-compressed JSON; the test also finds that section by
//! reading the ELF section headers itself, so it does not only trust one reader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use auditable_serde::{DependencyKind, Source, VersionInfo};
use pitcrew_e2e::{Container, ready, unique_name};

/// What each tool's dependency list must and must not hold: crates the tool really uses, and
/// crates that only another tool depends on directly, which it must not drag in.
///
/// Not "must not" for crates that reach a tool through a crate the tools share: cargo-auditable
/// builds the list from `cargo metadata`, which resolves features once for the whole workspace,
/// so pitcrew-core appears with every feature some tool enables, and pitcrew-prepare's list
/// names tokio and reqwest (through pitcrew-core's `shutdown` and `s3`) although prepare links
/// neither. Scanners therefore over-report for the small tools, never under-report. (An exact
/// list needs cargo's unstable `-Z sbom`, which cargo-auditable reads when it is there.)
/// Rows from `cargo tree -p pitcrew-<tool> -e normal --target x86_64-unknown-linux-musl`.
const EXPECTED: &[(&str, &[&str], &[&str])] = &[
    (
        "wait",
        &["tokio", "postgres-protocol", "reqwest"],
        // wait speaks the PostgreSQL and MySQL handshakes itself, without the drivers.
        &["mysql_async", "tokio-postgres", "jsonschema", "notify"],
    ),
    (
        "render",
        &["pitcrew-template", "glob"],
        &["jsonschema", "mysql_async", "notify", "zip"],
    ),
    (
        "prepare",
        &["pitcrew-core", "clap"],
        &["pitcrew-template", "jsonschema", "mysql_async", "zip"],
    ),
    (
        "fetch",
        &["reqwest", "rusty-s3", "tar", "zip"],
        &["mysql_async", "tokio-postgres", "jsonschema", "notify"],
    ),
    (
        "validate",
        &["jsonschema", "yaml-rust2", "toml"],
        &["mysql_async", "tokio-postgres", "notify", "zip"],
    ),
    (
        "migrate",
        &["mysql_async", "tokio-postgres"],
        &["jsonschema", "notify", "zip"],
    ),
    (
        "tail",
        &["notify", "pitcrew-follow", "prometheus-client"],
        &["jsonschema", "mysql_async", "tokio-postgres", "zip"],
    ),
    (
        // The webhooks are pitcrew-core's TLS client (reqwest); the render step is the
        // template engine; the watcher is notify. No database driver, no archive reader.
        "reload",
        &["notify", "pitcrew-template", "prometheus-client", "reqwest"],
        &[
            "jsonschema",
            "mysql_async",
            "tokio-postgres",
            "zip",
            "pitcrew-follow",
        ],
    ),
    (
        // Log files through the follower, status endpoints through pitcrew-core's TLS client
        // (reqwest), status files watched with notify, /metrics by prometheus-client. No
        // database driver, no archive reader, no template engine.
        "metrics",
        &["pitcrew-follow", "notify", "prometheus-client", "reqwest"],
        &[
            "jsonschema",
            "mysql_async",
            "tokio-postgres",
            "zip",
            "pitcrew-template",
        ],
    ),
    (
        // HTTP/1 and HTTP/2 on hyper both ways, TLS termination and upstream TLS on rustls,
        // JWT (jsonwebtoken) and bcrypt for htpasswd, certificate and token files watched with
        // notify, /metrics by prometheus-client, the JWKS URL and the auth service through
        // pitcrew-core's TLS client (reqwest). No database driver, no archive reader, no
        // template engine, no file follower.
        "proxy",
        &[
            "hyper",
            "rustls",
            "jsonwebtoken",
            "bcrypt",
            "notify",
            "prometheus-client",
            "reqwest",
        ],
        &[
            "jsonschema",
            "mysql_async",
            "tokio-postgres",
            "zip",
            "pitcrew-template",
            "pitcrew-follow",
        ],
    ),
    (
        // The all-in-one holds every tool, so every tool's crates; test-only crates never.
        "pitcrew",
        &[
            "pitcrew-wait",
            "pitcrew-tail",
            "pitcrew-reload",
            "pitcrew-metrics",
            "pitcrew-proxy",
            "mysql_async",
            "jsonschema",
            "notify",
            "zip",
            "reqwest",
        ],
        &["rcgen", "tempfile", "pitcrew-testkit"],
    ),
];

/// The tools: every folder in crates/ with a binary, as `cargo xtask images` finds them, so a
/// new tool is checked here as soon as it has an image.
fn tools() -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut tools: Vec<String> = std::fs::read_dir(&crates)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", crates.display()))
        .flatten()
        .filter(|entry| entry.path().join("src/main.rs").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !matches!(name.as_str(), "core" | "testkit"))
        .collect();
    tools.sort();
    tools
}

/// The package and binary name of a tool: `pitcrew-<tool>`, except the all-in-one multicall
/// crate (crates/pitcrew), whose binary is `pitcrew` (as in xtask's images.rs).
fn binary_name(tool: &str) -> String {
    if tool == "pitcrew" {
        tool.to_owned()
    } else {
        format!("pitcrew-{tool}")
    }
}

/// Copies /<binary> out of its image into `dir`, the way a user would inspect one.
fn copy_binary(tool: &str, image: &str, dir: &Path) -> PathBuf {
    let container = Container {
        name: unique_name(&format!("sbom-{tool}")),
    };
    let docker = |args: &[&str]| {
        let output = Command::new("docker").args(args).output().expect("run docker");
        assert!(
            output.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // Created, never started: nothing runs, the file system is there to copy from.
    docker(&["create", "--name", &container.name, image]);
    let binary = dir.join(binary_name(tool));
    let from = format!("{}:/{}", container.name, binary_name(tool));
    docker(&["cp", &from, &binary.display().to_string()]);
    // `container` is removed (docker rm -f) when dropped here.
    binary
}

/// The names of the ELF sections of `binary` and their sizes, from the section headers
/// (64-bit little-endian ELF, as built for x86_64 and aarch64).
fn elf_sections(binary: &[u8]) -> Vec<(String, u64)> {
    assert_eq!(&binary[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(binary[4], 2, "not a 64-bit ELF file");
    assert_eq!(binary[5], 1, "not a little-endian ELF file");
    let u16_at = |at: usize| u64::from(u16::from_le_bytes(binary[at..at + 2].try_into().unwrap()));
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(binary[at..at + 4].try_into().unwrap()));
    let u64_at = |at: usize| u64::from_le_bytes(binary[at..at + 8].try_into().unwrap());
    let index = |value: u64| usize::try_from(value).unwrap();
    let (table, entry_size, count, names_index) = (
        index(u64_at(0x28)),
        index(u16_at(0x3a)),
        index(u16_at(0x3c)),
        index(u16_at(0x3e)),
    );
    let header = |n: usize| table + n * entry_size;
    // Section header: sh_name (u32) at 0, sh_offset (u64) at 0x18, sh_size (u64) at 0x20.
    let names = index(u64_at(header(names_index) + 0x18));
    (0..count)
        .map(|n| {
            let start = names + index(u32_at(header(n)));
            let end = start + binary[start..].iter().position(|&byte| byte == 0).unwrap();
            (
                String::from_utf8_lossy(&binary[start..end]).into_owned(),
                u64_at(header(n) + 0x20),
            )
        })
        .collect()
}

/// The names of the packages reachable from the root through runtime dependencies: what the
/// list says the binary may contain, which is what a scanner reports on.
fn runtime_closure(info: &VersionInfo) -> BTreeSet<String> {
    let root = info
        .packages
        .iter()
        .position(|package| package.root)
        .expect("auditable-serde guarantees one root");
    let mut seen = BTreeSet::from([root]);
    let mut todo = vec![root];
    while let Some(next) = todo.pop() {
        for &dependency in &info.packages[next].dependencies {
            if info.packages[dependency].kind == DependencyKind::Runtime && seen.insert(dependency) {
                todo.push(dependency);
            }
        }
    }
    seen.into_iter()
        .map(|index| info.packages[index].name.clone())
        .collect()
}

#[test]
fn every_tool_binary_carries_its_dependency_list() {
    let tools = tools();
    assert!(!tools.is_empty(), "no tool crates found");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut problems: Vec<String> = Vec::new();
    for tool in &tools {
        let image = format!("pitcrew/{tool}:dev");
        if !ready(&image) {
            return;
        }
        let Some((_, present, absent)) = EXPECTED.iter().find(|(name, _, _)| name == tool) else {
            panic!(
                "no row for tool {tool:?} in EXPECTED: add the crates its binary must hold and \
                 some it must not (see `cargo tree -p {} -e normal`)",
                binary_name(tool)
            );
        };
        let binary = copy_binary(tool, &image, dir.path());
        let bytes = std::fs::read(&binary).expect("read the copied binary");

        // What scanners look for: a section named .dep-v0, not empty.
        let sections = elf_sections(&bytes);
        let dep = sections.iter().find(|(name, _)| name == ".dep-v0");
        assert!(
            dep.is_some_and(|(_, size)| *size > 0),
            "{image}: no non-empty .dep-v0 section (was it built by `cargo xtask images`, which \
             runs `cargo auditable build`?); sections: {sections:?}"
        );

        let info = auditable_info::audit_info_from_file(&binary, auditable_info::Limits::default())
            .unwrap_or_else(|err| panic!("{image}: the embedded dependency list does not parse: {err}"));
        // Format 1 and later record proc-macros as build dependencies, not as shipped code.
        assert!(
            info.format >= 1,
            "{image}: dependency list format {}",
            info.format
        );
        let root = info.packages.iter().find(|package| package.root).unwrap();
        assert_eq!(root.name, binary_name(tool), "{image}: root package");
        assert_eq!(
            root.version.to_string(),
            env!("CARGO_PKG_VERSION"),
            "{image}: root package version (the workspace's)"
        );
        assert_eq!(root.source, Source::Local, "{image}: root package source");

        let runtime = runtime_closure(&info);
        for name in *present {
            if !runtime.contains(*name) {
                problems.push(format!("{image}: {name} missing from {runtime:?}"));
            }
        }
        for name in *absent {
            if runtime.contains(*name) {
                problems.push(format!("{image}: {name} should not be in {runtime:?}"));
            }
        }
        // Tool crates never depend on each other (the one exception, the all-in-one binary,
        // holds them all).
        for other in tools
            .iter()
            .filter(|other| *other != tool && tool != "pitcrew" && *other != "pitcrew")
        {
            let other = format!("pitcrew-{other}");
            if runtime.contains(&other) && !present.contains(&other.as_str()) {
                problems.push(format!("{image}: {other} in {runtime:?}"));
            }
        }
        // Versions and sources are what a scanner matches against advisories: crates.io for
        // every crate that is not ours.
        for package in &info.packages {
            let ours = package.name == "pitcrew" || package.name.starts_with("pitcrew-");
            let expected = if ours { Source::Local } else { Source::CratesIo };
            assert_eq!(
                package.source, expected,
                "{image}: {} {}",
                package.name, package.version
            );
        }
        println!(
            "{image}: {} packages ({} at run time), .dep-v0 {} bytes",
            info.packages.len(),
            runtime.len(),
            dep.map_or(0, |(_, size)| *size)
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
