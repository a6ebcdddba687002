//! The engine against real files: start modes, each rotation style, identity (inode reuse,
//! identical first lines), partial and over-long lines, checkpoints, stop and finish,
//! unreadable files, globs that match nothing yet.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use common::{Run, append, capture_logs, config, cuts, opened, summary, text, wait_for_log};
use pitcrew_follow::{
    Checkpoint, CheckpointEntry, Cut, Event, FileKey, Fingerprint, FollowError, Follower, StartAt,
    TRUNCATION_MARKER,
};

fn key_of(path: &Path, head: &[u8]) -> FileKey {
    let metadata = std::fs::metadata(path).unwrap();
    FileKey {
        dev: metadata.dev(),
        ino: metadata.ino(),
        fingerprint: Fingerprint::of(head),
    }
}

#[test]
fn chunks_are_exact_file_bytes_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "first\nsecond ünïcödé\n".as_bytes());
    append(&log, b"invalid \xff\xfe utf-8 kept\n");
    let run = Run::start(config(&[&log]));
    append(&log, b"third\n");
    let content = std::fs::read(&log).unwrap();
    run.wait_for("all bytes", |events| {
        events
            .iter()
            .filter_map(|event| match event {
                Event::Lines(chunk) => Some(chunk.end),
                _ => None,
            })
            .max()
            == Some(content.len() as u64)
    });
    for event in run.snapshot() {
        if let Event::Lines(chunk) = event {
            assert_eq!(chunk.cut, None);
            let range = usize::try_from(chunk.start).unwrap()..usize::try_from(chunk.end).unwrap();
            assert_eq!(
                &chunk.data[..],
                &content[range],
                "chunk bytes are the file's bytes"
            );
        }
    }
    assert_eq!(opened(&run.snapshot()), vec![(log.clone(), 0, "start of file")]);
}

#[test]
fn start_modes_apply_to_files_present_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"1\n2\n3\n4\n5\n");
    for (start, expected, reason) in [
        (StartAt::Beginning, "1\n2\n3\n4\n5\n", "start of file"),
        (StartAt::End, "", "end of file"),
        (StartAt::LastLines(2), "4\n5\n", "last lines"),
        (StartAt::FromLine(4), "4\n5\n", "from line"),
        (StartAt::FromLine(1), "1\n2\n3\n4\n5\n", "start of file"),
    ] {
        let mut settings = config(&[&log]);
        settings.start = start;
        settings.once = true;
        let mut run = Run::start(settings);
        run.wait_ended();
        let events = run.snapshot();
        assert_eq!(text(&events), expected, "{start:?}");
        assert_eq!(opened(&events)[0].2, reason, "{start:?}");
    }
}

#[test]
fn files_appearing_later_start_at_zero_whatever_the_start_mode() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, b"old line\n");
    let mut settings = config(&[&dir.path().join("*.log")]);
    settings.start = StartAt::End;
    let run = Run::start(settings);
    run.wait_for("old.log opened", |events| !opened(events).is_empty());
    let new = dir.path().join("new.log");
    append(&new, b"new 1\nnew 2\n");
    run.wait_for_text("new 1\nnew 2\n");
    let events = run.snapshot();
    assert!(
        opened(&events).contains(&(new, 0, "new file")),
        "{:#?}",
        summary(&events)
    );
}

#[test]
fn once_emits_an_unterminated_last_line_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"done\nno newline");
    let mut settings = config(&[&log]);
    settings.once = true;
    let mut run = Run::start(settings);
    run.wait_ended();
    let events = run.snapshot();
    assert_eq!(text(&events), "done\nno newline\n");
    assert_eq!(cuts(&events), vec![Cut::Unterminated]);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"a1\n");
    let run = Run::start(config(&[&log]));
    run.wait_for_text("a1\n");
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    // The writer has not reopened yet: it still appends to the renamed file.
    std::io::Write::write_all(&mut writer, b"a2 late\n").unwrap();
    append(&log, b"b1\n");
    run.wait_for("both files read and the old one released", |events| {
        let all = text(events);
        all.contains("a2 late\n")
            && all.contains("b1\n")
            && events.iter().any(|e| matches!(e, Event::Released { .. }))
    });
    let events = run.snapshot();
    assert_eq!(
        text(&events).len(),
        "a1\na2 late\nb1\n".len(),
        "{:#?}",
        summary(&events)
    );
    let released: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            Event::Released { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![11]);
    assert_eq!(opened(&events)[1], (log.clone(), 0, "new file"));
}

