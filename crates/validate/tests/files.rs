//! Data files as a careless or hostile user hands them over: huge numbers, duplicate keys,
//! nesting deep enough to overflow a recursive parser, a directory, binary garbage, non-UTF-8,
//! a byte order mark, a path with spaces, empty files, multi-document YAML, a remote $ref,
//! and the JSON log records one per problem.

mod common;

use common::{s, validate, validate_in, write};

#[test]
fn every_file_is_checked_and_every_problem_listed() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir.path().join("good.toml"), "[server]\nport = 8080\n");
    let yaml = write(&dir.path().join("a.yml"), "a: [1\n");
    let json = write(&dir.path().join("b.json"), "{\"a\": 1,}");
    let toml = write(&dir.path().join("c.toml"), "a = 1\na = 2\nb = [1,\n");
    let run = validate(&[s(&good), s(&yaml), s(&json), s(&toml)], &[]);
    run.expect(1).shows(&[
        "a.yml:",
        "b.json:1:9: trailing comma",
        "c.toml:2:1: duplicate key",
    ]);
    let problems = run.problems();
    assert!(problems.len() >= 4, "{problems:?}");
    assert!(!run.stderr.contains("good.toml"), "{}", run.stderr);
    run.shows(&[&format!("4 files checked, {} problems", problems.len())]);
    // All good: exit 0 and a summary.
    let run = validate(&[s(&good)], &[]);
    run.expect(0).shows(&["1 file checked, no problems"]);
    assert!(run.termination.is_empty(), "{}", run.termination);
}

#[test]
fn json_log_records_carry_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let schema = write(
        &dir.path().join("s.json"),
        r#"{"properties": {"n": {"type": "integer"}}}"#,
    );
    let file = write(&dir.path().join("app.yaml"), "x: 1\nn: \"7\"\nx: 2\n");
    let run = validate(
        &[
            "--log-format",
            "json",
            "--schema",
            s(&schema),
            s(&file),
            "--env",
            "GONE",
        ],
        &[],
    );
    run.expect(1);
    let records = run.records();
    assert_eq!(records.len(), 4, "{records:#?}");
    let duplicate = &records[0];
    assert_eq!(duplicate["check"], "duplicate-key");
    assert_eq!(duplicate["file"], s(&file));
    assert_eq!(duplicate["line"], 3);
    assert_eq!(duplicate["column"], 1);
    assert_eq!(duplicate["pointer"], "/x");
    let violation = &records[1];
    assert_eq!(violation["check"], "schema");
    assert_eq!(
        (violation["line"].as_u64(), violation["column"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(violation["pointer"], "/n");
    assert!(
        violation["problem"].as_str().unwrap().contains("not of type"),
        "{violation}"
    );
    assert_eq!(records[2]["check"], "env");
    assert!(records[2].get("file").is_none(), "{}", records[2]);
    let summary = &records[3];
    assert_eq!(summary["problems"], 3);
    assert_eq!(summary["files"], 1);
}

#[test]
fn huge_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let too_big = write(&dir.path().join("big.json"), "{\"n\": 1e400}");
    validate(&[s(&too_big)], &[])
        .expect(1)
        .shows(&["big.json:1:", "number out of range"]);
    // Beyond 64 bits but a valid double: accepted (as most JSON parsers do).
    let wide = write(
        &dir.path().join("wide.json"),
        "{\"n\": 123456789012345678901234567890}",
    );
    validate(&[s(&wide)], &[]).expect(0);
    let yaml = write(
        &dir.path().join("big.yaml"),
        "n: 1e400\nm: 123456789012345678901234567890\n",
    );
    validate(&[s(&yaml)], &[]).expect(0);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 200_000;
    let json = write(
        &dir.path().join("deep.json"),
        "[".repeat(depth) + &"]".repeat(depth),
    );
    let yaml = write(
        &dir.path().join("deep.yaml"),
        "[".repeat(depth) + &"]".repeat(depth),
    );
    let mut block = String::new();
    for level in 0..5000 {
        block.push_str(&" ".repeat(level));
        block.push_str("k:\n");
    }
    let block = write(&dir.path().join("block.yaml"), block);
    let toml = write(
        &dir.path().join("deep.toml"),
        format!("a = {}", "[".repeat(depth)),
    );
    let schema = write(&dir.path().join("s.json"), "{}");
    let run = validate(
        &["--schema", s(&schema), s(&json), s(&yaml), s(&block), s(&toml)],
        &[],
    );
    run.expect(1).shows(&[
        "deep.json:1:",
        "nested deeper than 128",
        "deep.yaml:",
        "block.yaml:",
        "deep.toml:",
    ]);
    // The TOML one also has its unclosed array, once (not once per level).
    assert_eq!(run.problems().len(), 5, "{}", run.stderr);
}

#[test]
fn duplicate_keys_are_problems_in_json_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(
        &dir.path().join("d.json"),
        "{\"db\": {\"host\": \"a\",\n \"host\": \"b\"}}",
    );
    let yaml = write(&dir.path().join("d.yaml"), "db:\n  host: a\n  host: b\n");
    validate(&[s(&json), s(&yaml)], &[]).expect(1).shows(&[
        "d.json:2:2: /db/host: key \"host\" is given twice",
        "d.yaml:3:3: /db/host: key \"host\" is given twice",
    ]);
    // A key overriding one from a `<<` merge is not a duplicate.
    let merge = write(
        &dir.path().join("m.yaml"),
        "base: &b {host: a}\ndb:\n  <<: *b\n  host: c\n",
    );
    validate(&[s(&merge)], &[]).expect(0);
}

