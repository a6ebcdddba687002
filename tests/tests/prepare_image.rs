//! End-to-end tests of the `pitcrew/prepare:dev` image, run with docker the way a pod runs it:
//! as root with only CAP_CHOWN and CAP_FOWNER for volume set-up, on a read-only root, and in
//! an unprivileged container for `--sysctl`, where /proc/sys is read-only.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::Path;
use std::time::Duration;

use pitcrew_e2e::{Finished, PREPARE_IMAGE, is_root, ready, run, skipped};
use pitcrew_testkit::examples::configmap_volume;

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

fn owner(path: &Path) -> (u32, u32) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    (metadata.uid(), metadata.gid())
}

/// The seed's `cp /config-template/* /shared-config/ && chown -R 1000:1000 /data`, with a
/// symlink in the data volume pointing at a file and a directory of another volume: chown
/// must change the links themselves, never what they point at.
#[test]
// One pod's story from set-up to restart; split, it would hide what the second run repeats.
#[allow(clippy::too_many_lines)]
fn copies_and_chowns_as_root_without_following_symlinks_out_of_the_volume() {
    if !ready(PREPARE_IMAGE) {
        return;
    }
    if !is_root() {
        skipped("the test makes root-owned files and checks their owners: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::create_dir(path("config")).unwrap();
    configmap_volume(
        &path("config"),
        &BTreeMap::from([
            ("search.yml".to_owned(), "cluster.name: search\n".to_owned()),
            ("jvm.options".to_owned(), "-Xmx512m\n".to_owned()),
        ]),
    );
    for name in ["shared", "data/index", "outside/dir"] {
        std::fs::create_dir_all(path(name)).unwrap();
    }
    std::fs::write(path("data/index/segment"), "x").unwrap();
    std::fs::write(path("outside/file"), "not ours").unwrap();
    // Targets as the container sees them: /outside is another volume.
    symlink("/outside/file", path("data/link-to-file")).unwrap();
    symlink("/outside/dir", path("data/link-to-dir")).unwrap();

    let mounts = [
        format!("{}:/config-template:ro", path("config").display()),
        format!("{}:/shared-config", path("shared").display()),
        format!("{}:/data", path("data").display()),
        format!("{}:/outside", path("outside").display()),
    ];
    let mut args: Vec<&str> = vec![
        "--rm",
        "--read-only",
        "--network",
        "none",
        "--user",
        "0:0",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--cap-add",
        "FOWNER",
    ];
    for mount in &mounts {
        args.extend(["-v", mount]);
    }
    args.extend([
        PREPARE_IMAGE,
        "--copy",
        "/config-template:/shared-config",
        "--mkdir",
        "/data/snapshots",
        "--chown",
        "1000:1000",
        "/data",
    ]);
    let first = run(&args, RUN_DEADLINE);
    assert_eq!(first.code, 0, "{}", describe(&first));

    assert_eq!(
        std::fs::read_to_string(path("shared/search.yml")).unwrap(),
        "cluster.name: search\n"
    );
    let mut copied: Vec<String> = std::fs::read_dir(path("shared"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    copied.sort();
    assert_eq!(
        copied,
        ["jvm.options", "search.yml"],
        "no ..data internals copied"
    );
    for inside in [
        "data",
        "data/index",
        "data/index/segment",
        "data/snapshots",
        "data/link-to-file",
        "data/link-to-dir",
    ] {
        assert_eq!(
            owner(&path(inside)),
            (1000, 1000),
            "{inside} not chowned:\n{}",
            describe(&first)
        );
    }
    for outside in ["outside/file", "outside/dir"] {
        assert_eq!(
            owner(&path(outside)),
            (0, 0),
            "{outside} changed through a symlink"
        );
    }

    // The pod restarts: the same steps change nothing and say so.
    let second = run(&args, RUN_DEADLINE);
    assert_eq!(second.code, 0, "{}", describe(&second));
    assert!(
        format!("{}{}", second.stdout, second.stderr).contains("nothing to change"),
        "{}",
        describe(&second)
    );
}

/// Without `privileged: true`, /proc/sys is read-only in a container: the error must say
/// what the pod spec needs. The value asked for differs from the host's, so the tool has to
/// write; the container cannot, so the host is never changed.
#[test]
fn sysctl_in_an_unprivileged_container_says_it_needs_a_privileged_one() {
    if !ready(PREPARE_IMAGE) {
        return;
    }
    let current: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let wanted = format!("vm.max_map_count={}", current + 1);
    let finished = run(
        &[
            "--rm",
            "--read-only",
            "--network",
            "none",
            "--user",
            "0:0",
            PREPARE_IMAGE,
            "--sysctl",
            &wanted,
        ],
        RUN_DEADLINE,
    );
    assert_ne!(finished.code, 0, "{}", describe(&finished));
    assert!(matches!(finished.code, 74 | 78), "{}", describe(&finished));
    assert!(
        finished.stderr.contains("vm.max_map_count"),
        "{}",
        describe(&finished)
    );
    assert!(finished.stderr.contains("privileged"), "{}", describe(&finished));
    let after: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(after, current);
}

#[test]
fn a_copy_onto_the_read_only_root_fails_with_74_and_names_the_path() {
    if !ready(PREPARE_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "x\n").unwrap();
    let mount = format!("{}:/in:ro", dir.path().display());
    let finished = run(
        &[
            "--rm",
            "--read-only",
            "--network",
            "none",
            "-v",
            &mount,
            PREPARE_IMAGE,
            "--copy",
            "/in/app.conf:/etc/app.conf",
        ],
        RUN_DEADLINE,
    );
    assert_eq!(finished.code, 74, "{}", describe(&finished));
    assert!(
        finished.stderr.contains("/etc/app.conf"),
        "{}",
        describe(&finished)
    );
    assert!(finished.stderr.contains("read-only"), "{}", describe(&finished));
}
