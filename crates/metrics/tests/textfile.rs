//! The textfile source's writer on real directories: good, bad, merged, clashing and rewritten
//! files, summaries, the files it must skip, and both output formats (the Prometheus text one
//! checked by Debian's `promtool check metrics` when it is installed).

use std::path::Path;

use pitcrew_core::admin::{Exposition, Format};
use pitcrew_metrics::source::textfile::{TextfileExposition, TextfileSource};

fn exposition(dir: &Path) -> TextfileExposition {
    TextfileSource::new(dir.to_owned()).exposition()
}

fn scrape(exposition: &TextfileExposition, format: Format) -> String {
    let mut out = String::new();
    exposition.write(format, &mut out);
    out
}

fn write(dir: &Path, name: &str, text: &str) {
    // Atomically, as a well-behaved writer does.
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

/// `promtool check metrics` on the text; skipped (loudly) when promtool is missing.
fn promtool_accepts(text: &str) {
    if let Some((parsed, said)) = pitcrew_testkit::prometheus::promtool_check(text) {
        assert!(parsed, "promtool refused:\n{said}\n---\n{text}");
    }
}

const JOB: &str = "# HELP backup_last_success_timestamp_seconds When the last backup succeeded.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1.7e9
# HELP backup_files_total Files backed up.
# TYPE backup_files_total counter
backup_files_total{volume=\"data\"} 12
backup_files_total{volume=\"logs\"} 3
";

#[test]
fn a_good_file_is_served_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "backup.prom", JOB);
    let exposition = exposition(dir.path());
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(text.contains("# TYPE backup_files_total counter\n"), "{text}");
    assert!(
        text.contains("backup_files_total{volume=\"data\"} 12\n"),
        "{text}"
    );
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 0\n"),
        "{text}"
    );
    let file = dir.path().join("backup.prom");
    assert!(
        text.contains(&format!(
            "pitcrew_metrics_textfile_mtime_seconds{{file=\"{}\"}} 1",
            file.display()
        )),
        "{text}"
    );
    promtool_accepts(&text);

    let openmetrics = scrape(&exposition, Format::OpenMetrics);
    assert!(
        openmetrics.contains("# TYPE backup_files counter\n"),
        "{openmetrics}"
    );
    assert!(
        openmetrics.contains("# HELP backup_files Files backed up.\n"),
        "{openmetrics}"
    );
    assert!(
        openmetrics.contains("backup_files_total{volume=\"logs\"} 3\n"),
        "{openmetrics}"
    );
    assert!(!openmetrics.contains("# EOF"), "the admin server ends the scrape");
}

#[test]
fn a_bad_file_is_left_out_whole_and_the_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a_good.prom", JOB);
    // The first line is fine, the second is not: nothing of the file may show.
    write(dir.path(), "b_bad.prom", "half_written 1\nbroken{ 2\n");
    write(dir.path(), "c_no_newline.prom", "cut_short 1");
    std::fs::write(dir.path().join("d_binary.prom"), [0xff, 0xfe, b'\n']).unwrap();
    let exposition = exposition(dir.path());
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(
        text.contains("backup_files_total{volume=\"data\"} 12\n"),
        "{text}"
    );
    assert!(!text.contains("half_written"), "{text}");
    assert!(!text.contains("cut_short"), "{text}");
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("b_bad.prom"),
        "no mtime for a file left out: {text}"
    );
    promtool_accepts(&text);

    // Fixed: served at the next scrape.
    write(dir.path(), "b_bad.prom", "half_written 1\n");
    std::fs::remove_file(dir.path().join("c_no_newline.prom")).unwrap();
    std::fs::remove_file(dir.path().join("d_binary.prom")).unwrap();
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(text.contains("half_written 1\n"), "{text}");
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 0\n"),
        "{text}"
    );
}