#[test]
fn a_renamed_file_still_matching_the_glob_is_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"one\ntwo\n");
    let run = Run::start(config(&[&dir.path().join("app.log*")]));
    run.wait_for_text("one\ntwo\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&dir.path().join("app.log.1"), b"three\n");
    append(&log, b"fresh\n");
    run.wait_for("renamed file followed on, new one read", |events| {
        let all = text(events);
        all.contains("three\n") && all.contains("fresh\n")
    });
    let events = run.snapshot();
    assert_eq!(
        text(&events).matches("one\n").count(),
        1,
        "no re-read from 0: {:#?}",
        summary(&events)
    );
    let ids: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            Event::Lines(chunk) if chunk.data.starts_with(b"three") => {
                Some((chunk.file.id, chunk.file.path.clone()))
            }
            _ => None,
        })
        .collect();
    let first_id = match &events[0] {
        Event::Opened { file, .. } => file.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(ids, vec![(first_id, dir.path().join("app.log.1"))]);
    assert!(!events.iter().any(|event| matches!(event, Event::Released { .. })));
}

#[test]
fn copytruncate_restarts_at_zero_with_a_truncated_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"before 1\nbefore 2\n");
    let run = Run::start(config(&[&log]));
    run.wait_for_text("before 1\nbefore 2\n");
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"after\n");
    run.wait_for_text("before 1\nbefore 2\nafter\n");
    let events = run.snapshot();
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Truncated { at: 18, .. })),
        "{:#?}",
        summary(&events)
    );
}

#[test]
fn copytruncate_with_the_copy_followed_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut expected = String::new();
    let line = |index: usize| format!("line {index:05} {}\n", "x".repeat(index % 50));
    for index in 0..40 {
        expected.push_str(&line(index));
    }
    append(&log, expected.as_bytes());
    let run = Run::start(config(&[&dir.path().join("app.log*")]));
    run.wait_for_text(&expected);
    for round in 0..5 {
        // Lines written just before the copy may or may not have been read from the original.
        let mut more = String::new();
        for index in 0..30 {
            more.push_str(&line(1000 * (round + 1) + index));
        }
        append(&log, more.as_bytes());
        expected.push_str(&more);
        std::fs::copy(&log, dir.path().join(format!("app.log.{round}"))).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        let after = line(9000 + round);
        append(&log, after.as_bytes());
        expected.push_str(&after);
        run.wait_for(&format!("round {round}"), |events| {
            text(events).len() >= expected.len()
        });
    }
    let events = run.snapshot();
    let mut got: Vec<&str> = Vec::new();
    let all = text(&events);
    got.extend(all.lines());
    got.sort_unstable();
    let mut want: Vec<&str> = expected.lines().collect();
    want.sort_unstable();
    assert_eq!(got, want, "{:#?}", summary(&events));
    assert!(
        opened(&events)
            .iter()
            .any(|(_, _, reason)| *reason == "copy of a truncated file"),
        "{:#?}",
        summary(&events)
    );
}

#[test]
fn delete_and_recreate_reads_the_deleted_file_through_its_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"old 1\n");
    let run = Run::start(config(&[&log]));
    run.wait_for_text("old 1\n");
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::io::Write::write_all(&mut writer, b"old 2 after delete\n").unwrap();
    append(&log, b"new 1\n");
    run.wait_for("both", |events| {
        let all = text(events);
        all.contains("old 2 after delete\n") && all.contains("new 1\n")
    });
    assert_eq!(
        text(&run.snapshot()).len(),
        "old 1\nold 2 after delete\nnew 1\n".len()
    );
}

