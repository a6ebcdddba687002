//! `pitcrew_fetch::extract` against real archives: made by GNU tar, zstd and Info-ZIP's zip
//! from a real tree, and hostile ones the tools refuse to make, written byte by byte with
//! Python's tarfile and zipfile. Every failure must leave the destination exactly as it was
//! (a pre-existing file and directory included) and nothing outside it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::{Mode, Owner};
use pitcrew_fetch::extract::{ExtractError, ExtractOptions, Extracted, Format, extract};

/// Builds an archive from a JSON list of entries; see `hostile` for the fields.
const MAKE_ARCHIVE: &str = r#"
import io, json, sys, tarfile, zipfile
out, kind = sys.argv[1], sys.argv[2]
spec = json.load(sys.stdin)
def data_of(e):
    if "size" in e:
        return b"\0" * e["size"]
    return e.get("data", "").encode()
if kind == "zip":
    types = {"file": 0o100000, "dir": 0o040000, "symlink": 0o120000, "fifo": 0o010000, "char": 0o020000}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for e in spec:
            info = zipfile.ZipInfo(e["name"])
            kind_ = e.get("type", "file")
            info.external_attr = (types[kind_] | e.get("mode", 0o644)) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, e["linkname"].encode() if kind_ == "symlink" else data_of(e))
else:
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
    with tarfile.open(out, "w:gz" if kind == "tar.gz" else "w", format=tarfile.GNU_FORMAT) as t:
        for e in spec:
            info = tarfile.TarInfo(e["name"])
            info.type = types[e.get("type", "file")]
            info.mode = e.get("mode", 0o644)
            info.linkname = e.get("linkname", "")
            data = data_of(e) if info.type == tarfile.REGTYPE else b""
            info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data else None)
"#;

fn tool(name: &str) -> Option<PathBuf> {
    pitcrew_testkit::require_binary(name, &[])
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An archive made by Python from entries given as JSON.
fn hostile(dir: &Path, kind: &str, entries: &str) -> PathBuf {
    let out = dir.join(format!("hostile.{kind}"));
    let mut child = Command::new("python3")
        .args(["-c", MAKE_ARCHIVE])
        .arg(&out)
        .arg(kind)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(entries.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Everything under `root`, hidden entries included: kind, mode, content or target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    walk(root, root, &mut found);
    found
}

fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let metadata = fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o7777;
        let description = if metadata.file_type().is_symlink() {
            format!("symlink -> {}", fs::read_link(&path).unwrap().display())
        } else if metadata.is_dir() {
            walk(root, &path, found);
            format!("dir {mode:04o}")
        } else {
            format!(
                "file {mode:04o} {:?}",
                String::from_utf8_lossy(&fs::read(&path).unwrap())
            )
        };
        found.insert(relative, description);
    }
}

/// A workspace: `root/dest` holding a file and a directory from before, and `root/work` for
/// archives and sources. Snapshots of `root/dest`'s parent catch anything written beside it.
struct Workspace {
    _temp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    work: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("volume");
        let dest = root.join("dest");
        let work = temp.path().join("work");
        fs::create_dir_all(dest.join("app")).unwrap();
        fs::write(dest.join("keep.txt"), "before").unwrap();
        fs::write(dest.join("app/old.txt"), "from the last run").unwrap();
        fs::create_dir(&work).unwrap();
        Workspace {
            _temp: temp,
            root,
            dest,
            work,
        }
    }
}

fn unpack(
    archive: &Path,
    format: Format,
    dest: &Path,
    options: &ExtractOptions,
) -> Result<Extracted, ExtractError> {
    extract(archive, format, dest, options, &AtomicBool::new(false))
}

/// A source tree with what real archives hold: nested directories, an executable, a
/// symlink, an empty directory, names with spaces and non-ASCII letters.
fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("app/bin")).unwrap();
    fs::create_dir_all(src.join("app/empty")).unwrap();
    fs::create_dir_all(src.join("with space")).unwrap();
    fs::write(src.join("app/config.yaml"), "key: value\n").unwrap();
    fs::write(src.join("app/bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("app/bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("with space/ünïcödé ✓.txt"), "unicode\n").unwrap();
    fs::write(src.join("top.txt"), "top\n").unwrap();
    symlink("config.yaml", src.join("app/current")).unwrap();
    src
}

