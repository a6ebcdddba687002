//! `--chown`, `--chmod`, `--mkdir` and `--symlink` through the binary, as root: symlinks
//! out of the tree, entries already right, links replaced, files in the way.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, lchown, symlink};
use std::path::Path;

use pitcrew_testkit::is_root;
use support::{assert_code, leftovers, listing, path_str, run, stderr};

/// Regression for the anchor: `chown -R` following a symlink out of the volume gave the
/// app user whatever the link pointed to.
#[test]
fn chown_changes_links_themselves_and_nothing_they_point_to() {
    if !is_root() {
        eprintln!("skipped: chown to other users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir_all(outside.join("etc")).unwrap();
    fs::write(outside.join("etc/shadow"), "root:x").unwrap();
    fs::write(outside.join("file"), "host file").unwrap();
    lchown(&outside, Some(4242), Some(4242)).unwrap();
    lchown(outside.join("etc"), Some(4242), Some(4242)).unwrap();
    lchown(outside.join("etc/shadow"), Some(4242), Some(4242)).unwrap();
    lchown(outside.join("file"), Some(4242), Some(4242)).unwrap();

    let data = dir.path().join("data");
    fs::create_dir_all(data.join("nested/deeper")).unwrap();
    fs::write(data.join("nested/deeper/db"), "x").unwrap();
    symlink(outside.join("file"), data.join("link-to-file")).unwrap();
    symlink(outside.join("etc"), data.join("nested/link-to-dir")).unwrap();
    symlink("../..", data.join("nested/deeper/up")).unwrap();
    symlink("nowhere", data.join("dangling")).unwrap();
    let outside_before = listing(&outside);

    let output = run(&["--chown", "1000:1000", path_str(&data)]);
    assert_code(&output, 0);
    // The targets keep their owner, and not even their ctime moved.
    assert_eq!(listing(&outside), outside_before);
    let inside = listing(&data);
    assert_eq!(inside.len(), 8);
    for (path, entry) in &inside {
        assert_eq!((entry.uid, entry.gid), (1000, 1000), "{path:?}");
    }
    let text = stderr(&output);
    assert!(
        text.contains("step 1/1 --chown 1000:1000")
            && text.contains("changed the owner of 8 entries to 1000:1000"),
        "{text}"
    );

    // A second run touches nothing: ctimes stay.
    let output = run(&["--chown", "1000:1000", path_str(&data)]);
    assert_code(&output, 0);
    assert_eq!(listing(&data), inside);
    assert!(
        stderr(&output).contains("all 8 entries already owned by 1000:1000"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("nothing to change: 1 step already done"));
}

#[test]
fn chown_counts_only_what_it_changes_and_takes_uid_or_gid_alone() {
    if !is_root() {
        eprintln!("skipped: chown to other users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data dir");
    fs::create_dir(&data).unwrap();
    for name in ["a", "b", "c"] {
        fs::write(data.join(name), name).unwrap();
    }
    lchown(data.join("a"), Some(1000), Some(7)).unwrap();
    let untouched = listing(&data)[Path::new("a")].ctime_ns;

    let output = run(&["--chown", ":7", path_str(&data)]);
    assert_code(&output, 0);
    let text = stderr(&output);
    assert!(
        text.contains("changed the owner of 3 entries to :7, 1 already had it"),
        "{text}"
    );
    let after = listing(&data);
    assert_eq!(after[Path::new("a")].ctime_ns, untouched);
    assert_eq!((after[Path::new("a")].uid, after[Path::new("a")].gid), (1000, 7));
    assert_eq!((after[Path::new("b")].uid, after[Path::new("b")].gid), (0, 7));

    let output = run(&["--chown", "1000", path_str(&data)]);
    assert_code(&output, 0);
    let after = listing(&data);
    assert!(after.values().all(|entry| entry.uid == 1000 && entry.gid == 7));
}

#[test]
fn chown_of_a_symlink_changes_the_link_only() {
    if !is_root() {
        eprintln!("skipped: chown to other users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("f"), "x").unwrap();
    let link = dir.path().join("link");
    symlink(&real, &link).unwrap();
    let output = run(&["--chown", "1000:1000", path_str(&link)]);
    assert_code(&output, 0);
    assert_eq!(fs::symlink_metadata(&link).unwrap().uid(), 1000);
    assert_eq!(fs::metadata(&real).unwrap().uid(), 0);
    assert_eq!(fs::metadata(real.join("f")).unwrap().uid(), 0);
    assert!(
        stderr(&output).contains("only the link itself"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn chmod_sets_the_mode_of_path_itself_and_refuses_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("inner"), "x").unwrap();
    fs::set_permissions(data.join("inner"), fs::Permissions::from_mode(0o644)).unwrap();

    let output = run(&["--chmod", "2770", path_str(&data)]);
    assert_code(&output, 0);
    assert_eq!(fs::metadata(&data).unwrap().mode() & 0o7777, 0o2770);
    // Not recursive.
    assert_eq!(fs::metadata(data.join("inner")).unwrap().mode() & 0o7777, 0o644);
    assert!(
        stderr(&output).contains("changed the mode of"),
        "{}",
        stderr(&output)
    );

    let before = listing(&data);
    let output = run(&["--chmod", "2770", path_str(&data)]);
    assert_code(&output, 0);
    assert_eq!(listing(&data), before);
    assert!(
        stderr(&output).contains("already has mode 2770"),
        "{}",
        stderr(&output)
    );

    let outside = dir.path().join("outside");
    fs::write(&outside, "x").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&outside, data.join("link")).unwrap();
    let output = run(&["--chmod", "0777", path_str(&data.join("link"))]);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("it is a symlink"), "{}", stderr(&output));
    assert_eq!(fs::metadata(&outside).unwrap().mode() & 0o7777, 0o600);

    let output = run(&["--chmod", "0777", path_str(&data.join("missing"))]);
    assert_code(&output, 66);
    assert!(stderr(&output).contains("missing"), "{}", stderr(&output));
}

#[test]
fn mkdir_creates_parents_with_the_dir_mode_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a/b c/d");
    let output = run(&["--dir-mode", "0750", "--mkdir", path_str(&deep)]);
    assert_code(&output, 0);
    for path in ["a", "a/b c", "a/b c/d"] {
        assert_eq!(
            fs::metadata(dir.path().join(path)).unwrap().mode() & 0o7777,
            0o750,
            "{path}"
        );
    }
    assert!(
        stderr(&output).contains("created 3 directories"),
        "{}",
        stderr(&output)
    );
    let before = listing(dir.path());
    let output = run(&["--dir-mode", "0700", "--mkdir", path_str(&deep)]);
    assert_code(&output, 0);
    // An existing directory keeps its mode: --dir-mode is for what is created.
    assert_eq!(listing(dir.path()), before);
    assert!(
        stderr(&output).contains("is already a directory"),
        "{}",
        stderr(&output)
    );

    let file = dir.path().join("file");
    fs::write(&file, "kept").unwrap();
    let output = run(&["--mkdir", &format!("{}/sub", path_str(&file))]);
    assert_code(&output, 74);
    assert!(
        stderr(&output).contains("a file is in the way"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read(&file).unwrap(), b"kept");
}

#[test]
fn symlink_is_created_left_alone_replaced_atomically_and_never_destroys_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("links/current");
    let spec = |target: &str| format!("{target}:{}", path_str(&link));

    let output = run(&["--symlink", &spec("../releases/v1")]);
    assert_code(&output, 0);
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("../releases/v1"));
    let first = fs::symlink_metadata(&link).unwrap().ino();

    let output = run(&["--symlink", &spec("../releases/v1")]);
    assert_code(&output, 0);
    assert_eq!(fs::symlink_metadata(&link).unwrap().ino(), first);
    assert!(
        stderr(&output).contains("already points to ../releases/v1"),
        "{}",
        stderr(&output)
    );

    let output = run(&["--symlink", &spec("../releases/v2")]);
    assert_code(&output, 0);
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("../releases/v2"));
    assert_ne!(
        fs::symlink_metadata(&link).unwrap().ino(),
        first,
        "a new link renamed over"
    );
    assert!(
        stderr(&output).contains("replaced symlink")
            && stderr(&output).contains("it pointed to ../releases/v1"),
        "{}",
        stderr(&output)
    );
    assert!(leftovers(dir.path()).is_empty());

    let file = dir.path().join("links/app.yaml");
    fs::write(&file, "precious").unwrap();
    let directory = dir.path().join("links/dir");
    fs::create_dir(&directory).unwrap();
    fs::write(directory.join("inner"), "also precious").unwrap();
    for (occupied, noun) in [(&file, "file"), (&directory, "directory")] {
        let output = run(&["--symlink", &format!("/elsewhere:{}", path_str(occupied))]);
        assert_code(&output, 74);
        let text = stderr(&output);
        assert!(
            text.contains(&format!("a {noun} is there (left as it is")),
            "{text}"
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"precious");
    assert_eq!(fs::read(directory.join("inner")).unwrap(), b"also precious");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn owner_applies_to_created_symlinks_and_directories() {
    if !is_root() {
        eprintln!("skipped: setting an owner needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("new/link");
    let output = run(&[
        "--owner",
        "1000:1000",
        "--symlink",
        &format!("/target:{}", path_str(&link)),
        "--mkdir",
        path_str(&dir.path().join("made")),
    ]);
    assert_code(&output, 0);
    for path in [link, dir.path().join("new"), dir.path().join("made")] {
        let metadata = fs::symlink_metadata(&path).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (1000, 1000), "{path:?}");
    }
}

/// A ConfigMap or a `subPath` file mounted inside the volume is another volume (read-only in
/// a pod): chown leaves it alone instead of failing on it or changing it. Run in a mount
/// namespace of its own, so the tmpfs vanishes with the test.
#[test]
fn chown_stays_on_the_file_system_of_path() {
    if !is_root() {
        eprintln!("skipped: mounting and chown need root");
        return;
    }
    let Some(unshare) = pitcrew_testkit::require_binary("unshare", &["/usr/bin/unshare"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("mounted")).unwrap();
    fs::write(data.join("own"), "x").unwrap();
    let script = r#"
        mount -t tmpfs none "$DATA/mounted" || exit 20
        echo x > "$DATA/mounted/inner" || exit 21
        "$BIN" --chown 1000:1000 "$DATA" || exit 22
        stat -c '%u %n' "$DATA/mounted" "$DATA/mounted/inner"
    "#;
    let output = std::process::Command::new(unshare)
        .args(["--mount", "--", "sh", "-c", script])
        .env("BIN", support::BIN)
        .env("DATA", &data)
        .env_remove("PITCREW_LOG_FORMAT")
        .output()
        .unwrap();
    assert_code(&output, 0);
    let stats = String::from_utf8_lossy(&output.stdout);
    assert!(stats.lines().all(|line| line.starts_with("0 ")), "{stats}");
    assert_eq!(stats.lines().count(), 2, "{stats}");
    let text = stderr(&output);
    assert!(
        text.contains("changed the owner of 2 entries to 1000:1000 (left alone: 1 volume mounted inside"),
        "{text}"
    );
    assert_eq!(fs::metadata(data.join("own")).unwrap().uid(), 1000);
}

/// With --dry-run: the refusal comes before anything is done either way, and should it ever
/// break, this test must not give the machine's whole file system away.
#[test]
fn chown_of_the_root_directory_is_refused() {
    for root in ["/", "/tmp/../"] {
        let output = run(&["--dry-run", "--chown", "1000:1000", root]);
        assert_code(&output, 78);
        assert!(
            stderr(&output).contains("it is the root directory"),
            "{}",
            stderr(&output)
        );
        assert!(support::stdout(&output).is_empty());
    }
}

/// The image runs as 65532: a chown there fails with a message saying what the pod spec
/// needs, and nothing is half-changed.
#[test]
fn chown_without_root_says_it_needs_root_or_cap_chown() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to the image's user");
        return;
    }
    let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &["/usr/bin/setpriv"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    lchown(&data, Some(65532), Some(65532)).unwrap();
    let before = listing(dir.path());
    let output = std::process::Command::new(setpriv)
        .args([
            "--reuid=65532",
            "--regid=65532",
            "--clear-groups",
            "--",
            support::BIN,
        ])
        .args(["--chown", "1000:1000", path_str(&data)])
        .env_remove("PITCREW_LOG_FORMAT")
        .output()
        .unwrap();
    assert_code(&output, 74);
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "cannot change owner of {}: operation not permitted",
            path_str(&data)
        )) && text.contains("needs root or the CAP_CHOWN capability"),
        "{text}"
    );
    assert_eq!(listing(dir.path()), before);
}
