//! Where each statement of a PostgreSQL script starts and ends, and which line of the file a
//! server position falls on.
//!
//! Why the driver splits at all: a `-- pitcrew:no-transaction` file must send its statements one
//! at a time (PostgreSQL runs a multi-statement query string as one implicit transaction, where
//! `CREATE INDEX CONCURRENTLY` is refused); an error without a position (a unique violation, a
//! division by zero) is placed by counting the statements the server completed; and a file that
//! runs `BEGIN`/`COMMIT` itself must not be wrapped in a transaction of ours, whose `COMMIT` its
//! own would end early. The lexer knows what hides a `;` from PostgreSQL's own splitter:
//! comments (block comments nest), quoted strings (`E'…'` with backslash escapes), quoted
//! identifiers, dollar quotes (`$$…$$`, `$tag$…$tag$`) and SQL-standard function bodies
//! (`BEGIN ATOMIC … END`). It does not run psql meta-commands (`\i`, `\set`), which the server
//! would refuse anyway.

/// One statement: byte offsets into the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its first byte that is not blank or comment.
    pub start: usize,
    /// Just past its `;` (or the end of the script).
    pub end: usize,
    /// Its first word, upper-cased (`CREATE`, `BEGIN`, …; empty when it starts with a symbol).
    pub keyword: String,
}