#[test]
fn a_symlink_whose_target_changes_is_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&first, b"from a\n");
    append(&second, b"from b\n");
    let link = dir.path().join("current.log");
    std::os::unix::fs::symlink(&first, &link).unwrap();
    let run = Run::start(config(&[&link]));
    run.wait_for_text("from a\n");
    // An atomic swap, the way Kubernetes updates ..data.
    let temporary = dir.path().join("current.tmp");
    std::os::unix::fs::symlink(&second, &temporary).unwrap();
    std::fs::rename(&temporary, &link).unwrap();
    append(&first, b"late a\n");
    run.wait_for("b read, a released", |events| {
        text(events).contains("from b\n") && events.iter().any(|e| matches!(e, Event::Released { .. }))
    });
    let events = run.snapshot();
    assert!(text(&events).contains("late a\n"), "{:#?}", summary(&events));
    assert!(
        opened(&events).iter().all(|(path, _, _)| path == &link),
        "reported under the link's path"
    );
}

#[test]
fn inode_reuse_is_not_taken_for_the_checkpointed_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"brand new file on a reused inode\n");
    // The checkpoint names this very device and inode, but with the first bytes of the file
    // that had the inode before: another file.
    let mut key = key_of(&log, b"the old file's first line\n");
    key.fingerprint = Fingerprint::of(b"the old file's first line\n");
    let mut settings = config(&[&log]);
    settings.resume = Some(Checkpoint {
        entries: vec![CheckpointEntry {
            key,
            path: log.clone(),
            offset: 10,
        }],
    });
    let run = Run::start(settings);
    run.wait_for_text("brand new file on a reused inode\n");
    assert_eq!(opened(&run.snapshot()), vec![(log, 0, "new file")]);
}

#[test]
fn identical_first_lines_in_different_files_are_different_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, b"timestamp,level,message\n1,info,a\n");
    append(&b, b"timestamp,level,message\n1,info,b\n");
    let resume = Checkpoint {
        entries: vec![CheckpointEntry {
            key: key_of(&a, b"timestamp,level,message\n1,info,a\n"),
            path: a.clone(),
            offset: 24,
        }],
    };
    let mut settings = config(&[&dir.path().join("*.log")]);
    settings.resume = Some(resume);
    let run = Run::start(settings);
    run.wait_for("both files", |events| {
        opened(events).len() == 2 && text(events).contains("1,info,b")
    });
    let events = run.snapshot();
    let mut starts = opened(&events);
    starts.sort();
    assert_eq!(starts, vec![(a, 24, "checkpoint"), (b, 0, "new file")]);
    assert_eq!(
        text(&events).matches("timestamp").count(),
        1,
        "{:#?}",
        summary(&events)
    );
}

#[test]
fn a_partial_line_is_held_then_emitted_alone_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut settings = config(&[&log]);
    settings.partial_line_timeout = Duration::from_millis(300);
    append(&log, b"whole\nhalf");
    let run = Run::start(settings);
    run.wait_for_text("whole\nhalf\n");
    append(&log, b" rest\n");
    run.wait_for_text("whole\nhalf\n rest\n");
    let events = run.snapshot();
    assert_eq!(cuts(&events), vec![Cut::Unterminated]);
    let ends: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            Event::Lines(chunk) => Some((chunk.start, chunk.end)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![(0, 6), (6, 10), (10, 16)]);
}

#[test]
fn a_partial_line_completed_in_time_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"start of a ");
    let run = Run::start(config(&[&log]));
    run.wait_for("opened", |events| !opened(events).is_empty());
    std::thread::sleep(Duration::from_millis(150));
    append(&log, b"line\n");
    run.wait_for_text("start of a line\n");
    assert!(cuts(&run.snapshot()).is_empty());
}

