//! The bad-input table: each case exits with its code from the shared table, says what is
//! wrong with which value or path, and leaves no partial file, no temporary file, and every
//! file that was there as it was.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use support::{assert_code, command, leftovers, listing, path_str};

/// A volume with something worth keeping, and a source tree.
fn volume(root: &Path) {
    fs::create_dir_all(root.join("vol/conf")).unwrap();
    fs::write(root.join("vol/conf/app.yaml"), "precious: true\n").unwrap();
    fs::write(root.join("vol/plain-file"), "not a directory\n").unwrap();
    fs::create_dir_all(root.join("src dir/sub")).unwrap();
    fs::write(root.join("src dir/a.yaml"), "a\n").unwrap();
    fs::write(root.join("src dir/sub/b.yaml"), "b\n").unwrap();
    fs::create_dir_all(root.join("outside")).unwrap();
    fs::write(root.join("outside/shadow"), "s3cr3t&/#?@:x y\n").unwrap();
}

struct Case {
    name: &'static str,
    /// Extra set-up on top of [`volume`].
    setup: fn(&Path),
    /// The arguments; `{r}` stands for the test's root directory.
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    /// What the message must say.
    says: &'static [&'static str],
}

fn nothing(_: &Path) {}

const CASES: &[Case] = &[
    Case {
        name: "copy source missing",
        setup: nothing,
        args: &["--copy", "{r}/no such template:{r}/vol/out"],
        env: &[],
        code: 66,
        says: &[
            "cannot read {r}/no such template: no such file or directory",
            "step 1 of 1",
        ],
    },
    Case {
        name: "owner given as a name",
        setup: nothing,
        args: &["--owner", "app", "--mkdir", "{r}/vol/new"],
        env: &[],
        code: 64,
        says: &["invalid owner \"app\"", "numeric UID:GID"],
    },
    Case {
        name: "chown owner not numeric",
        setup: nothing,
        args: &["--chown", "abc", "{r}/vol"],
        env: &[],
        code: 64,
        says: &["--chown: invalid owner \"abc\""],
    },
    Case {
        name: "mode not octal",
        setup: nothing,
        args: &["--mode", "999", "--copy", "{r}/src dir:{r}/vol/out"],
        env: &[],
        code: 64,
        says: &["invalid mode \"999\"", "octal"],
    },
    Case {
        name: "chmod mode not octal",
        setup: nothing,
        args: &["--chmod", "999", "{r}/vol/conf"],
        env: &[],
        code: 64,
        says: &["--chmod: invalid mode \"999\""],
    },
    Case {
        name: "env mode not octal",
        setup: nothing,
        args: &["--mkdir", "{r}/vol/new"],
        env: &[("PITCREW_PREPARE_MODE", "rw-r--r--")],
        code: 64,
        says: &["invalid mode \"rw-r--r--\""],
    },
    Case {
        name: "symlink out of the copied tree",
        setup: |root| symlink(root.join("outside/shadow"), root.join("src dir/sub/escape")).unwrap(),
        args: &["--copy", "{r}/src dir:{r}/vol/conf"],
        env: &[],
        code: 78,
        says: &[
            "escape",
            "outside of",
            "step 1 of 1 (--copy \"{r}/src dir:{r}/vol/conf\")",
        ],
    },
    Case {
        name: "relative symlink out of the copied tree through ..",
        setup: |root| symlink("../../outside", root.join("src dir/sub/up")).unwrap(),
        args: &["--copy", "{r}/src dir:{r}/vol/out"],
        env: &[],
        code: 78,
        says: &["up", "outside of"],
    },
    Case {
        name: "destination under /proc",
        setup: nothing,
        args: &["--copy", "{r}/src dir/a.yaml:/proc/pitcrew-prepare-test.yaml"],
        env: &[],
        code: 74,
        says: &["cannot write /proc/pitcrew-prepare-test.yaml"],
    },
    Case {
        name: "a regular file used as a directory",
        setup: nothing,
        args: &["--copy", "{r}/src dir:{r}/vol/plain-file/conf"],
        env: &[],
        code: 74,
        says: &["{r}/vol/plain-file", "a file is in the way"],
    },
    Case {
        name: "a file of the tree where the destination has a directory",
        setup: |root| fs::create_dir_all(root.join("vol/conf/a.yaml/inner")).unwrap(),
        args: &["--copy", "{r}/src dir:{r}/vol/conf"],
        env: &[],
        code: 74,
        says: &["{r}/vol/conf/a.yaml", "a directory is in the way of a file"],
    },
    Case {
        name: "destination inside the source",
        setup: nothing,
        args: &["--copy", "{r}/src dir:{r}/src dir/sub/copy"],
        env: &[],
        code: 78,
        says: &["inside the source tree"],
    },
    Case {
        name: "a FIFO as source",
        setup: |root| {
            let status = std::process::Command::new("mkfifo")
                .arg(root.join("pipe"))
                .status()
                .unwrap();
            assert!(status.success());
        },
        args: &["--copy", "{r}/pipe:{r}/vol/pipe"],
        env: &[],
        code: 78,
        says: &["FIFO"],
    },
    Case {
        name: "a pair with two bare colons",
        setup: nothing,
        args: &["--copy", "{r}/src dir:{r}/vol:x"],
        env: &[],
        code: 64,
        says: &["more than one ':'", "'\\:'"],
    },
    Case {
        name: "no steps",
        setup: nothing,
        args: &[],
        env: &[],
        code: 64,
        says: &["nothing to do"],
    },
    Case {
        name: "sysctl key climbing out of /proc/sys",
        setup: nothing,
        args: &["--sysctl", "../../etc/hostname=x"],
        env: &[],
        code: 64,
        says: &["invalid --sysctl key \"../../etc/hostname\""],
    },
    Case {
        name: "unknown sysctl key",
        setup: nothing,
        args: &["--sysctl", "vm.pitcrew_no_such_key=1"],
        env: &[],
        code: 78,
        says: &[
            "unknown sysctl key vm.pitcrew_no_such_key",
            "/proc/sys/vm/pitcrew_no_such_key",
        ],
    },
    Case {
        name: "symlink where a file is",
        setup: nothing,
        args: &["--symlink", "/elsewhere:{r}/vol/conf/app.yaml"],
        env: &[],
        code: 74,
        says: &["a file is there (left as it is"],
    },
    Case {
        name: "a later step fails after earlier ones succeeded",
        setup: nothing,
        args: &[
            "--mkdir",
            "{r}/made",
            "--copy",
            "{r}/src dir:{r}/vol/plain-file/x",
            "--mkdir",
            "{r}/never",
        ],
        env: &[],
        code: 74,
        says: &[
            "step 2 of 3 (--copy",
            "step 3 did not run",
            "step 1/3 --mkdir {r}/made: created 1 directory",
        ],
    },
];

