//! Where each statement of a MySQL script starts, so that a failure reported by the server as
//! "the Nth statement of the batch" can name the file's line. The script itself is sent to the
//! server whole (a multi-statement batch, as golang-migrate sends it), so a mistake here can
//! only make an error message point at the wrong line, never change what runs.
//!
//! The lexer knows what can hide a `;`: quoted strings (`'…'`, `"…"`, with backslash escapes
//! and doubled quotes), back-quoted identifiers, `-- `, `#` and `/* */` comments, and the
//! `BEGIN … END` bodies of `CREATE PROCEDURE|FUNCTION|TRIGGER|EVENT` and MariaDB's
//! `BEGIN NOT ATOMIC`, which the server parses as one statement.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The 1-based line of its first character that is not blank or a comment.
    pub line: usize,
    /// Its text, without the `;` that ends it.
    pub text: String,
}

/// The statements of `sql`, in order; text that holds nothing but blanks and comments is no
/// statement.
pub(crate) fn statements(sql: &str) -> Vec<Statement> {
    let mut lexer = Lexer::new(sql);
    let mut out = Vec::new();
    let mut current = Current::default();
    while let Some(token) = lexer.next_token() {
        match token {
            Token::Semicolon if current.depth <= 0 => {
                current.finish(sql, lexer.pos - 1, &mut out);
                current = Current::default();
            }
            Token::Semicolon => current.after_end = false,
            Token::Other { start, line } => current.touch(start, line),
            Token::Word { start, line, word } => {
                current.touch(start, line);
                current.word(&word);
            }
        }
    }
    current.finish(sql, sql.len(), &mut out);
    out
}

/// The statement being read.
#[derive(Default)]
struct Current {
    /// Byte offset and line of its first significant character.
    start: Option<(usize, usize)>,
    /// Its first words, upper-cased, until it is known whether it has a compound body.
    head: Vec<String>,
    /// Whether `BEGIN`/`CASE`/`END` nest (inside a stored program's definition).
    compound: bool,
    /// Open `BEGIN`/`CASE` blocks.
    depth: i32,
    /// The previous word was `END` (so `END IF`, `END LOOP`… close nothing counted).
    after_end: bool,
}

impl Current {
    fn touch(&mut self, start: usize, line: usize) {
        if self.start.is_none() {
            self.start = Some((start, line));
        }
    }

    fn word(&mut self, word: &str) {
        let upper = word.to_ascii_uppercase();
        if !self.compound {
            if self.head.len() < 12 {
                self.head.push(upper);
                self.compound = starts_compound(&self.head);
                // `BEGIN NOT ATOMIC`: the `BEGIN` read before this word opened the body.
                if self.compound && self.head[0] == "BEGIN" {
                    self.depth = 1;
                }
            }
            return;
        }
        if self.after_end {
            self.after_end = false;
            match upper.as_str() {
                // `END IF`/`END LOOP`/`END WHILE`/`END REPEAT`: those openers were never
                // counted, so the `END` just read closed nothing; undo it.
                "IF" | "LOOP" | "WHILE" | "REPEAT" => {
                    self.depth += 1;
                    return;
                }
                // `END CASE`: the `END` closed the counted `CASE` already.
                "CASE" => return,
                _ => {}
            }
        }
        match upper.as_str() {
            "BEGIN" | "CASE" => self.depth += 1,
            "END" => {
                self.depth -= 1;
                self.after_end = true;
            }
            _ => {}
        }
    }

    fn finish(&self, sql: &str, end: usize, out: &mut Vec<Statement>) {
        if let Some((start, line)) = self.start {
            out.push(Statement {
                line,
                text: sql[start..end].trim_end().to_owned(),
            });
        }
    }
}

/// Whether a statement starting with `head` defines a stored program (whose body holds `;`).
fn starts_compound(head: &[String]) -> bool {
    match head.first().map(String::as_str) {
        Some("CREATE") => head[1..]
            .iter()
            .any(|w| matches!(w.as_str(), "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT")),
        Some("BEGIN") => head.get(1).is_some_and(|w| w == "NOT"),
        _ => false,
    }
}

enum Token {
    Semicolon,
    Word {
        start: usize,
        line: usize,
        word: String,
    },
    /// Anything else significant (punctuation, a string, a number…).
    Other {
        start: usize,
        line: usize,
    },
}

struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Lexer {
            bytes: sql.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek(0)?;
        self.pos += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    /// The next significant token, skipping blanks and comments.
    fn next_token(&mut self) -> Option<Token> {
        loop {
            let byte = self.peek(0)?;
            let (start, line) = (self.pos, self.line);
            match byte {
                b if b.is_ascii_whitespace() => {
                    self.bump();
                }
                b'#' => self.skip_line(),
                b'-' if self.peek(1) == Some(b'-')
                    && self
                        .peek(2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
                {
                    self.skip_line();
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    self.pos += 2;
                    while let Some(c) = self.bump() {
                        if c == b'*' && self.peek(0) == Some(b'/') {
                            self.pos += 1;
                            break;
                        }
                    }
                }
                b';' => {
                    self.bump();
                    return Some(Token::Semicolon);
                }
                b'\'' | b'"' | b'`' => {
                    self.quoted(byte);
                    return Some(Token::Other { start, line });
                }
                b if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 => {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
                    {
                        self.bump();
                    }
                    let word = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
                    return Some(Token::Word { start, line, word });
                }
                _ => {
                    self.bump();
                    return Some(Token::Other { start, line });
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == b'\n' {
                break;
            }
            self.bump();
        }
    }

    /// Skips a quoted string or identifier that opens at the current byte.
    fn quoted(&mut self, quote: u8) {
        self.bump();
        while let Some(c) = self.bump() {
            if c == b'\\' && quote != b'`' {
                self.bump();
            } else if c == quote {
                if self.peek(0) == Some(quote) {
                    self.bump();
                } else {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(sql: &str) -> Vec<usize> {
        statements(sql).iter().map(|s| s.line).collect()
    }

    #[test]
    fn plain_statements_start_on_their_own_lines() {
        let sql = "CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\n  INSERT INTO a VALUES (2);";
        assert_eq!(lines(sql), [1, 3, 4]);
        assert_eq!(statements(sql)[1].text, "INSERT INTO a VALUES (1)");
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let sql = "-- a comment; still a comment\n\
                   INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;', 'back\\';slash');\n\
                   # hash comment ;\n\
                   /* block ; \n comment */ SELECT `we;ird` FROM t;\n\
                   SELECT 1 -- trailing ; comment\n\
                   ;";
        let found = statements(sql);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(lines(sql), [2, 5, 6]);
    }

    #[test]
    fn double_dash_without_a_space_is_not_a_comment() {
        // `1--1` is 1 minus minus 1 in MySQL, so the `;` after it ends the statement.
        assert_eq!(lines("SELECT 1--1;\nSELECT 2;"), [1, 2]);
    }

    #[test]
    fn trailing_blanks_and_comments_make_no_statement() {
        assert_eq!(lines("SELECT 1;\n\n-- done\n"), [1]);
        assert!(statements("  -- nothing\n/* at all */\n").is_empty());
        assert_eq!(lines("SELECT 1;;\nSELECT 2"), [1, 2]);
    }

    #[test]
    fn stored_program_bodies_are_one_statement() {
        let sql = "CREATE TABLE t (n int);\n\
                   CREATE DEFINER = CURRENT_USER TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW\n\
                   BEGIN\n\
                     IF NEW.n < 0 THEN SET NEW.n = 0; END IF;\n\
                     CASE WHEN NEW.n > 9 THEN SET NEW.n = 9; ELSE BEGIN END; END CASE;\n\
                     SET @x = CASE NEW.n WHEN 1 THEN 'one' ELSE 'many' END;\n\
                     lbl: LOOP LEAVE lbl; END LOOP lbl;\n\
                   END;\n\
                   INSERT INTO t VALUES (1);";
        assert_eq!(lines(sql), [1, 2, 9]);
        let sql = "BEGIN NOT ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\nSELECT 3;";
        assert_eq!(lines(sql), [1, 5]);
    }

    #[test]
    fn begin_as_a_transaction_start_is_a_statement_of_its_own() {
        assert_eq!(lines("BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;"), [1, 2, 3]);
    }

    #[test]
    fn a_function_without_a_body_block_ends_at_its_semicolon() {
        assert_eq!(
            lines("CREATE FUNCTION f() RETURNS int DETERMINISTIC RETURN 1;\nSELECT f();"),
            [1, 2]
        );
    }

    #[test]
    fn unterminated_quotes_and_comments_end_at_the_end_of_the_text() {
        assert_eq!(lines("SELECT 'open;\nSELECT 2;"), [1]);
        assert_eq!(lines("SELECT 1; /* open ;"), [1]);
    }
}