/// The archives the tools make from `src`, with the format each is.
fn tool_archives(work: &Path, src: &Path) -> Vec<(PathBuf, Format)> {
    let mut archives = Vec::new();
    if tool("tar").is_none() || tool("zstd").is_none() || tool("zip").is_none() {
        return archives;
    }
    for (name, flag, format) in [
        ("a.tar", None, Format::Tar),
        ("a.tar.gz", Some("--gzip"), Format::TarGz),
        ("a.tar.zst", Some("--zstd"), Format::TarZst),
    ] {
        let out = work.join(name);
        let mut command = Command::new("tar");
        command.arg("-C").arg(src).arg("-cf").arg(&out);
        command.args(flag);
        command.arg(".");
        run(&mut command);
        archives.push((out, format));
    }
    let out = work.join("a.zip");
    run(Command::new("zip")
        .current_dir(src)
        .args(["-q", "-r", "--symlinks"])
        .arg(&out)
        .arg("."));
    archives.push((out, Format::Zip));
    archives
}

#[test]
fn archives_made_by_the_tools_unpack_to_the_source_tree() {
    let space = Workspace::new();
    let src = source_tree(&space.work);
    let expected = snapshot(&src);
    let archives = tool_archives(&space.work, &src);
    if archives.is_empty() {
        return;
    }
    for (archive, format) in archives {
        assert_eq!(
            Format::sniff_file(&archive).unwrap(),
            Some(format),
            "{}",
            archive.display()
        );
        let dest = space.work.join(format!("out-{format}"));
        let extracted = unpack(&archive, format, &dest, &ExtractOptions::default())
            .unwrap_or_else(|err| panic!("{format}: {err}"));
        assert_eq!(snapshot(&dest), expected, "{format}");
        assert_eq!(extracted.files, 4, "{format}: {extracted:?}");
        assert_eq!(extracted.links, 1, "{format}: {extracted:?}");
        assert_eq!(extracted.directories, 4, "{format}: {extracted:?}");
        assert_eq!(extracted.bytes, 11 + 18 + 8 + 4, "{format}");
    }
}

#[test]
fn gnu_tar_hard_links_and_mtimes_are_kept() {
    if tool("tar").is_none() {
        return;
    }
    let space = Workspace::new();
    let src = space.work.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("data"), "shared").unwrap();
    fs::hard_link(src.join("data"), src.join("alias")).unwrap();
    run(Command::new("touch")
        .args(["-d", "2020-01-02T03:04:05Z"])
        .arg(src.join("data")));
    let archive = space.work.join("links.tar.gz");
    run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(&archive)
        .args(["data", "alias"]));
    let extracted = unpack(&archive, Format::TarGz, &space.dest, &ExtractOptions::default()).unwrap();
    assert_eq!((extracted.files, extracted.links), (1, 1));
    let data = fs::metadata(space.dest.join("data")).unwrap();
    assert_eq!(data.ino(), fs::metadata(space.dest.join("alias")).unwrap().ino());
    assert_eq!(data.nlink(), 2);
    assert_eq!(data.mtime(), 1_577_934_245);
}

#[test]
fn a_rerun_replaces_top_level_entries_and_leaves_the_rest() {
    let space = Workspace::new();
    let src = source_tree(&space.work);
    let Some((archive, format)) = tool_archives(&space.work, &src).into_iter().nth(1) else {
        return;
    };
    fs::write(space.dest.join("top.txt"), "old top").unwrap();
    unpack(&archive, format, &space.dest, &ExtractOptions::default()).unwrap();
    let first = snapshot(&space.dest);
    // The archive's `app` replaced the old one as a whole: no merge of the last run's files.
    assert!(!space.dest.join("app/old.txt").exists());
    assert_eq!(fs::read_to_string(space.dest.join("keep.txt")).unwrap(), "before");
    assert_eq!(fs::read_to_string(space.dest.join("top.txt")).unwrap(), "top\n");

    // Same archive again (an init container re-run): the same tree, nothing left over.
    fs::write(space.dest.join("app/added-by-the-app.txt"), "x").unwrap();
    unpack(&archive, format, &space.dest, &ExtractOptions::default()).unwrap();
    assert_eq!(snapshot(&space.dest), first);
}