#[test]
fn the_same_family_in_two_files_is_merged_when_it_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let part = |volume: &str, files: u32| {
        format!(
            "# HELP backup_files_total Files backed up.\n# TYPE backup_files_total counter\nbackup_files_total{{volume=\"{volume}\"}} {files}\n"
        )
    };
    write(dir.path(), "one.prom", &part("data", 1));
    write(dir.path(), "two.prom", &part("logs", 2));
    let exposition = exposition(dir.path());
    let text = scrape(&exposition, Format::PrometheusText);
    assert_eq!(
        text.matches("# TYPE backup_files_total counter").count(),
        1,
        "{text}"
    );
    assert!(text.contains("backup_files_total{volume=\"data\"} 1\n"), "{text}");
    assert!(text.contains("backup_files_total{volume=\"logs\"} 2\n"), "{text}");
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 0\n"),
        "{text}"
    );
    promtool_accepts(&text);
    let openmetrics = scrape(&exposition, Format::OpenMetrics);
    assert_eq!(
        openmetrics.matches("# TYPE backup_files counter").count(),
        1,
        "{openmetrics}"
    );
}

#[test]
fn clashing_files_and_names_the_sidecar_serves_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.prom", "# TYPE jobs gauge\njobs{q=\"a\"} 1\n");
    // Same name, another type: the later file goes.
    write(
        dir.path(),
        "b.prom",
        "# TYPE jobs counter\njobs{q=\"b\"} 1\nother_b 1\n",
    );
    // Same series as a.prom.
    write(
        dir.path(),
        "c.prom",
        "# TYPE jobs gauge\njobs{q=\"a\"} 2\nother_c 1\n",
    );
    // x_total as a counter occupies `x` in OpenMetrics, which d.prom's gauge has.
    write(dir.path(), "d.prom", "# TYPE x gauge\nx 1\n");
    write(
        dir.path(),
        "e.prom",
        "# TYPE x_total counter\nx_total 1\nother_e 1\n",
    );
    // The sidecar's own namespace, and a name the registry's part of the scrape has.
    write(dir.path(), "f.prom", "pitcrew_metrics_fake 1\n");
    write(
        dir.path(),
        "g.prom",
        "# TYPE app_requests counter\napp_requests 5\n",
    );
    let exposition = exposition(dir.path());
    let mut out = String::from(
        "# HELP app_requests From a log rule.\n# TYPE app_requests counter\napp_requests_total 3\n",
    );
    exposition.write(Format::PrometheusText, &mut out);
    assert!(out.contains("jobs{q=\"a\"} 1\n"), "{out}");
    assert!(out.contains("x 1\n"), "{out}");
    for left_out in [
        "other_b",
        "other_c",
        "other_e",
        "pitcrew_metrics_fake",
        "app_requests 5",
    ] {
        assert!(!out.contains(left_out), "{left_out}: {out}");
    }
    assert!(out.contains("pitcrew_metrics_textfile_scrape_error 1\n"), "{out}");
}

#[test]
fn summaries_and_histograms_pass_through_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rpc.prom",
        "# HELP rpc_seconds RPC latency, \"quoted\" and a \\\\ backslash.
