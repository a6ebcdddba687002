//! The workspace version is the images' version (issue 11): every image reference
//! `pitcrew/NAME:TAG` that users copy — in examples/ (YAML and Markdown) and in every tool's
//! `--help`, read through the multicall, and pitcrew's own — carries the version in
//! Cargo.toml, and NAME is an image the project ships (a tool, or `pitcrew` itself).
//!
//! The rules, per place:
//! - examples/ and `--help`: a tag must be the version (`:dev` too is a mismatch: dev images
//!   exist only where someone built them); an `image:` value without a tag is a mismatch (it
//!   would pull `:latest`); a name in prose without a tag (`pitcrew/tail streams it`) is fine.
//! - README.md: only tags are checked, and `:dev` passes. It documents the locally built
//!   `:dev` images (`cargo xtask images`, the end-to-end tests) and the per-platform ones
//!   (`:0.1.0-arm64`, `:dev-amd64`), and names images of tools not yet written
//!   (`pitcrew/reload`), so its names are not checked; a pinned version there must still be
//!   the current one.

use std::path::{Path, PathBuf};
use std::process::Command;

use pitcrew::{TOOLS, VERSION};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew");

/// One `pitcrew/NAME[:TAG]` found in a text.
#[derive(Debug, PartialEq)]
struct Reference {
    /// 1-based.
    line: usize,
    name: String,
    tag: Option<String>,
    /// The value of an `image:` key (a registry prefix allowed), not a mention in prose.
    image_value: bool,
}

/// How strictly a place is checked (see the module docs).
#[derive(Debug, Clone, Copy)]
enum Rules {
    /// examples/ and --help.
    Strict,
    /// README.md.
    VersionTagsOnly,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Every `pitcrew/NAME[:TAG]` in `text`, skipping longer words that end in `pitcrew`
/// (`mypitcrew/x`) and paths (`crates/pitcrew/src`). A trailing `.` of a tag is the
/// sentence's.
fn references(text: &str) -> Vec<Reference> {
    const PREFIX: &str = "pitcrew/";
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(offset) = line[from..].find(PREFIX) {
            let start = from + offset;
            from = start + PREFIX.len();
            let before = &line[..start];
            if before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                continue;
            }
            let rest = &line[from..];
            let name: String = rest.chars().take_while(|&c| is_name_char(c)).collect();
            if name.is_empty() {
                continue;
            }
            let tag = rest[name.len()..]
                .strip_prefix(':')
                .map(|after| {
                    let tag: String = after.chars().take_while(|&c| is_tag_char(c)).collect();
                    tag.trim_end_matches('.').to_owned()
                })
                .filter(|tag| !tag.is_empty());
            // `image: pitcrew/x`, `image: "registry.example.com/pitcrew/x"`.
            let key = before
                .trim_end_matches(|c: char| !c.is_whitespace() && c != '"' && c != '\'')
                .trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
            let image_value = key.ends_with("image:");
            // After a `/` outside an `image:` value it is a path (`crates/pitcrew/src`), not
            // a registry's copy of an image.
            if before.ends_with('/') && !image_value {
                continue;
            }
            found.push(Reference {
                line: index + 1,
                name,
                tag,
                image_value,
            });
        }
    }
    found
}

/// What is wrong with each reference in `text` from `place`, one line each.
fn mismatches(place: &str, text: &str, rules: Rules) -> Vec<String> {
    let mut images: Vec<&str> = TOOLS.iter().map(|tool| tool.name).collect();
    images.push("pitcrew");
    let mut problems = Vec::new();
    for reference in references(text) {
        let Reference {
            line,
            name,
            tag,
            image_value,
        } = reference;
        let shown = match &tag {
            Some(tag) => format!("pitcrew/{name}:{tag}"),
            None => format!("pitcrew/{name}"),
        };
        let expected = format!("pitcrew/{name}:{VERSION}");
        let at = format!("{place}:{line}: {shown}");
        match rules {
            Rules::Strict => {
                if !images.contains(&name.as_str()) {
                    problems.push(format!(
                        "{at}: no such image (pitcrew ships pitcrew/{})",
                        images.join(", pitcrew/")
                    ));
                } else if tag.as_deref().is_some_and(|tag| tag != VERSION) {
                    problems.push(format!("{at}: expected {expected}"));
                } else if tag.is_none() && image_value {
                    problems.push(format!("{at}: no tag (pulls :latest); expected {expected}"));
                }
            }
            Rules::VersionTagsOnly => {
                // Per-platform images keep the platform after the tag (`:0.1.0-arm64`).
                let release = |tag: &str| {
                    let tag = tag
                        .strip_suffix("-amd64")
                        .or_else(|| tag.strip_suffix("-arm64"))
                        .unwrap_or(tag);
                    tag == VERSION || tag == "dev"
                };
                if tag.as_deref().is_some_and(|tag| !release(tag)) {
                    problems.push(format!(
                        "{at}: expected {expected} (or :dev for a local build; -amd64 or -arm64 after either)"
                    ));
                }
            }
        }
    }
    problems
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Files under `dir` ending in one of `extensions`, recursively, sorted.
fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| extensions.contains(&ext))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_crate_version_is_the_workspace_version_in_cargo_toml() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let section = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("a [workspace.package] section");
    let version = section
        .lines()
        .find_map(|line| line.trim().strip_prefix("version = "))
        .expect("a version in [workspace.package]")
        .trim_matches('"');
    assert_eq!(version, VERSION);
}