#[test]
fn every_bad_input_fails_clearly_and_leaves_the_volume_as_it_was() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        volume(&root);
        (case.setup)(&root);
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("termination-log");
        let at = |text: &str| text.replace("{r}", path_str(&root));
        let args: Vec<String> = case.args.iter().map(|arg| at(arg)).collect();
        let before = listing(&root.join("vol"));

        let mut command = command(&[]);
        command.args(&args).env("PITCREW_TERMINATION_LOG", &log);
        for (name, value) in case.env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let name = case.name;
        assert_code(&output, case.code);
        let text = support::stderr(&output);
        for says in case.says {
            assert!(text.contains(&at(says)), "{name}: wanted {says:?} in:\n{text}");
        }
        let reason = fs::read_to_string(&log).unwrap_or_default();
        assert!(!reason.is_empty(), "{name}: no termination log");
        // File contents never reach a message.
        assert!(
            !text.contains("s3cr3t") && !reason.contains("s3cr3t"),
            "{name}: {text}"
        );
        assert!(!text.contains("precious"), "{name}: {text}");

        assert_eq!(listing(&root.join("vol")), before, "{name}: the volume changed");
        assert!(
            !root.join("never").exists(),
            "{name}: a step after the failed one ran"
        );
        assert!(leftovers(&root).is_empty(), "{name}: temporary files left");
        assert!(!Path::new("/proc/pitcrew-prepare-test.yaml").exists());
    }
}
