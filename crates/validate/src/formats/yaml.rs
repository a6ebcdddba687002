//! YAML: pitcrew-core's reader (its `yaml` feature, shared with pitcrew-metrics) builds JSON
//! values from yaml-rust2's events itself, so that it can bound depth and alias expansion, see
//! duplicate keys, and remember where every value starts; this module turns what it found into
//! this tool's documents and problems.
//!
//! Decisions (see `pitcrew_core::yaml`): every document of a multi-document file is checked;
//! scalars resolve by the YAML 1.2 core schema (`yes`/`no`/`on`/`off` are strings, as in YAML
//! 1.2, unlike YAML 1.1 parsers such as the one in Kubernetes); `.inf` and `.nan`, which JSON
//! cannot hold, stay strings; a duplicate key is a problem (the YAML spec forbids it; parsers
//! disagree on what they do); `<<` merge keys are applied (docker-compose and CI files use
//! them), and a key given explicitly overrides a merged one without being a duplicate; a key
//! that is not a string becomes its text (`1: a` is `{"1": "a"}`), as JSON needs string keys.

use pitcrew_core::yaml::{self, ProblemKind};

use crate::formats::{Document, Parsed};
use crate::problem::{Check, Position, Problem};

/// Parses a YAML stream (not empty, already known to be UTF-8).
pub fn parse(text: &str) -> Parsed {
    let parsed = yaml::parse(text);
    let problems: Vec<Problem> = parsed.problems.into_iter().map(problem).collect();
    Parsed {
        // Documents are dropped after a problem that stops the reading: no documents and no
        // problems is a stream of comments only.
        empty: parsed.documents.is_empty() && problems.is_empty(),
        documents: parsed
            .documents
            .into_iter()
            .map(|document| Document {
                value: document.value,
                positions: document
                    .positions
                    .into_iter()
                    .map(|(pointer, at)| (pointer, position(at)))
                    .collect(),
            })
            .collect(),
        problems,
    }
}

fn position(at: yaml::Position) -> Position {
    Position {
        line: at.line,
        column: at.column,
    }
}

fn problem(found: yaml::Problem) -> Problem {
    let check = match found.kind {
        ProblemKind::DuplicateKey => Check::DuplicateKey,
        ProblemKind::Syntax
        | ProblemKind::TooDeep
        | ProblemKind::TooManyValues
        | ProblemKind::RecursiveAlias
        | ProblemKind::BadTag(_) => Check::Syntax,
    };
    let mut problem = Problem::invalid(check, found.message)
        .at(Some(position(found.position)))
        .document(found.document);
    if let Some(pointer) = found.pointer {
        problem = problem.pointer(pointer);
    }
    problem
}

#[cfg(test)]
mod tests {
    //! The reader itself is tested in pitcrew-core; these pin how its findings become this
    //! tool's documents and problems.

    use serde_json::json;

    use super::*;

    #[allow(clippy::unnecessary_wraps)] // compared with Option<Position> fields
    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn positions_of_values_by_pointer() {
        let parsed = parse("a: 1\n---\nname: b\nlist:\n  - x\nm:\n  k: v\nf: {z: 1}\n");
        assert!(parsed.problems.is_empty() && !parsed.empty);
        let document = &parsed.documents[1];
        assert_eq!(document.value["list"], json!(["x"]));
        assert_eq!(document.position_of(""), at(3, 1));
        assert_eq!(document.position_of("/list/0"), at(5, 5));
        assert_eq!(document.position_of("/m/k"), at(7, 6));
        assert_eq!(document.position_of("/f/z"), at(8, 8));
    }

    #[test]
    fn problems_keep_their_check_place_and_document() {
        let parsed = parse("a: 1\n---\nb: 2\nb: 3\n---\n- x\n");
        assert_eq!(parsed.documents.len(), 3);
        assert_eq!(
            parsed.problems,
            [Problem::invalid(
                Check::DuplicateKey,
                "key \"b\" is given twice in this mapping; YAML forbids it and parsers disagree \
                 on which value wins"
            )
            .at(at(4, 1))
            .pointer("/b")
            .document(Some(2))]
        );
        let parsed = parse("a: 1\nb: [1, 2\nc: 3\n");
        assert!(parsed.documents.is_empty() && !parsed.empty);
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].check, Check::Syntax);
        assert_eq!(parsed.problems[0].pointer, None);
        let parsed = parse("a: 1\n---\nn: !!int abc\n");
        assert_eq!(parsed.problems[0].check, Check::Syntax);
        assert_eq!(parsed.problems[0].document, Some(2));
        assert!(parsed.problems[0].message.contains("not a valid !!int"));
    }

    #[test]
    fn comments_only_is_empty() {
        let parsed = parse("# nothing here\n");
        assert!(parsed.empty && parsed.problems.is_empty());
    }
}
