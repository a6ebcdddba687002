//! `--copy` through the binary: files and trees, ConfigMap layouts, idempotence, modes and
//! owners, odd paths.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::Path;

use pitcrew_testkit::is_root;
use support::{assert_code, configmap, leftovers, listing, path_str, run, stderr};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn a_file_goes_to_dest_or_inside_a_directory_dest_as_with_cp() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("run.sh");
    fs::write(&source, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&source, fs::Permissions::from_mode(0o750)).unwrap();
    let existing = dir.path().join("bin");
    fs::create_dir(&existing).unwrap();

    let to_file = dir.path().join("renamed.sh");
    let into_new = dir.path().join("new dir/sub");
    let output = run(&[
        "--copy",
        &format!("{}:{}", path_str(&source), path_str(&to_file)),
        "--copy",
        &format!("{}:{}", path_str(&source), path_str(&existing)),
        "--copy",
        &format!("{}:{}/", path_str(&source), path_str(&into_new)),
    ]);
    assert_code(&output, 0);
    for copy in [to_file, existing.join("run.sh"), into_new.join("run.sh")] {
        assert_eq!(fs::read(&copy).unwrap(), b"#!/bin/sh\necho hi\n", "{copy:?}");
        // The source's mode, as cp gives a new file.
        assert_eq!(mode(&copy), 0o750, "{copy:?}");
    }
    // Missing parents of DEST are created with the default directory mode.
    assert_eq!(mode(&dir.path().join("new dir")), 0o755);
    assert_eq!(mode(&into_new), 0o755);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_configmap_is_copied_as_its_files_without_the_kubelet_internals() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("config-template");
    fs::create_dir(&template).unwrap();
    configmap(
        &template,
        &[
            ("app.yaml", "port: 8080\n"),
            ("nginx.conf", "events {}\n"),
            ("conf.d/site.conf", "server {}\n"),
        ],
    );
    let shared = dir.path().join("shared-config");
    let output = run(&[
        "--copy",
        &format!("{}:{}", path_str(&template), path_str(&shared)),
    ]);
    assert_code(&output, 0);
    let copied: Vec<_> = listing(&shared)
        .into_iter()
        .map(|(path, entry)| (path.to_string_lossy().into_owned(), entry.kind))
        .collect();
    assert_eq!(
        copied,
        [
            (String::new(), "dir"),
            ("app.yaml".into(), "file"),
            ("conf.d".into(), "dir"),
            ("conf.d/site.conf".into(), "file"),
            ("nginx.conf".into(), "file"),
        ]
    );
    assert_eq!(
        fs::read_to_string(shared.join("conf.d/site.conf")).unwrap(),
        "server {}\n"
    );
    let text = stderr(&output);
    assert!(
        text.contains("step 1/1 --copy") && text.contains("created 3 files and 2 directories"),
        "{text}"
    );
    // Logs name paths and sizes, never contents.
    assert!(!text.contains("port: 8080"), "{text}");
}

#[test]
fn a_second_run_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t");
    fs::create_dir(&template).unwrap();
    configmap(&template, &[("a.yaml", "a"), ("sub/b.yaml", "b"), ("empty", "")]);
    let shared = dir.path().join("out");
    let copy = format!("{}:{}", path_str(&template), path_str(&shared));
    let args = ["--copy", &copy, "--mode", "0640", "--dir-mode", "0750"];
    assert_code(&run(&args), 0);
    let before = listing(&shared);
    assert_eq!(before[Path::new("a.yaml")].mode, 0o640);
    assert_eq!(before[Path::new("sub")].mode, 0o750);
    assert_eq!(before[Path::new("empty")].content.as_deref(), Some(&b""[..]));

    let output = run(&args);
    assert_code(&output, 0);
    // Same inodes, mtimes and ctimes: nothing was rewritten, not even in place.
    assert_eq!(listing(&shared), before);
    let text = stderr(&output);
    assert!(text.contains("3 files already identical"), "{text}");
    assert!(text.contains("nothing to change: 1 step already done"), "{text}");
}