#[test]
fn entries_of_another_kind_are_replaced_never_written_through() {
    let space = Workspace::new();
    let outside = space.work.join("outside");
    fs::create_dir(&outside).unwrap();
    // `app` is a symlink out, `file` is a directory, `dir` is a file: all replaced.
    fs::remove_dir_all(space.dest.join("app")).unwrap();
    symlink(&outside, space.dest.join("app")).unwrap();
    fs::create_dir_all(space.dest.join("file/sub")).unwrap();
    fs::write(space.dest.join("dir"), "a file").unwrap();
    let archive = hostile(
        &space.work,
        "tar",
        r#"[{"name": "app/config.yaml", "data": "new"}, {"name": "file", "data": "now a file"},
            {"name": "dir/", "type": "dir", "mode": 493}, {"name": "dir/x", "data": "x"}]"#,
    );
    unpack(&archive, Format::Tar, &space.dest, &ExtractOptions::default()).unwrap();
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "written through the old symlink"
    );
    assert!(fs::symlink_metadata(space.dest.join("app")).unwrap().is_dir());
    assert_eq!(
        fs::read_to_string(space.dest.join("app/config.yaml")).unwrap(),
        "new"
    );
    assert_eq!(fs::read_to_string(space.dest.join("file")).unwrap(), "now a file");
    assert_eq!(fs::read_to_string(space.dest.join("dir/x")).unwrap(), "x");
    assert_eq!(fs::read_to_string(space.dest.join("keep.txt")).unwrap(), "before");
    let names: Vec<_> = fs::read_dir(&space.dest)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|name| !name.starts_with('.')), "{names:?}");
}

#[test]
fn modes_drop_set_id_bits_and_group_other_write_unless_a_mode_is_given() {
    let space = Workspace::new();
    let entries = r#"[{"name": "d/", "type": "dir", "mode": 1023},
        {"name": "d/suid", "data": "x", "mode": 3583},
        {"name": "d/shared", "data": "x", "mode": 438},
        {"name": "d/private", "data": "x", "mode": 384}]"#;
    for kind in ["tar", "zip"] {
        let archive = hostile(&space.work, kind, entries);
        let format = kind.parse().unwrap();
        let dest = space.work.join(format!("modes-{kind}"));
        unpack(&archive, format, &dest, &ExtractOptions::default()).unwrap();
        let mode = |name: &str| fs::metadata(dest.join(name)).unwrap().permissions().mode() & 0o7777;
        // 01777 dir, 06777 file, 0666, 0600 in the archive.
        assert_eq!(
            (mode("d"), mode("d/suid"), mode("d/shared"), mode("d/private")),
            (0o755, 0o755, 0o644, 0o600),
            "{kind}"
        );

        let options = ExtractOptions {
            mode: Some(Mode(0o4640)),
            ..ExtractOptions::default()
        };
        unpack(&archive, format, &dest, &options).unwrap();
        assert_eq!(
            (mode("d"), mode("d/suid"), mode("d/shared"), mode("d/private")),
            (0o750, 0o640, 0o640, 0o640),
            "{kind}"
        );
        // Read-only everything, twice: the second run must replace read-only directories.
        let options = ExtractOptions {
            mode: Some(Mode(0o444)),
            ..ExtractOptions::default()
        };
        unpack(&archive, format, &dest, &options).unwrap();
        unpack(&archive, format, &dest, &options).unwrap();
        assert_eq!((mode("d"), mode("d/suid")), (0o555, 0o444), "{kind}");
    }
}

#[test]
fn owner_is_given_to_everything_written() {
    if !pitcrew_testkit::is_root() {
        eprintln!("skipped: changing owner needs root");
        return;
    }
    let space = Workspace::new();
    let archive = hostile(
        &space.work,
        "tar",
        r#"[{"name": "a/b/file", "data": "x"}, {"name": "a/link", "type": "symlink", "linkname": "b/file"}]"#,
    );
    let options = ExtractOptions {
        owner: Some(Owner {
            uid: Some(65532),
            gid: Some(65533),
        }),
        ..ExtractOptions::default()
    };
    unpack(&archive, Format::Tar, &space.dest, &options).unwrap();
    for name in ["a", "a/b", "a/b/file", "a/link"] {
        let metadata = fs::symlink_metadata(space.dest.join(name)).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (65532, 65533), "{name}");
    }
    // The destination itself is not the archive's to change.
    assert_eq!(fs::metadata(&space.dest).unwrap().uid(), 0);
}