/// The statements of `sql`, blank and comment-only stretches left out.
pub fn split(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start: Option<usize> = None;
    let mut keyword = String::new();
    // Inside a CREATE statement, BEGIN/CASE … END nest: `BEGIN ATOMIC … END` holds `;`s.
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let next = bytes.get(i + 1).copied();
        // Comments are not part of a statement's start.
        if byte == b'-' && next == Some(b'-') {
            i = sql[i..].find('\n').map_or(bytes.len(), |at| i + at + 1);
            continue;
        }
        if byte == b'/' && next == Some(b'*') {
            i = skip_block_comment(bytes, i);
            continue;
        }
        if byte.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let first = start.is_none();
        if first {
            start = Some(i);
            keyword.clear();
            depth = 0;
        }
        match byte {
            b';' => {
                if first {
                    // An empty statement: PostgreSQL drops it too, so it is not counted.
                    start = None;
                } else if depth == 0 {
                    statements.push(Statement {
                        start: start.take().unwrap_or(i),
                        end: i + 1,
                        keyword: std::mem::take(&mut keyword),
                    });
                }
                i += 1;
            }
            b'\'' => i = skip_quoted(bytes, i, b'\'', false),
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'$' if !follows_identifier(bytes, i) => i = skip_dollar(sql, i),
            _ if is_identifier_start(byte) => {
                let word_end = i + bytes[i..].iter().take_while(|b| is_identifier_part(**b)).count();
                // `E'…'`: a string with backslash escapes.
                if word_end == i + 1 && (byte == b'e' || byte == b'E') && bytes.get(word_end) == Some(&b'\'')
                {
                    i = skip_quoted(bytes, word_end, b'\'', true);
                    continue;
                }
                let word = sql[i..word_end].to_ascii_uppercase();
                if first {
                    keyword.clone_from(&word);
                } else if keyword == "CREATE" {
                    match word.as_str() {
                        "BEGIN" | "CASE" => depth += 1,
                        "END" => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                i = word_end;
            }
            _ => i += 1,
        }
    }
    if let Some(start) = start {
        statements.push(Statement {
            start,
            end: bytes.len(),
            keyword,
        });
    }
    statements
}

/// Whether a statement ends or starts a transaction, which wrapping the script in one of our
/// own would break.
pub fn controls_transaction(statement: &Statement) -> bool {
    matches!(
        statement.keyword.as_str(),
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT"
    )
}

/// The 1-based line and column of byte `offset` in `sql`.
pub fn line_and_column(sql: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(sql, offset.min(sql.len()));
    let before = &sql[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The byte offset of PostgreSQL's error position `position` (1-based, in characters) in
/// `text`, which is what was sent.
pub fn byte_offset_of_position(text: &str, position: u32) -> usize {
    let index = usize::try_from(position.saturating_sub(1)).unwrap_or(usize::MAX);
    text.char_indices().nth(index).map_or(text.len(), |(at, _)| at)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_identifier_part(byte: u8) -> bool {
    is_identifier_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

/// `$` right after an identifier character belongs to it (`a$b`), and `$1` is a parameter.
fn follows_identifier(bytes: &[u8], at: usize) -> bool {
    at > 0 && is_identifier_part(bytes[at - 1])
}

/// Past the end of a block comment starting at `at` (they nest in PostgreSQL).
fn skip_block_comment(bytes: &[u8], at: usize) -> usize {
    let mut depth = 0usize;
    let mut i = at;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Past the closing `quote` of a string or quoted identifier opening at `at` (doubled quotes
/// inside; backslash escapes too when `backslashes`).
fn skip_quoted(bytes: &[u8], at: usize, quote: u8, backslashes: bool) -> usize {
    let mut i = at + 1;
    while i < bytes.len() {
        let byte = bytes[i];
        if backslashes && byte == b'\\' {
            i += 2;
        } else if byte == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Past a dollar-quoted string opening at `at`, or just past the `$` when it opens none.
fn skip_dollar(sql: &str, at: usize) -> usize {
    let bytes = sql.as_bytes();
    let tag_len = bytes[at + 1..]
        .iter()
        .take_while(|b| is_identifier_part(**b) && **b != b'$')
        .count();
    let tag_end = at + 1 + tag_len;
    let valid_tag = bytes.get(at + 1).is_none_or(|b| !b.is_ascii_digit());
    if bytes.get(tag_end) != Some(&b'$') || !valid_tag {
        return at + 1;
    }
    let tag = &sql[at..=tag_end];
    sql[tag_end + 1..]
        .find(tag)
        .map_or(bytes.len(), |found| tag_end + 1 + found + tag.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| &sql[s.start..s.end]).collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let sql = "-- lead comment\nCREATE TABLE a (x text default ';');\n\n/* a ; /* nested ; */ still */ INSERT INTO \"we;ird\" VALUES (E'\\';');\nSELECT 1";
        assert_eq!(
            texts(sql),
            [
                "CREATE TABLE a (x text default ';');",
                "INSERT INTO \"we;ird\" VALUES (E'\\';');",
                "SELECT 1"
            ]
        );
        assert_eq!(split(sql)[0].keyword, "CREATE");
    }

    #[test]
    fn dollar_quotes_and_atomic_bodies_hold_semicolons() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\n\
                   CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\n\
                   SELECT $1, a$b FROM t; SELECT $$;$$;";
        let found = texts(sql);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[1].ends_with("END; END;"), "{}", found[1]);
        assert!(!split(sql).iter().any(controls_transaction));
    }

    #[test]
    fn transaction_control_is_found() {
        let sql = "begin;\nCREATE TABLE a (x int);\ncommit;\n";
        let statements = split(sql);
        assert_eq!(statements.len(), 3);
        assert!(controls_transaction(&statements[0]));
        assert!(controls_transaction(&statements[2]));
        assert!(!controls_transaction(&statements[1]));
    }

    #[test]
    fn blank_and_comment_only_stretches_are_not_statements() {
        assert!(split("  -- nothing\n/* here */ \n").is_empty());
        assert_eq!(texts(";;SELECT 1;"), ["SELECT 1;"]);
    }

    #[test]
    fn positions_map_to_lines_and_columns() {
        let sql = "SELECT 1;\nSELECT ünï, 2;\nSELEC 3;";
        // PostgreSQL counts characters from 1: the `2` is the 23rd, after two 2-byte ones.
        let at = byte_offset_of_position(sql, 23);
        assert_eq!(&sql[at..=at], "2");
        assert_eq!(line_and_column(sql, at), (2, 13));
        let last = sql.rfind("SELEC ").unwrap();
        let position = u32::try_from(sql[..last].chars().count()).unwrap() + 1;
        assert_eq!(
            line_and_column(sql, byte_offset_of_position(sql, position)),
            (3, 1)
        );
        assert_eq!(line_and_column(sql, sql.len() + 5), (3, 9));
    }
}