#[test]
fn a_directory_binary_garbage_and_non_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("conf.json");
    std::fs::create_dir(&folder).unwrap();
    let garbage = write(
        &dir.path().join("garbage.yaml"),
        [0x7f, b'E', b'L', b'F', 0x02, 0x01, 0x00, 0xff, 0xfe],
    );
    let latin1 = write(&dir.path().join("latin1.toml"), b"name = \"caf\xe9\"\n");
    let nul = write(&dir.path().join("nul.json"), b"{\"a\": \"\x00\"}");
    let run = validate(&[s(&folder), s(&garbage), s(&latin1), s(&nul)], &[]);
    run.expect(1).shows(&[
        "conf.json: is a directory",
        "garbage.yaml:1:",
        "latin1.toml:1:12: is not valid UTF-8 (byte 0xe9",
        "nul.json:1:",
    ]);
    // Only the directory: every problem is an unusable input.
    validate(&[s(&folder)], &[]).expect(66);
}

#[test]
fn byte_order_marks() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(&dir.path().join("bom.json"), "\u{feff}{\"a\": 1}");
    let yaml = write(&dir.path().join("bom.yaml"), "\u{feff}a: 1\n");
    let toml = write(&dir.path().join("bom.toml"), "\u{feff}a = 1\n");
    validate(&[s(&json)], &[])
        .expect(1)
        .shows(&["bom.json:1:1: starts with a UTF-8 byte order mark"]);
    validate(&[s(&yaml), s(&toml)], &[]).expect(0);
}

#[test]
fn paths_with_spaces_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("my config");
    let file = write(&sub.join("app settings.yaml"), "a: [\n");
    // A $ref is a URI reference: its space is written %20.
    write(
        &sub.join("my schema.yaml"),
        "type: object\nproperties:\n  a: {$ref: 'common%20defs.json#/$defs/a'}\n",
    );
    write(
        &sub.join("common defs.json"),
        r#"{"$defs": {"a": {"type": "integer"}}}"#,
    );
    let ok = write(&sub.join("ok file.json"), r#"{"a": "x"}"#);
    validate(&[s(&file)], &[])
        .expect(1)
        .shows(&["my config/app settings.yaml:"]);
    let run = validate_in(Some(&sub), &["--schema", "my schema.yaml", "ok file.json"], &[]);
    run.expect(1)
        .shows(&["ok file.json:1:7: /a: value is not of type \"integer\""]);
    let _ = ok;
}

#[test]
fn empty_files_fail_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir.path().join("empty.json"), "");
    let comments = write(&dir.path().join("comments.yaml"), "# all commented out\n\n");
    let blank = write(&dir.path().join("blank.toml"), "\n  \n");
    let schema = write(&dir.path().join("s.json"), r#"{"type": "object"}"#);
    let run = validate(&["--schema", s(&schema), s(&empty), s(&comments), s(&blank)], &[]);
    run.expect(1)
        .shows(&["empty.json: is empty", "comments.yaml: is empty", "--allow-empty"]);
    assert_eq!(run.problems().len(), 3, "{}", run.stderr);
    let run = validate(
        &[
            "--allow-empty",
            "--schema",
            s(&schema),
            s(&empty),
            s(&comments),
            s(&blank),
        ],
        &[],
    );
    run.expect(0)
        .shows(&["WARN", "3 files checked, no problems, 3 warnings"]);
    // The env twin of the switch takes the usual spellings.
    validate(&[s(&empty)], &[("PITCREW_VALIDATE_ALLOW_EMPTY", "yes")]).expect(0);
}