# TYPE rpc_seconds summary
rpc_seconds{quantile=\"0.5\",m=\"a\"} 0.2
rpc_seconds{quantile=\"0.5\",m=\"b\"} 0.3
rpc_seconds{quantile=\"0.9\",m=\"a\"} 0.7
rpc_seconds_sum{m=\"a\"} 9
rpc_seconds_sum{m=\"b\"} 1
rpc_seconds_count{m=\"a\"} 20
rpc_seconds_count{m=\"b\"} 2
# HELP h_seconds A histogram.
# TYPE h_seconds histogram
h_seconds_bucket{le=\"1\"} 1
h_seconds_bucket{le=\"+Inf\"} 2
h_seconds_sum 3
h_seconds_count 2
# HELP legacy Untyped.
legacy{path=\"a\\\"b\\\\c\\nd\"} 4
",
    );
    let exposition = exposition(dir.path());
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(text.contains("# TYPE rpc_seconds summary\n"), "{text}");
    assert!(text.contains("# TYPE legacy untyped\n"), "{text}");
    assert!(text.contains("legacy{path=\"a\\\"b\\\\c\\nd\"} 4\n"), "{text}");
    promtool_accepts(&text);

    let openmetrics = scrape(&exposition, Format::OpenMetrics);
    assert!(openmetrics.contains("# TYPE legacy unknown\n"), "{openmetrics}");
    assert!(
        openmetrics.contains("# HELP rpc_seconds RPC latency, \\\"quoted\\\" and a \\\\ backslash.\n"),
        "{openmetrics}"
    );
    // Grouped per label set: every m="a" sample, then every m="b" one.
    let a_done = openmetrics.find("rpc_seconds_count{m=\"a\"}").unwrap();
    let b_first = openmetrics.find("rpc_seconds{quantile=\"0.5\",m=\"b\"}").unwrap();
    assert!(a_done < b_first, "{openmetrics}");
    assert!(
        openmetrics.contains("h_seconds_bucket{le=\"+Inf\"} 2\n"),
        "{openmetrics}"
    );
}

#[test]
fn a_counter_without_total_keeps_its_name_as_unknown_in_openmetrics() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.prom",
        "# TYPE restarts counter\nrestarts 3\n# TYPE neg_total counter\nneg_total -1\n",
    );
    let exposition = exposition(dir.path());
    let openmetrics = scrape(&exposition, Format::OpenMetrics);
    assert!(
        openmetrics.contains("# TYPE restarts unknown\nrestarts 3\n"),
        "{openmetrics}"
    );
    assert!(
        openmetrics.contains("# TYPE neg_total unknown\nneg_total -1\n"),
        "{openmetrics}"
    );
}

#[test]
fn a_file_rewritten_between_scrapes_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let exposition = exposition(dir.path());
    write(dir.path(), "job.prom", "progress 1\n");
    assert!(scrape(&exposition, Format::PrometheusText).contains("progress 1\n"));
    // Renamed over (a new inode) ...
    write(dir.path(), "job.prom", "progress 2\n");
    assert!(scrape(&exposition, Format::PrometheusText).contains("progress 2\n"));
    // ... and rewritten in place, same size, at once (same mtime second).
    std::fs::write(dir.path().join("job.prom"), "progress 3\n").unwrap();
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(text.contains("progress 3\n"), "{text}");
    std::fs::remove_file(dir.path().join("job.prom")).unwrap();
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(!text.contains("progress"), "{text}");
}

#[test]
fn only_prom_regular_files_are_read_and_big_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kept.prom", "# HELP kept Kept.\nkept 1\n");
    std::fs::write(dir.path().join(".hidden.prom"), "hidden 1\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "txt 1\n").unwrap();
    std::fs::create_dir(dir.path().join("sub.prom")).unwrap();
    std::fs::write(dir.path().join("sub.prom/inner.prom"), "inner 1\n").unwrap();
    // ConfigMap volumes are symlinks into ..data: followed. A dangling one is skipped.
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    std::fs::write(
        dir.path().join("..data/linked.prom"),
        "# HELP linked Linked.\nlinked 1\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..data/linked.prom", dir.path().join("linked.prom")).unwrap();
    std::os::unix::fs::symlink("..data/gone.prom", dir.path().join("gone.prom")).unwrap();
    let big = "big 1\n".repeat(800_000);
    std::fs::write(dir.path().join("big.prom"), big).unwrap();
    let exposition = exposition(dir.path());
    let text = scrape(&exposition, Format::PrometheusText);
    assert!(text.contains("kept 1\n"), "{text}");
    assert!(text.contains("linked 1\n"), "{text}");
    for absent in ["hidden", "txt", "inner", "big 1"] {
        assert!(!text.contains(absent), "{absent}: {text}");
    }
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 1\n"),
        "the big file: {text}"
    );
    promtool_accepts(&text);
}

#[test]
fn a_missing_directory_is_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let exposition = exposition(&dir.path().join("not-yet"));
    let text = scrape(&exposition, Format::OpenMetrics);
    assert!(
        text.contains("pitcrew_metrics_textfile_scrape_error 0\n"),
        "{text}"
    );
    std::fs::create_dir(dir.path().join("not-yet")).unwrap();
    write(&dir.path().join("not-yet"), "late.prom", "late 1\n");
    assert!(scrape(&exposition, Format::OpenMetrics).contains("late 1\n"));
}