#[test]
fn image_tags_in_the_examples_are_the_workspace_version() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in files_under(&root.join("examples"), &["yaml", "yml", "md"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        let place = file.strip_prefix(&root).unwrap().display().to_string();
        checked += references(&text).len();
        problems.extend(mismatches(&place, &text, Rules::Strict));
    }
    // The scan itself must have worked: the examples use every tool's image.
    assert!(
        checked >= TOOLS.len() * 2,
        "only {checked} references found in examples/"
    );
    assert!(
        problems.is_empty(),
        "image references that disagree with Cargo.toml ({VERSION}):\n{}",
        problems.join("\n")
    );
}

#[test]
fn image_tags_in_the_readme_are_the_workspace_version_or_dev() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(!references(&text).is_empty());
    let problems = mismatches("README.md", &text, Rules::VersionTagsOnly);
    assert!(
        problems.is_empty(),
        "image references that disagree with Cargo.toml ({VERSION}):\n{}",
        problems.join("\n")
    );
}

#[test]
fn image_tags_in_every_help_are_the_workspace_version() {
    let mut problems = Vec::new();
    let mut helps: Vec<(String, Vec<&str>)> = TOOLS
        .iter()
        .map(|tool| (format!("pitcrew {} --help", tool.name), vec![tool.name, "--help"]))
        .collect();
    helps.push(("pitcrew --help".to_owned(), vec!["--help"]));
    for (place, args) in helps {
        let output = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{place}");
        let help = String::from_utf8(output.stdout).unwrap();
        let found = references(&help);
        // Each help shows its image in a pod spec: a help without one is a finding too.
        if !found.iter().any(|reference| reference.image_value) {
            problems.push(format!("{place}: no `image: pitcrew/…` in a pod-spec example"));
        }
        problems.extend(mismatches(&place, &help, Rules::Strict));
    }
    assert!(
        problems.is_empty(),
        "image references that disagree with Cargo.toml ({VERSION}):\n{}",
        problems.join("\n")
    );
}

/// The checker finds what it is for: a wrong tag, `:dev`, a typo in the name, an untagged
/// `image:` value (with and without a registry), and lets prose and good references pass.
#[test]
fn the_checker_reports_each_kind_of_mismatch() {
    let text = format!(
        "      image: pitcrew/wait:{VERSION}\n\
         \x20     image: pitcrew/wait:0.0.9\n\
         \x20     image: \"pitcrew/render:dev\"\n\
         \x20     image: pitcrew/waitt:{VERSION}\n\
         \x20     image: pitcrew/tail\n\
         \x20     image: registry.example.com/pitcrew/fetch\n\
         \x20     image: registry.example.com/pitcrew/fetch:{VERSION}\n\
         # pitcrew/tail streams it; pitcrew/prepare. mypitcrew/wait:1 and crates/pitcrew/src\n\
         see pitcrew/pitcrew:{VERSION}.\n\
         kind load docker-image pitcrew/wait:{VERSION}-arm64 pitcrew/tail:dev-amd64 pitcrew/tail:0.0.9-arm64\n"
    );
    let problems = mismatches("sample.yaml", &text, Rules::Strict);
    let expected = [
        format!("sample.yaml:2: pitcrew/wait:0.0.9: expected pitcrew/wait:{VERSION}"),
        format!("sample.yaml:3: pitcrew/render:dev: expected pitcrew/render:{VERSION}"),
        format!("sample.yaml:4: pitcrew/waitt:{VERSION}: no such image (pitcrew ships pitcrew/fetch, "),
        format!("sample.yaml:5: pitcrew/tail: no tag (pulls :latest); expected pitcrew/tail:{VERSION}"),
        format!("sample.yaml:6: pitcrew/fetch: no tag (pulls :latest); expected pitcrew/fetch:{VERSION}"),
        // Platform tags belong to local images, not to what examples and --help show.
        format!("sample.yaml:10: pitcrew/wait:{VERSION}-arm64: expected pitcrew/wait:{VERSION}"),
        "sample.yaml:10: pitcrew/tail:dev-amd64: expected".to_owned(),
        "sample.yaml:10: pitcrew/tail:0.0.9-arm64: expected".to_owned(),
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (problem, expected) in problems.iter().zip(&expected) {
        assert!(
            problem.starts_with(expected.as_str()),
            "{problem}\n  expected to start with\n{expected}"
        );
    }
    // The README's rules let :dev, platform tags and untagged names pass, not another version.
    let readme = mismatches("README.md", &text, Rules::VersionTagsOnly);
    assert_eq!(readme.len(), 2, "{readme:#?}");
    assert!(
        readme[0].starts_with("README.md:2: pitcrew/wait:0.0.9: expected"),
        "{readme:?}"
    );
    assert!(
        readme[1].starts_with("README.md:10: pitcrew/tail:0.0.9-arm64: expected"),
        "{readme:?}"
    );
}