#[test]
fn every_document_of_a_yaml_stream_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let schema = write(&dir.path().join("s.yaml"), "type: object\nrequired: [kind]\n");
    let stream = write(
        &dir.path().join("all.yaml"),
        "kind: A\n---\nname: b\n---\nkind: C\n",
    );
    validate(&["--schema", s(&schema), s(&stream)], &[])
        .expect(1)
        .shows(&["all.yaml:3:1: document 2: (root): \"kind\" is a required property"]);
}

#[test]
fn schemas_are_never_fetched_and_bad_ones_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir.path().join("app.json"), "{}");
    // A port on loopback that nothing listens on: a fetch would show as a connection error;
    // the tool must refuse before trying.
    let remote = write(
        &dir.path().join("remote.json"),
        r#"{"$ref": "http://127.0.0.1:9/schema.json"}"#,
    );
    let run = validate(&["--schema", s(&remote), s(&file)], &[]);
    run.expect(78)
        .shows(&["remote.json", "never fetches anything over the network"]);
    assert!(
        !run.stderr.to_lowercase().contains("connection refused"),
        "{}",
        run.stderr
    );
    let unknown = write(
        &dir.path().join("unknown.json"),
        r#"{"$schema": "https://example.test/custom"}"#,
    );
    validate(&["--schema", s(&unknown), s(&file)], &[])
        .expect(78)
        .shows(&["is not a draft this tool knows"]);
    let not_json = write(&dir.path().join("broken.json"), "{\"type\": ");
    validate(&["--schema", s(&not_json), s(&file)], &[])
        .expect(78)
        .shows(&["broken.json:1:"]);
    validate(&["--schema", "/nonexistent/s.json", s(&file)], &[]).expect(66);
}

#[test]
fn drafts_7_and_2020_12() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir.path().join("app.json"), r#"{"list": [1, "x"]}"#);
    // Draft 7: `items` as an array checks by position; `additionalItems` the rest.
    let draft7 = write(
        &dir.path().join("7.json"),
        r#"{"$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"list": {"items": [{"type": "integer"}], "additionalItems": {"type": "integer"}}}}"#,
    );
    validate(&["--schema", s(&draft7), s(&file)], &[])
        .expect(1)
        .shows(&["/list/1: "]);
    // 2020-12 (also the default): `prefixItems` and `items`.
    let draft2020 = write(
        &dir.path().join("2020.json"),
        r#"{"properties": {"list": {"prefixItems": [{"type": "integer"}], "items": {"type": "integer"}}}}"#,
    );
    validate(&["--schema", s(&draft2020), s(&file)], &[])
        .expect(1)
        .shows(&["app.json:1:14: /list/1: "]);
}

#[test]
fn format_flag_and_env_twins_for_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(&dir.path().join("app.conf"), "a: [\n");
    validate(&["--format", "yaml", s(&conf)], &[])
        .expect(1)
        .shows(&["app.conf:"]);
    let good = write(&dir.path().join("good.json"), "{}");
    let files = format!("{}\n{}", good.display(), conf.display());
    validate(
        &[],
        &[
            ("PITCREW_VALIDATE_FILES", &files),
            ("PITCREW_VALIDATE_FORMAT", "json"),
        ],
    )
    .expect(1)
    .shows(&["2 files checked, 1 problem"]);
    // Empty env twins count as unset.
    validate(
        &[s(&good)],
        &[("PITCREW_VALIDATE_FORMAT", ""), ("PITCREW_VALIDATE_SCHEMA", "")],
    )
    .expect(0);
}

#[test]
fn toml_documents_are_validated_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let schema = write(
        &dir.path().join("s.json"),
        r#"{"properties": {"server": {"properties": {"port": {"type": "integer", "maximum": 65535}}}}}"#,
    );
    let file = write(
        &dir.path().join("app.toml"),
        "title = \"x\"\n\n[server]\nport = 70000\n",
    );
    validate(&["--schema", s(&schema), s(&file)], &[])
        .expect(1)
        .shows(&["app.toml:4:8: /server/port: "]);
}