#[test]
fn a_changed_source_replaces_only_that_file_and_an_asked_mode_is_applied_to_identical_ones() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t");
    fs::create_dir(&template).unwrap();
    fs::write(template.join("same"), "same").unwrap();
    fs::write(template.join("changes"), "old").unwrap();
    let shared = dir.path().join("out");
    let copy = format!("{}:{}", path_str(&template), path_str(&shared));
    assert_code(&run(&["--copy", &copy]), 0);
    let before = listing(&shared);

    fs::write(template.join("changes"), "new!").unwrap();
    let output = run(&["--copy", &copy]);
    assert_code(&output, 0);
    let after = listing(&shared);
    assert_eq!(after[Path::new("same")], before[Path::new("same")]);
    assert_ne!(
        after[Path::new("changes")].ino,
        before[Path::new("changes")].ino,
        "renamed into place"
    );
    assert_eq!(after[Path::new("changes")].content.as_deref(), Some(&b"new!"[..]));
    let text = stderr(&output);
    assert!(
        text.contains("replaced 1 file, 1 file already identical"),
        "{text}"
    );
    assert!(text.contains("done: 1 change made by 1 of 1 step"), "{text}");

    // Identical content, another mode asked: mode set in place, content and mtime kept.
    let output = run(&["--copy", &copy, "--mode", "0600"]);
    assert_code(&output, 0);
    let fixed = listing(&shared);
    assert_eq!(fixed[Path::new("same")].mode, 0o600);
    assert_eq!(fixed[Path::new("same")].ino, before[Path::new("same")].ino);
    assert_eq!(
        fixed[Path::new("same")].mtime_ns,
        before[Path::new("same")].mtime_ns
    );
    assert!(
        stderr(&output).contains("fixed mode or owner of 2 identical files"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn owner_applies_to_copied_files_and_created_directories() {
    if !is_root() {
        eprintln!("skipped: setting an owner needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t");
    fs::create_dir_all(template.join("sub")).unwrap();
    fs::write(template.join("sub/key"), "k").unwrap();
    let shared = dir.path().join("out");
    fs::create_dir(&shared).unwrap();
    let output = run(&[
        "--owner",
        "1000:2000",
        "--copy",
        &format!("{}:{}", path_str(&template), path_str(&shared)),
    ]);
    assert_code(&output, 0);
    let entries = listing(&shared);
    for name in ["sub", "sub/key"] {
        let entry = &entries[Path::new(name)];
        assert_eq!((entry.uid, entry.gid), (1000, 2000), "{name}");
    }
    // DEST existed: it is left as it was.
    assert_eq!(entries[Path::new("")].uid, 0);
    assert!(stderr(&output).contains("owner 1000:2000"), "{}", stderr(&output));
}

#[test]
fn paths_with_spaces_colons_and_dot_dot_work() {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("src dir");
    fs::create_dir(&source_dir).unwrap();
    fs::write(source_dir.join("a b:c.txt"), "spaced").unwrap();
    let source = format!("{}/../src dir/a b\\:c.txt", path_str(&source_dir));
    let dest = format!("{}/dst dir/x/../y/", path_str(dir.path()));
    let output = run(&["--copy", &format!("{source}:{dest}")]);
    assert_code(&output, 0);
    let copied = dir.path().join("dst dir/y/a b:c.txt");
    assert_eq!(fs::read_to_string(&copied).unwrap(), "spaced");
    // As `mkdir -p dst/x/../y` does, x is created on the way.
    assert!(dir.path().join("dst dir/x").is_dir());
    // The step is shown quoted and with its escape back in place.
    let text = stderr(&output);
    assert!(text.contains("step 1/1 --copy \""), "{text}");
    assert!(text.contains("a b\\\\:c.txt"), "{text}");
}

#[test]
fn a_symlink_in_the_destination_is_replaced_by_the_file_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, "must stay").unwrap();
    let source = dir.path().join("t");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("app.yaml"), "new").unwrap();
    let shared = dir.path().join("out");
    fs::create_dir(&shared).unwrap();
    symlink(&outside, shared.join("app.yaml")).unwrap();
    let output = run(&["--copy", &format!("{}:{}", path_str(&source), path_str(&shared))]);
    assert_code(&output, 0);
    assert_eq!(fs::read_to_string(&outside).unwrap(), "must stay");
    assert!(fs::symlink_metadata(shared.join("app.yaml")).unwrap().is_file());
    assert_eq!(fs::read_to_string(shared.join("app.yaml")).unwrap(), "new");
}