#[test]
fn long_lines_are_cut_with_the_marker_and_the_rest_skipped() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("long lines.log");
    let mut settings = config(&[&log]);
    settings.max_line_bytes = 100;
    settings.read_buffer_bytes = 4096;
    // One long line inside a read, one spanning many reads.
    let mut content = b"short\n".to_vec();
    content.extend(std::iter::repeat_n(b'a', 150));
    content.extend_from_slice(b"\nok\n");
    content.extend(std::iter::repeat_n(b'b', 50_000));
    content.extend_from_slice(b"\nafter\n");
    append(&log, &content);
    let run = Run::start(settings);
    run.wait_for("after", |events| text(events).ends_with("after\n"));
    let events = run.snapshot();
    let marker = String::from_utf8(TRUNCATION_MARKER.to_vec()).unwrap();
    let expected = format!(
        "short\n{}{marker}\nok\n{}{marker}\nafter\n",
        "a".repeat(100),
        "b".repeat(100)
    );
    assert_eq!(text(&events), expected);
    assert_eq!(
        cuts(&events),
        vec![Cut::Truncated { dropped: 50 }, Cut::Truncated { dropped: 49_900 }]
    );
    let last_end = events.iter().rev().find_map(|event| match event {
        Event::Lines(chunk) => Some(chunk.end),
        _ => None,
    });
    assert_eq!(last_end, Some(content.len() as u64));
    wait_for_log(&format!(
        "{}: the line at offset 6 is longer than 100 bytes",
        log.display()
    ));
}

#[test]
fn checkpoint_resume_reads_only_what_was_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"one\ntwo\n");
    let run = Run::start(config(&[&log]));
    run.wait_for_text("one\ntwo\n");
    let events = run.snapshot();
    let Some(Event::Lines(chunk)) = events.iter().find(|event| matches!(event, Event::Lines(_))) else {
        panic!("no lines")
    };
    let checkpoint = Checkpoint {
        entries: vec![CheckpointEntry {
            key: chunk.file.key,
            path: log.clone(),
            offset: chunk.end,
        }],
    };
    drop(run);
    let path = dir.path().join("checkpoint");
    checkpoint.save(&path).unwrap();
    append(&log, b"three\n");

    let mut settings = config(&[&log]);
    settings.resume = Checkpoint::load(&path).unwrap();
    settings.start = StartAt::End; // ignored for files the checkpoint knows
    let run = Run::start(settings);
    run.wait_for_text("three\n");
    assert_eq!(opened(&run.snapshot()), vec![(log.clone(), 8, "checkpoint")]);
    drop(run);

    // Truncated while nobody followed it, its first bytes unchanged (rewritten by the same
    // program): from 0, with a Truncated event.
    let mut content = String::new();
    for index in 0..300 {
        std::fmt::Write::write_fmt(&mut content, format_args!("line {index:04}\n")).unwrap();
    }
    std::fs::write(&log, &content).unwrap();
    let resume = Checkpoint {
        entries: vec![CheckpointEntry {
            key: key_of(&log, content.as_bytes()),
            path: log.clone(),
            offset: content.len() as u64,
        }],
    };
    std::fs::write(&log, &content[..2000]).unwrap();
    let mut settings = config(&[&log]);
    settings.resume = Some(resume);
    let run = Run::start(settings);
    run.wait_for_text(&content[..2000]);
    let events = run.snapshot();
    assert_eq!(opened(&events), vec![(log, 0, "checkpoint")]);
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Truncated { at: 3000, .. }))
    );
}

#[test]
fn stop_is_prompt_even_when_the_consumer_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    append(&log, "line of text\n".repeat(200_000).as_bytes());
    let mut settings = config(&[&log]);
    settings.channel_capacity = 1;
    settings.read_buffer_bytes = 4096;
    let (mut follower, control) = Follower::start(settings).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Read one event, then let the channel fill: the engine blocks on it (backpressure).
        assert!(matches!(follower.next().await, Some(Event::Opened { .. })));
        let deadline = std::time::Instant::now() + common::DEADLINE;
        loop {
            let status = control.status();
            if status.len() == 1 && status[0].read_offset > 0 {
                assert!(status[0].read_offset < status[0].size, "reading paused, not done");
                assert!(
                    status[0].read_offset <= 4 * 4096,
                    "backpressure bounds read-ahead: {}",
                    status[0].read_offset
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no status: {status:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stopped = std::time::Instant::now();
        control.stop();
        let mut after = 0;
        while tokio::time::timeout(common::DEADLINE, follower.next())
            .await
            .expect("stream ends")
            .is_some()
        {
            after += 1;
        }
        assert!(after <= 2, "only what was queued comes after stop: {after}");
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "stop took {:?}",
            stopped.elapsed()
        );
    });
}