#[test]
fn a_new_destination_is_created_and_removed_again_on_failure() {
    let space = Workspace::new();
    let good = hostile(&space.work, "tar", r#"[{"name": "x", "data": "x"}]"#);
    let dest = space.work.join("new/nested");
    unpack(&good, Format::Tar, &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(dest.join("x")).unwrap(), "x");

    let bad = hostile(
        &space.work,
        "tar",
        r#"[{"name": "x", "data": "x"}, {"name": "../evil", "data": "x"}]"#,
    );
    let dest = space.work.join("other");
    unpack(&bad, Format::Tar, &dest, &ExtractOptions::default()).unwrap_err();
    assert!(!dest.exists());
}

/// The bad-input table: each archive is refused, and the whole volume (the destination with
/// its pre-existing entries, and beside it) is exactly as before.
/// What is written where an absolute path must not be.
fn absolute_path() -> PathBuf {
    std::env::temp_dir().join(format!("pitcrew-extract-test-abs-{}", std::process::id()))
}

/// (what, archive kind, entries, expected words of the refusal)
fn hostile_cases() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let absolute_name = absolute_path().join("evil").display().to_string();
    vec![
        ("dot-dot", "tar", r#"[{"name": "good.txt", "data": "ok"}, {"name": "../evil", "data": "x"}]"#.into(), "`..`"),
        ("dot-dot deep", "tar", r#"[{"name": "a/b/../../../evil", "data": "x"}]"#.into(), "`..`"),
        (
            "absolute path",
            "tar",
            format!(r#"[{{"name": "good.txt", "data": "ok"}}, {{"name": "{absolute_name}", "data": "x"}}]"#),
            "absolute path",
        ),
        (
            "symlink out then write through it",
            "tar",
            r#"[{"name": "link", "type": "symlink", "linkname": "/etc"}, {"name": "link/passwd", "data": "root::0:0"}]"#.into(),
            "absolute",
        ),
        (
            "symlink climbing out",
            "tar",
            r#"[{"name": "good.txt", "data": "ok"}, {"name": "a/out", "type": "symlink", "linkname": "../../outside"}]"#.into(),
            "climbs out",
        ),
        (
            "write through an inside symlink",
            "tar",
            r#"[{"name": "sub/", "type": "dir"}, {"name": "link", "type": "symlink", "linkname": "sub"}, {"name": "link/x", "data": "x"}]"#.into(),
            "written through link",
        ),
        (
            "symlink chain out",
            "tar",
            r#"[{"name": "a/b", "type": "symlink", "linkname": ".."}, {"name": "c", "type": "symlink", "linkname": "a/b/.."}]"#.into(),
            "leads outside",
        ),
        (
            "hard link to /etc/passwd",
            "tar",
            r#"[{"name": "good.txt", "data": "ok"}, {"name": "passwd", "type": "hardlink", "linkname": "/etc/passwd"}]"#.into(),
            "absolute path",
        ),
        (
            "hard link climbing out",
            "tar",
            r#"[{"name": "x", "type": "hardlink", "linkname": "../outside"}]"#.into(),
            "`..`",
        ),
        (
            "hard link to an entry not written before",
            "tar",
            r#"[{"name": "x", "type": "hardlink", "linkname": "later"}, {"name": "later", "data": "x"}]"#.into(),
            "not a file written before",
        ),
        (
            "hard link to a symlink",
            "tar",
            r#"[{"name": "l", "type": "symlink", "linkname": "x"}, {"name": "h", "type": "hardlink", "linkname": "l"}]"#.into(),
            "a symlink",
        ),
        ("device node", "tar", r#"[{"name": "good.txt", "data": "ok"}, {"name": "sda", "type": "block"}]"#.into(), "device node"),
        ("char device", "tar", r#"[{"name": "null", "type": "char"}]"#.into(), "device node"),
        ("fifo", "tar", r#"[{"name": "pipe", "type": "fifo"}]"#.into(), "FIFO"),
        (
            "duplicate file",
            "tar",
            r#"[{"name": "x", "data": "first"}, {"name": "x", "data": "second"}]"#.into(),
            "duplicate",
        ),
        (
            "file then directory of the same name",
            "tar",
            r#"[{"name": "x", "data": "first"}, {"name": "x/", "type": "dir"}]"#.into(),
            "duplicate",
        ),
        ("reserved name", "tar", r#"[{"name": ".pitcrew-extract-1/x", "data": "x"}]"#.into(), "reserved"),
        ("tar.gz dot-dot", "tar.gz", r#"[{"name": "good.txt", "data": "ok"}, {"name": "../evil", "data": "x"}]"#.into(), "`..`"),
        ("zip backslash", "zip", r#"[{"name": "good.txt", "data": "ok"}, {"name": "..\\evil", "data": "x"}]"#.into(), "backslash"),
        ("zip dot-dot", "zip", r#"[{"name": "good.txt", "data": "ok"}, {"name": "../evil", "data": "x"}]"#.into(), "`..`"),
        ("zip absolute", "zip", r#"[{"name": "/tmp/evil", "data": "x"}]"#.into(), "absolute"),
        ("zip drive letter", "zip", r#"[{"name": "C:/evil", "data": "x"}]"#.into(), "drive letter"),
        (
            "zip symlink out",
            "zip",
            r#"[{"name": "good.txt", "data": "ok"}, {"name": "l", "type": "symlink", "linkname": "/etc"}]"#.into(),
            "absolute",
        ),
        ("zip fifo", "zip", r#"[{"name": "pipe", "type": "fifo"}]"#.into(), "FIFO"),
        ("zip device", "zip", r#"[{"name": "null", "type": "char"}]"#.into(), "device node"),
    ]
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let absolute = absolute_path();
    let cases = hostile_cases();
    for (what, kind, entries, expected) in &cases {
        let space = Workspace::new();
        let archive = hostile(&space.work, kind, entries);
        let before = snapshot(&space.root);
        let err = unpack(
            &archive,
            kind.parse().unwrap(),
            &space.dest,
            &ExtractOptions::default(),
        )
        .expect_err(what);
        assert!(matches!(err, ExtractError::Unsafe { .. }), "{what}: {err}");
        assert!(err.to_string().contains(expected), "{what}: {err}");
        assert_eq!(err.exit_code(), ExitCode::Failure, "{what}");
        assert_eq!(snapshot(&space.root), before, "{what}: the volume changed");
        assert!(!absolute.exists(), "{what}");
    }
}

#[test]
fn refusals_name_the_entry() {
    let space = Workspace::new();
    let archive = hostile(
        &space.work,
        "tar",
        r#"[{"name": "../../etc/cron.d/evil", "data": "x"}]"#,
    );
    let err = unpack(&archive, Format::Tar, &space.dest, &ExtractOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "refused archive entry \"../../etc/cron.d/evil\": `..` component: it would climb out of the destination"
    );
}

#[test]
fn limits_stop_decompression_bombs() {
    let space = Workspace::new();
    let small = ExtractOptions {
        max_bytes: 1 << 20,
        max_entries: 3,
        ..ExtractOptions::default()
    };
    let cases = [
        // One entry declaring more than the limit: refused before it is written.
        (
            "tar.gz",
            r#"[{"name": "good.txt", "data": "ok"}, {"name": "bomb", "size": 2097152}]"#,
            "1 MiB (limit max_bytes)",
        ),
        (
            "zip",
            r#"[{"name": "good.txt", "data": "ok"}, {"name": "bomb", "size": 20971520}]"#,
            "1 MiB (limit max_bytes)",
        ),
        // Entries each under the limit, together over it.
        (
            "tar",
            r#"[{"name": "a", "size": 600000}, {"name": "b", "size": 600000}]"#,
            "limit max_bytes",
        ),
        (
            "tar",
            r#"[{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]"#,
            "more than 3 entries (limit max_entries)",
        ),
        (
            "zip",
            r#"[{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]"#,
            "limit of 3 (max_entries)",
        ),
    ];
    for (kind, entries, expected) in cases {
        let archive = hostile(&space.work, kind, entries);
        let before = snapshot(&space.root);
        let err = unpack(&archive, kind.parse().unwrap(), &space.dest, &small).unwrap_err();
        assert!(err.to_string().contains(expected), "{kind}: {err}");
        assert_eq!(snapshot(&space.root), before, "{kind}");
    }
    // At the limit is fine.
    let archive = hostile(&space.work, "tar", r#"[{"name": "a", "size": 1048576}]"#);
    assert_eq!(
        unpack(&archive, Format::Tar, &space.dest, &small).unwrap().bytes,
        1 << 20
    );
}

#[test]
fn corrupt_and_truncated_archives_are_corrupt_and_leave_nothing() {
    let space = Workspace::new();
    let src = source_tree(&space.work);
    // Incompressible content, so that cutting the compressed file cuts into a file entry.
    let random: Vec<u8> = (0..400_000_u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    fs::write(src.join("app/blob.bin"), random).unwrap();
    let archives = tool_archives(&space.work, &src);
    if archives.is_empty() {
        return;
    }
    let html = space.work.join("page.html");
    fs::write(&html, "<html><body>404 Not Found</body></html>\n".repeat(20)).unwrap();
    let mut cases = vec![
        (html.clone(), Format::Tar),
        (html.clone(), Format::TarGz),
        (html.clone(), Format::TarZst),
        (html, Format::Zip),
    ];
    for (archive, format) in archives {
        let bytes = fs::read(&archive).unwrap();
        let cut = space.work.join(format!("cut-{format}"));
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        cases.push((cut, format));
        if format != Format::Tar {
            // One flipped byte in the middle of the compressed data.
            let mut flipped = bytes.clone();
            let middle = flipped.len() / 2;
            flipped[middle] ^= 0x55;
            let path = space.work.join(format!("flipped-{format}"));
            fs::write(&path, flipped).unwrap();
            cases.push((path, format));
        }
    }
    let empty = space.work.join("empty");
    fs::write(&empty, "").unwrap();
    cases.extend([
        (empty.clone(), Format::TarGz),
        (empty.clone(), Format::TarZst),
        (empty, Format::Zip),
    ]);
    for (archive, format) in cases {
        let before = snapshot(&space.root);
        let err = unpack(&archive, format, &space.dest, &ExtractOptions::default())
            .expect_err(&archive.display().to_string());
        assert!(
            matches!(err, ExtractError::Corrupt { .. }),
            "{} as {format}: {err}",
            archive.display()
        );
        assert!(
            err.to_string()
                .starts_with(&format!("corrupt {format} archive: ")),
            "{err}"
        );
        assert_eq!(snapshot(&space.root), before, "{}", archive.display());
    }
}

#[test]
fn a_stop_request_leaves_nothing() {
    let space = Workspace::new();
    let archive = hostile(&space.work, "tar", r#"[{"name": "a", "data": "x"}]"#);
    let before = snapshot(&space.root);
    let err = extract(
        &archive,
        Format::Tar,
        &space.dest,
        &ExtractOptions::default(),
        &AtomicBool::new(true),
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::Stopped), "{err}");
    assert_eq!(snapshot(&space.root), before);
}

#[test]
fn unreadable_archives_and_unwritable_destinations_are_file_errors() {
    let space = Workspace::new();
    let err = unpack(
        &space.work.join("missing.tar"),
        Format::Tar,
        &space.dest,
        &ExtractOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
    assert!(err.to_string().contains("missing.tar"), "{err}");

    let archive = hostile(&space.work, "tar", r#"[{"name": "a", "data": "x"}]"#);
    let err = unpack(
        &archive,
        Format::Tar,
        &space.dest.join("keep.txt"),
        &ExtractOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Io, "{err}");
    assert!(
        err.to_string().contains("keep.txt") && err.to_string().contains("not a directory"),
        "{err}"
    );

    // /proc takes no new directories, whoever we are.
    let err = unpack(
        &archive,
        Format::Tar,
        Path::new("/proc/pitcrew-test"),
        &ExtractOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Io, "{err}");
}

#[test]
fn leftovers_of_a_killed_run_are_removed() {
    let space = Workspace::new();
    let leftover = space.dest.join(".pitcrew-extract-1-2-3/tree/app");
    fs::create_dir_all(&leftover).unwrap();
    fs::write(leftover.join("half"), "half").unwrap();
    fs::set_permissions(&leftover, fs::Permissions::from_mode(0o555)).unwrap();
    let archive = hostile(&space.work, "tar", r#"[{"name": "a", "data": "x"}]"#);
    unpack(&archive, Format::Tar, &space.dest, &ExtractOptions::default()).unwrap();
    assert!(!space.dest.join(".pitcrew-extract-1-2-3").exists());
}

#[test]
fn pax_and_gnu_long_names_and_empty_archives() {
    let space = Workspace::new();
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(200));
    let archive = space.work.join("pax.tar");
    let script = format!(
        "import tarfile, io\nwith tarfile.open({:?}, 'w', format=tarfile.PAX_FORMAT) as t:\n    i = tarfile.TarInfo({long:?}); i.size = 2; t.addfile(i, io.BytesIO(b'ok'))\n    i = tarfile.TarInfo('ü/long-link'); i.type = tarfile.SYMTYPE; i.linkname = '../' + {long:?}; t.addfile(i)\n",
        archive.display().to_string()
    );
    run(Command::new("python3").args(["-c", &script]));
    unpack(&archive, Format::Tar, &space.dest, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(space.dest.join(&long)).unwrap(), "ok");
    assert_eq!(fs::read_to_string(space.dest.join("ü/long-link")).unwrap(), "ok");

    let empty = hostile(&space.work, "tar", "[]");
    assert_eq!(
        unpack(&empty, Format::Tar, &space.dest, &ExtractOptions::default()).unwrap(),
        Extracted::default()
    );
    if tool("zip").is_some() {
        let empty_zip = space.work.join("empty.zip");
        run(Command::new("python3").args([
            "-c",
            &format!(
                "import zipfile; zipfile.ZipFile({:?}, 'w').close()",
                empty_zip.display().to_string()
            ),
        ]));
        assert_eq!(Format::sniff_file(&empty_zip).unwrap(), Some(Format::Zip));
        assert_eq!(
            unpack(&empty_zip, Format::Zip, &space.dest, &ExtractOptions::default()).unwrap(),
            Extracted::default()
        );
    }
    assert_eq!(fs::read_to_string(space.dest.join("keep.txt")).unwrap(), "before");
}

/// The image runs as 65532: `--owner` there fails before anything is written, saying what the
/// pod spec needs; and a re-run over read-only directories (`--mode 0444` makes them 0555)
/// still replaces them, though a non-root user cannot write into them. Run as root, the test
/// runs itself again as 65532 (`setpriv`) for the part that needs a non-root user.
#[test]
fn as_the_image_user_owner_fails_clearly_and_read_only_trees_are_replaced() {
    if let Some(work) = std::env::var_os("PITCREW_EXTRACT_TEST_AS_USER") {
        as_the_image_user(Path::new(&work));
        return;
    }
    if !pitcrew_testkit::is_root() {
        eprintln!("skipped: needs root to switch to the image's user");
        return;
    }
    let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &["/usr/bin/setpriv"]) else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let work = temp.path().join("work");
    fs::create_dir(&work).unwrap();
    hostile(
        &work,
        "tar",
        r#"[{"name": "d/sub/file", "data": "x"}, {"name": "top", "data": "y"}]"#,
    );
    let mut command = Command::new("chown");
    run(command.args(["-R", "65532:65532"]).arg(&work));
    let output = Command::new(setpriv)
        .args(["--reuid=65532", "--regid=65532", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "as_the_image_user_owner_fails_clearly_and_read_only_trees_are_replaced",
            "--nocapture",
        ])
        .env("PITCREW_EXTRACT_TEST_AS_USER", &work)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

fn as_the_image_user(work: &Path) {
    let archive = work.join("hostile.tar");
    let dest = work.join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "before").unwrap();
    let before = snapshot(work);
    let options = ExtractOptions {
        owner: Some(Owner {
            uid: Some(1000),
            gid: Some(1000),
        }),
        ..ExtractOptions::default()
    };
    let err = unpack(&archive, Format::Tar, &dest, &options).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Io, "{err}");
    assert!(
        err.to_string().contains("operation not permitted")
            && err.to_string().contains("needs root or the CAP_CHOWN capability"),
        "{err}"
    );
    assert_eq!(snapshot(work), before);

    let read_only = ExtractOptions {
        mode: Some(Mode(0o444)),
        ..ExtractOptions::default()
    };
    unpack(&archive, Format::Tar, &dest, &read_only).unwrap();
    let first = snapshot(&dest);
    assert_eq!(first["d/sub"], "dir 0555");
    unpack(&archive, Format::Tar, &dest, &read_only).unwrap();
    assert_eq!(snapshot(&dest), first);
    // A failing run over the read-only tree leaves it as it was.
    let bad = hostile(
        work,
        "tar",
        r#"[{"name": "d/x", "data": "x"}, {"name": "../evil", "data": "x"}]"#,
    );
    unpack(&bad, Format::Tar, &dest, &read_only).unwrap_err();
    assert_eq!(snapshot(&dest), first);
}