#[test]
fn finish_reads_everything_including_unterminated_lines_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"a\n");
    let mut run = Run::start(config(&[&dir.path().join("*.log")]));
    run.wait_for_text("a\n");
    append(&log, b"b\nunfinished");
    append(&dir.path().join("late.log"), b"late\n");
    run.control.finish();
    run.wait_ended();
    let all = text(&run.snapshot());
    assert!(all.starts_with("a\n"));
    for line in ["b\n", "unfinished\n", "late\n"] {
        assert!(all.contains(line), "{all:?} lacks {line:?}");
    }
}

#[test]
fn follow_descriptors_only_with_follow_names_off() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"a\n");
    let mut settings = config(&[&log]);
    settings.follow_names = false;
    let run = Run::start(settings);
    run.wait_for_text("a\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, b"new file, not followed\n");
    append(&dir.path().join("app.log.1"), b"b\n");
    run.wait_for_text("a\nb\n");
    // Give a rescan the chance to (wrongly) pick up the new file before checking it did not.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(text(&run.snapshot()), "a\nb\n");
    assert_eq!(run.control.status().len(), 1);
}

#[test]
fn a_glob_matching_nothing_waits_then_picks_up_the_file() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let logs_dir = dir.path().join("not yet");
    let pattern = logs_dir.join("*.log");
    let mut settings = config(&[&pattern]);
    // Only notify can find it this fast: the rescan backstop is far away.
    settings.rescan_interval = Duration::from_secs(3600);
    std::fs::create_dir(&logs_dir).unwrap();
    let run = Run::start(settings);
    wait_for_log(&format!("no file matches {} yet; waiting", pattern.display()));
    append(&logs_dir.join("app.log"), b"hello\n");
    run.wait_for_text("hello\n");
    assert_eq!(
        common::logs()
            .matches(&format!("no file matches {}", pattern.display()))
            .count(),
        1
    );
}

#[test]
fn a_directory_appearing_later_is_found_by_the_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let logs_dir = dir.path().join("later");
    let run = Run::start(config(&[&logs_dir.join("*.log")]));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::create_dir(&logs_dir).unwrap();
    append(&logs_dir.join("x.log"), b"found\n");
    run.wait_for_text("found\n");
}

#[test]
fn an_invalid_glob_is_a_pattern_error() {
    match Follower::start(config(&[Path::new("/var/log/[oops.log")])) {
        Err(FollowError::Pattern { pattern, reason }) => {
            assert_eq!(pattern, "/var/log/[oops.log");
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected a pattern error, got {other}"),
        Ok(_) => panic!("expected a pattern error"),
    }
}

/// Root reads every file whatever its mode, so as root the test re-runs itself without the
/// capabilities that allow it (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH).
#[test]
fn an_unreadable_file_is_reported_and_the_others_followed() {
    const CHILD: &str = "PITCREW_FOLLOW_TEST_UNPRIVILEGED";
    if pitcrew_testkit::is_root() && std::env::var_os(CHILD).is_none() {
        let Some(setpriv) = pitcrew_testkit::require_binary("setpriv", &[]) else {
            return;
        };
        let status = std::process::Command::new(setpriv)
            .args(["--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_unreadable_file_is_reported_and_the_others_followed",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the unprivileged run failed: {status}");
        return;
    }
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let (secret, open) = (dir.path().join("secret.log"), dir.path().join("open.log"));
    append(&secret, b"hidden\n");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    append(&open, b"visible\n");
    let run = Run::start(config(&[&dir.path().join("*.log")]));
    run.wait_for_text("visible\n");
    wait_for_log(&format!("cannot read {}: permission denied", secret.display()));
    // Made readable: picked up at a rescan.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    run.wait_for("the secret file", |events| text(events).contains("hidden\n"));
    assert_eq!(
        common::logs()
            .matches(&format!("cannot read {}", secret.display()))
            .count(),
        1,
        "warned once"
    );
}
