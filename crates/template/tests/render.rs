//! The engine's behaviour through its public API: every operator in every variable state,
//! nesting, `$$` and backslashes, bytes that are not text, chunk boundaries, a huge streamed
//! input, every problem kind with its position, allow-lists, and values that must never be
//! re-expanded nor shown in errors.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use pitcrew_template::{Allow, Chunked, Error, Options, ProblemKind, Report, references, render};

type Vars = BTreeMap<String, Vec<u8>>;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The usual variables: `A` set, `E` set but empty, `U` unset.
fn usual() -> Vars {
    vars(&[("A", "aa"), ("B", "bb"), ("E", "")])
}

fn try_render(template: &[u8], vars: &mut Vars, options: &Options) -> Result<(Vec<u8>, Report), Error> {
    let mut out = Vec::new();
    let report = render(template, &mut out, "t.yaml", vars, options)?;
    Ok((out, report))
}

/// Renders with default options; panics on error.
fn ok(template: &str, vars: &mut Vars) -> String {
    ok_with(template, vars, &Options::default())
}

fn ok_with(template: &str, vars: &mut Vars, options: &Options) -> String {
    match try_render(template.as_bytes(), vars, options) {
        Ok((out, _)) => String::from_utf8(out).expect("test output is UTF-8"),
        Err(error) => panic!("{template:?}: {error}"),
    }
}

/// The problems as (line, column, kind).
fn problems(template: &[u8], vars: &mut Vars, options: &Options) -> Vec<(u64, u64, ProblemKind)> {
    match try_render(template, vars, options) {
        Ok((out, _)) => panic!(
            "{:?} rendered: {:?}",
            String::from_utf8_lossy(template),
            String::from_utf8_lossy(&out)
        ),
        Err(Error::Template(problems)) => problems
            .iter()
            .map(|p| (p.line, p.column, p.kind.clone()))
            .collect(),
        Err(error) => panic!("not a template error: {error}"),
    }
}

fn strict() -> Options {
    Options {
        strict: true,
        ..Options::default()
    }
}

fn only(list: &str) -> Options {
    Options {
        allow: Allow::parse(list).unwrap(),
        ..Options::default()
    }
}

fn name(name: &str) -> String {
    name.to_owned()
}

#[test]
fn every_operator_with_set_empty_and_unset_variables() {
    // (operator, value when A is set, when E is empty, when U is unset)
    let table = [
        ("-", "aa", "", "w"),
        (":-", "aa", "w", "w"),
        ("=", "aa", "", "w"),
        (":=", "aa", "w", "w"),
        ("+", "w", "w", ""),
        (":+", "w", "", ""),
        ("?", "aa", "", "error"),
        (":?", "aa", "error", "error"),
    ];
    for (operator, set, empty, unset) in table {
        for (variable, expected) in [("A", set), ("E", empty), ("U", unset)] {
            let template = format!("[${{{variable}{operator}w}}]");
            let result = try_render(template.as_bytes(), &mut usual(), &Options::default());
            match (expected, result) {
                ("error", Err(Error::Template(problems))) => {
                    assert_eq!(problems.len(), 1, "{template}");
                    assert!(
                        matches!(&problems.0[0].kind, ProblemKind::Required { name, message } if name == variable && message.as_deref() == Some("w")),
                        "{template}: {problems}"
                    );
                }
                ("error", Ok((out, _))) => panic!("{template} rendered {:?}", String::from_utf8_lossy(&out)),
                (expected, Ok((out, _))) => assert_eq!(out, format!("[{expected}]").as_bytes(), "{template}"),
                (_, Err(error)) => panic!("{template}: {error}"),
            }
        }
    }
}

#[test]
fn plain_references_and_unset_variables_expand_like_gnu() {
    let mut vars = usual();
    assert_eq!(
        ok("$A ${A} [$E] [${E}] [$U] [${U}]", &mut vars),
        "aa aa [] [] [] []"
    );
    assert_eq!(ok("$A_x ${A}_x $A-x", &mut vars), " aa_x aa-x");
}

#[test]
fn assignments_persist_for_the_rest_of_the_template() {
    let mut vars = usual();
    assert_eq!(ok("${U:=x$A}|$U|${U:=other}", &mut vars), "xaa|xaa|xaa");
    assert_eq!(vars.get("U").map(Vec::as_slice), Some(&b"xaa"[..]));
    // `=` keeps an empty value; `:=` replaces it.
    assert_eq!(ok("[${E=x}][$E]", &mut vars), "[][]");
    assert_eq!(ok("[${E:=x}][$E]", &mut vars), "[x][x]");
    // Nested assignments: both get their value, the outer one is written once.
    let mut vars = usual();
    assert_eq!(ok("${X:=<${Y:=$A}>}|$X|$Y", &mut vars), "<aa>|<aa>|aa");
    // A default not taken assigns nothing.
    let mut vars = usual();
    assert_eq!(ok("${A:-${Z:=z}}[$Z]", &mut vars), "aa[]");
    assert!(!vars.contains_key("Z"));
}

#[test]
fn nested_words() {
    let mut vars = usual();
    assert_eq!(ok("${U:-${V:-${A}}}", &mut vars), "aa");
    assert_eq!(ok("${U:-$A}", &mut vars), "aa");
    assert_eq!(ok("${U:-a$$b}", &mut vars), "a$b");
    assert_eq!(ok("${A:+[$A|${B}]}", &mut vars), "[aa|bb]");
    assert_eq!(ok("${U:-x ${U:-y ${U:-z}}}", &mut vars), "x y z");
    // Multi-line words.
    assert_eq!(ok("${U:-line1\nline2 $A}", &mut vars), "line1\nline2 aa");
    // The word ends at the first `}` closing no nested `${`: a bare `{` is text.
    assert_eq!(ok("${U:-{x}}", &mut vars), "{x}");
    assert_eq!(ok("${U:-${1}}", &mut vars), "${1}");
    assert_eq!(ok("${U:-$}", &mut vars), "$");
    assert_eq!(ok("${U:-}|${U-}", &mut vars), "|");
}

#[test]
fn double_dollar_is_a_literal_dollar() {
    let mut vars = usual();
    assert_eq!(ok("$$", &mut vars), "$");
    assert_eq!(ok("$$A", &mut vars), "$A");
    assert_eq!(ok("$${A}", &mut vars), "${A}");
    assert_eq!(ok("$$$A", &mut vars), "$aa");
    assert_eq!(ok("$$$$", &mut vars), "$$");
    assert_eq!(ok("cost: 5$$", &mut vars), "cost: 5$");
}

#[test]
fn backslash_is_ordinary_text_as_in_gnu_envsubst() {
    let mut vars = usual();
    assert_eq!(ok(r"\$A \${A} \\$A \$$ \", &mut vars), r"\aa \aa \\aa \$ \");
}

#[test]
fn dollars_without_a_name_are_left_byte_for_byte() {
    let mut vars = usual();
    for text in [
        "$1", "$(cmd)", "$ ", "$", "x$", "${1}", "${}", "${ A}", "$-", "$@", "${@}", "${#}", "$}", "${$A}",
        "${{A}}", "$é", "${é}",
    ] {
        let expected = text.replace("$A", "aa");
        assert_eq!(ok(text, &mut vars), expected, "{text:?}");
    }
    assert_eq!(ok("${A}}", &mut vars), "aa}");
}

#[test]
fn values_are_never_re_expanded() {
    let secret = "s3cr3t&/#?@:x y $B ${B} } ${U:-x} $$\n\\$A";
    let mut vars = vars(&[("S", secret), ("B", "bb")]);
    assert_eq!(ok("<$S>", &mut vars), format!("<{secret}>"));
    assert_eq!(ok("<${S}>", &mut vars), format!("<{secret}>"));
    assert_eq!(ok("<${U:-$S}>", &mut vars), format!("<{secret}>"));
    assert_eq!(ok("<${U:=$S}><$U>", &mut vars), format!("<{secret}><{secret}>"));
}

#[test]
fn nul_crlf_and_invalid_utf8_pass_through() {
    let mut vars = Vars::new();
    vars.insert("V".into(), b"\x00\xff\r\n\xfe".to_vec());
    let template = b"a\r\n\x00$V\xff${V}\xc3(\r\n${U:-\x00\xfe}\x00";
    let (out, report) = try_render(template, &mut vars, &Options::default()).unwrap();
    assert_eq!(
        out,
        b"a\r\n\x00\x00\xff\r\n\xfe\xff\x00\xff\r\n\xfe\xc3(\r\n\x00\xfe\x00".to_vec()
    );
    assert_eq!(report.bytes_in, template.len() as u64);
    assert_eq!(report.bytes_out, out.len() as u64);
}

#[test]
fn report_counts_names_expansions_and_bytes_but_no_values() {
    let mut vars = usual();
    let (out, report) = try_render(
        b"$A ${B} $A ${U:-$Q} $$X ${A:+$W}",
        &mut vars,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(out, b"aa bb aa  $X ");
    assert_eq!(report.bytes_in, 32);
    assert_eq!(report.bytes_out, out.len() as u64);
    // A, B, A, U, Q, A, W: every evaluated reference, nested ones too.
    assert_eq!(report.expansions, 7);
    // Names in defaults not taken are referenced too (a reload must watch them).
    assert_eq!(
        report.names.iter().cloned().collect::<Vec<_>>(),
        ["A", "B", "Q", "U", "W"]
    );
    assert!(!format!("{report:?}").contains("aa"));
}

fn render_chunked(template: &[u8], chunk: usize, options: &Options) -> Result<(Vec<u8>, Report), String> {
    let mut vars = usual();
    let mut out = Vec::new();
    render(
        Chunked {
            data: template,
            chunk,
        },
        &mut out,
        "t",
        &mut vars,
        options,
    )
    .map(|report| (out, report))
    .map_err(|error| error.to_string())
}

#[test]
fn names_and_expressions_across_read_boundaries_give_the_same_result() {
    let template: &[u8] = b"$A$B${A}x$$A$${B}${U:-${B:+[$A]}}$ $1${1}${}\\$A${A_1}$A_1\r\n${U:=v}$U${A:-$$}$";
    let whole = render_chunked(template, usize::MAX, &Options::default()).unwrap();
    assert_eq!(
        String::from_utf8(whole.0.clone()).unwrap(),
        "aabbaax$A${B}[aa]$ $1${1}${}\\aa\r\nvvaa$"
    );
    for chunk in [1, 2, 3, 7] {
        assert_eq!(
            render_chunked(template, chunk, &Options::default()).unwrap(),
            whole,
            "{chunk}-byte reads"
        );
    }
    // The same with an allow-list (its `$$` lookahead crosses reads too).
    let options = only("A");
    let whole = render_chunked(template, usize::MAX, &options).unwrap();
    for chunk in [1, 7] {
        assert_eq!(
            render_chunked(template, chunk, &options).unwrap(),
            whole,
            "{chunk}-byte reads, allow-list"
        );
    }
    // And the errors.
    let broken: &[u8] = b"ok\n${A%x} ${U?}\n${B:0} $\n${A";
    let whole = render_chunked(broken, usize::MAX, &strict()).unwrap_err();
    assert_eq!(whole.lines().count(), 4, "{whole}");
    for chunk in [1, 7] {
        assert_eq!(
            render_chunked(broken, chunk, &strict()).unwrap_err(),
            whole,
            "{chunk}-byte reads"
        );
    }
}

/// Generates `total` bytes of a template on the fly: never held in memory. Records the largest
/// read buffer it was offered.
struct Generated {
    line: &'static [u8],
    at: usize,
    left: u64,
    largest_read: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_read = self.largest_read.max(buf.len());
        let mut written = 0;
        while written < buf.len() && self.left > 0 {
            let part = &self.line[self.at..];
            let len = part
                .len()
                .min(buf.len() - written)
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[written..written + len].copy_from_slice(&part[..len]);
            written += len;
            self.left -= len as u64;
            self.at = (self.at + len) % self.line.len();
        }
        Ok(written)
    }
}

/// Counts what it is given and checks it against the expected line, without keeping it.
struct Expect {
    line: &'static [u8],
    at: usize,
    total: u64,
    largest_write: usize,
}

impl Write for Expect {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.largest_write = self.largest_write.max(buf.len());
        for &byte in buf {
            assert_eq!(byte, self.line[self.at], "output byte {}", self.total);
            self.at = (self.at + 1) % self.line.len();
            self.total += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_50_mb_input_is_streamed_through_bounded_buffers() {
    const LINE: &[u8] = b"key: $A and ${B} or ${U:-dflt} $$ $1 \\$A\n";
    const OUT: &[u8] = b"key: aa and bb or dflt $ $1 \\aa\n";
    let lines = 50 * 1024 * 1024 / LINE.len() as u64;
    let mut input = Generated {
        line: LINE,
        at: 0,
        left: lines * LINE.len() as u64,
        largest_read: 0,
    };
    let mut output = Expect {
        line: OUT,
        at: 0,
        total: 0,
        largest_write: 0,
    };
    let mut vars = usual();
    let report = render(&mut input, &mut output, "big", &mut vars, &Options::default()).unwrap();
    assert_eq!(report.bytes_in, lines * LINE.len() as u64);
    assert_eq!(report.bytes_out, lines * OUT.len() as u64);
    assert_eq!(output.total, report.bytes_out);
    assert_eq!(report.expansions, lines * 4);
    // Bounded by design: the engine never asks for more than its fixed buffer, nor writes
    // more than one output buffer at a time (values and text are small here).
    assert!(
        input.largest_read <= 128 * 1024,
        "read into {} bytes",
        input.largest_read
    );
    assert!(
        output.largest_write <= 64 * 1024,
        "wrote {} bytes at once",
        output.largest_write
    );
}

#[test]
fn unset_and_empty_are_errors_only_when_asked_and_only_without_a_default() {
    let mut vars = usual();
    assert_eq!(
        ok_with("${U:-x}${U-}${U+x}${U:=y}${E:-e}${E+x}", &mut vars, &strict()),
        "xyex"
    );
    let found = problems(b"a $U\n  ${U} $E ${E}", &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (1, 3, ProblemKind::Unset { name: name("U") }),
            (2, 3, ProblemKind::Unset { name: name("U") })
        ]
    );
    let options = Options {
        strict: true,
        no_empty: true,
        ..Options::default()
    };
    let found = problems(b"a $U\n  ${U} $E ${E} ${E:-x} ${E-}", &mut usual(), &options);
    assert_eq!(
        found,
        [
            (1, 3, ProblemKind::Unset { name: name("U") }),
            (2, 3, ProblemKind::Unset { name: name("U") }),
            (2, 8, ProblemKind::Empty { name: name("E") }),
            (2, 11, ProblemKind::Empty { name: name("E") }),
        ]
    );
    // no_empty alone: unset is still fine.
    let options = Options {
        no_empty: true,
        ..Options::default()
    };
    assert_eq!(
        problems(b"$U$E", &mut usual(), &options),
        [(1, 3, ProblemKind::Empty { name: name("E") })]
    );
}

#[test]
fn required_messages_are_shown_as_written_never_expanded() {
    let found = problems(
        b"${U?}${U:?}${E:?}${U?use $A or ${B}}${E?fine}",
        &mut usual(),
        &Options::default(),
    );
    let required = |column, message: &str| {
        (
            1,
            column,
            ProblemKind::Required {
                name: if column == 12 { name("E") } else { name("U") },
                message: Some(message.to_owned()),
            },
        )
    };
    assert_eq!(
        found,
        [
            required(1, "is not set"),
            required(6, "is not set or empty"),
            required(12, "is not set or empty"),
            required(18, "use $A or ${B}"),
        ]
    );
    let text = try_render(b"${U:?use $A}", &mut usual(), &Options::default())
        .unwrap_err()
        .to_string();
    assert_eq!(text, "t.yaml:1:1: U: use $A");
    assert!(!text.contains("aa"));
}

#[test]
fn unterminated_expressions_are_reported_at_their_start() {
    let found = problems(b"x\nab ${A:-${B}\n$A ${U", &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (2, 4, ProblemKind::Unterminated),
            (3, 4, ProblemKind::Unterminated)
        ]
    );
    let text = try_render(b"${A", &mut usual(), &Options::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "t.yaml:1:1: `${` is never closed: no matching `}` before the end of input"
    );
}

#[test]
fn unsupported_operators_are_named() {
    let cases: &[(&str, &str)] = &[
        ("${A%x}", "%"),
        ("${A%%x}", "%%"),
        ("${A#x}", "#"),
        ("${A##x}", "##"),
        ("${A/a/b}", "/"),
        ("${A//a/b}", "//"),
        ("${A:0:2}", ":"),
        ("${A:x}", ":"),
        ("${A^^}", "^^"),
        ("${A,}", ","),
        ("${A B}", " "),
        ("${A\n}", "\\x0a"),
        ("${#A}", "#"),
        ("${!A}", "!"),
        ("${A@Q}", "@"),
    ];
    for (template, operator) in cases {
        let found = problems(template.as_bytes(), &mut usual(), &Options::default());
        assert_eq!(
            found,
            [(
                1,
                1,
                ProblemKind::UnknownOperator {
                    name: name("A"),
                    operator: (*operator).to_owned()
                }
            )],
            "{template:?}"
        );
    }
    let text = try_render(b"  ${HOST%%.*}", &mut usual(), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("t.yaml:1:3: unsupported operator `%%` in ${HOST…}"),
        "{text}"
    );
}

#[test]
fn an_expression_or_name_longer_than_the_limit_is_an_error_not_a_buffer() {
    let limit = pitcrew_template::MAX_EXPRESSION;
    // An expression that is closed, eventually.
    let mut template = b"ok\n  ${U:-".to_vec();
    template.extend(std::iter::repeat_n(b'x', limit * 3));
    template.extend_from_slice(b"} $U");
    let found = problems(&template, &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (2, 3, ProblemKind::TooLong { limit }),
            (2, 10 + 3 * limit as u64, ProblemKind::Unset { name: name("U") })
        ]
    );
    // One never closed: reported as unterminated, after streaming through the rest.
    let mut template = b"${U:-".to_vec();
    template.extend(std::iter::repeat_n(b'x', limit * 3));
    assert_eq!(
        problems(&template, &mut usual(), &strict()),
        [(1, 1, ProblemKind::Unterminated)]
    );
    // A name.
    let mut template = b"a $".to_vec();
    template.extend(std::iter::repeat_n(b'N', limit * 2));
    template.extend_from_slice(b" $U");
    let found = problems(&template, &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (1, 3, ProblemKind::TooLong { limit }),
            (
                1,
                3 + 2 * limit as u64 + 2,
                ProblemKind::Unset { name: name("U") }
            )
        ]
    );
    // Just under the limit is fine.
    let mut template = b"${U:-".to_vec();
    template.extend(std::iter::repeat_n(b'x', limit - 10));
    template.push(b'}');
    let (out, _) = try_render(&template, &mut usual(), &Options::default()).unwrap();
    assert_eq!(out.len(), limit - 10);
}

#[test]
fn nesting_deeper_than_the_limit_is_an_error() {
    let depth = pitcrew_template::MAX_DEPTH as usize;
    let deep = |levels: usize| format!("{}x{}", "${U:-".repeat(levels), "}".repeat(levels));
    assert_eq!(ok(&deep(depth), &mut usual()), "x");
    let found = problems(deep(depth + 1).as_bytes(), &mut usual(), &Options::default());
    assert_eq!(
        found,
        [(
            1,
            1 + 5 * depth as u64,
            ProblemKind::TooDeep {
                limit: pitcrew_template::MAX_DEPTH
            }
        )]
    );
    // Very deep nesting (far beyond what the stack would take if followed) is reported once.
    let found = problems(deep(10_000).as_bytes(), &mut usual(), &Options::default());
    assert_eq!(found.len(), 1);
}

#[test]
fn assigned_values_are_bounded() {
    let big = "v".repeat(pitcrew_template::MAX_VALUE / 2 + 1);
    let mut vars = vars(&[("BIG", &big)]);
    // Two halves make more than one value may hold.
    let found = problems(b"x ${N:=$BIG$BIG}", &mut vars, &Options::default());
    let limit = pitcrew_template::MAX_VALUE;
    assert_eq!(
        found,
        [(
            1,
            3,
            ProblemKind::ValueTooLong {
                name: name("N"),
                limit
            }
        )]
    );
    assert!(!vars.contains_key("N"));
    // Nested: the outermost assignment is the one too long; the inner one stays unassigned.
    let found = problems(b"${N:=$BIG${M:=$BIG}}", &mut vars, &Options::default());
    assert_eq!(
        found,
        [(
            1,
            1,
            ProblemKind::ValueTooLong {
                name: name("N"),
                limit
            }
        )]
    );
    // Many assignments of allowed size: the total is bounded too.
    let mut vars = vars.clone();
    let template = (0..9).fold(String::new(), |text, i| text + &format!("${{N{i}:=$BIG}}"));
    let found = problems(template.as_bytes(), &mut vars, &Options::default());
    let total = pitcrew_template::MAX_ASSIGNED;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        matches!(&found[0].2, ProblemKind::AssignmentsTooLarge { name, limit } if name == "N7" && *limit == total),
        "{found:?}"
    );
}

#[test]
fn every_problem_is_reported_up_to_a_hundred_then_counted() {
    let found = problems(b"$U1 ${U2}\n${U3%x} ${U4?} $$ ${U5", &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (1, 1, ProblemKind::Unset { name: name("U1") }),
            (1, 5, ProblemKind::Unset { name: name("U2") }),
            (
                2,
                1,
                ProblemKind::UnknownOperator {
                    name: name("U3"),
                    operator: name("%")
                }
            ),
            (
                2,
                9,
                ProblemKind::Required {
                    name: name("U4"),
                    message: Some(name("is not set"))
                }
            ),
            (2, 19, ProblemKind::Unterminated),
        ]
    );
    let template = "$U ".repeat(150);
    let Err(Error::Template(found)) = try_render(template.as_bytes(), &mut usual(), &strict()) else {
        panic!("no error");
    };
    assert_eq!(found.len(), 101);
    assert_eq!(found.0[100].kind, ProblemKind::Omitted { count: 50 });
    assert_eq!((found.0[100].line, found.0[100].column), (1, 301));
    let text = found.to_string();
    assert_eq!(text.lines().count(), 101);
    assert!(
        text.ends_with("t.yaml:1:301: and 50 more problems not shown"),
        "{text}"
    );
}

#[test]
fn columns_count_bytes_and_nested_positions_are_exact() {
    // `é` is two bytes.
    assert_eq!(
        problems("é ${U}".as_bytes(), &mut usual(), &strict()),
        [(1, 4, ProblemKind::Unset { name: name("U") })]
    );
    let found = problems(b"top\r\n${A:-x}${U:-\n  ${V} $W}", &mut usual(), &strict());
    assert_eq!(
        found,
        [
            (3, 3, ProblemKind::Unset { name: name("V") }),
            (3, 8, ProblemKind::Unset { name: name("W") })
        ]
    );
}

#[test]
fn errors_never_contain_values() {
    let secret = "s3cr3t&/#?@:x y";
    let mut vars = vars(&[("S", secret), ("E", ""), ("BIG", &"s3cr3t".repeat(3_000_000))]);
    let template = b"${S%x} ${S:?} ${E:?} ${U?$S} ${S:0:2} ${#S} ${S} ${N:=$BIG$BIG$BIG} $U ${S";
    let options = Options {
        strict: true,
        no_empty: true,
        ..Options::default()
    };
    let error = try_render(template, &mut vars, &options).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert_eq!(error.to_string().lines().count(), 8, "{error}");
}

#[test]
fn an_allow_list_touches_only_allowed_names() {
    let options = only("A,APP_*");
    let mut vars = vars(&[("A", "aa"), ("APP_X", "x"), ("HOME", "/root"), ("B", "bb")]);
    let script = "#!/bin/sh\necho $1 \"$@\" $HOME ${HOME} ${PATH%%:*} $$ $(id) ${#B} ${!B} ${B:-$A} ${B\n";
    assert_eq!(
        ok_with(script, &mut vars, &options),
        script,
        "nothing allowed is referenced"
    );
    assert_eq!(
        ok_with(
            "$A ${APP_X} ${A:-d} ${U_APP:-d} ${APP_Y:-$B}",
            &mut vars,
            &options
        ),
        "aa x aa ${U_APP:-d} $B"
    );
    // `$$` stays `$$` except before an allowed name, where it escapes it.
    assert_eq!(
        ok_with("$$ $$B $${B} $$A $${A} $${APP_X:-x} $$$A", &mut vars, &options),
        "$$ $$B $${B} $A ${A} ${APP_X:-x} $$aa"
    );
    // Allowed names are checked as before.
    let found = problems(
        b"$HOME ${A%x} ${B%x} ${APP_Q} ${A",
        &mut vars,
        &Options {
            strict: true,
            ..options.clone()
        },
    );
    assert_eq!(
        found,
        [
            (
                1,
                7,
                ProblemKind::UnknownOperator {
                    name: name("A"),
                    operator: name("%")
                }
            ),
            (1, 21, ProblemKind::Unset { name: name("APP_Q") }),
            (1, 30, ProblemKind::Unterminated),
        ]
    );
    // A not-allowed expression too long to buffer is copied as it streams by.
    let mut long = b"${HOME:-".to_vec();
    long.extend(std::iter::repeat_n(b'$', pitcrew_template::MAX_EXPRESSION * 2));
    long.extend_from_slice(b"} $A");
    let (out, _) = try_render(&long, &mut vars, &options).unwrap();
    assert_eq!(out[..out.len() - 2], long[..long.len() - 2]);
    assert!(out.ends_with(b"aa"));
}

#[test]
fn an_empty_allow_list_changes_nothing() {
    let options = Options {
        allow: Allow::names(Vec::new()),
        ..Options::default()
    };
    let text = "$A ${A} $$ $$A ${A:-x} ${A%x} ${A";
    assert_eq!(ok_with(text, &mut usual(), &options), text);
}

#[test]
fn references_lists_names_in_order_with_duplicates() {
    let found = references(b"$A ${B} $A ${C:-$D${E:+x}} $$F $${G} ${H?$I} ${J%x} ${#K} $1 ${ ${L");
    assert_eq!(found, ["A", "B", "A", "C", "D", "E", "H", "J"]);
    assert_eq!(references(b"$A ${B}"), ["A", "B"]);
    assert!(references(b"").is_empty());
}

struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied"))
    }
}

struct FailingWriter;

impl Write for FailingWriter {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
    }
}

#[test]
fn read_and_write_failures_name_the_input_and_map_to_exit_codes() {
    let error = render(
        FailingReader,
        Vec::new(),
        "app.yaml",
        &mut usual(),
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "cannot read app.yaml: denied");
    assert_eq!(error.exit_code().code(), 66);
    let error = render(
        &b"$A"[..],
        FailingWriter,
        "app.yaml",
        &mut usual(),
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "cannot write output: disk full");
    assert_eq!(error.exit_code().code(), 74);
    let error = render(
        &b"${A"[..],
        Vec::new(),
        "app.yaml",
        &mut usual(),
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(error.exit_code().code(), 78);
}

#[test]
fn an_empty_input_gives_an_empty_output() {
    let (out, report) = try_render(b"", &mut usual(), &strict()).unwrap();
    assert!(out.is_empty());
    assert_eq!(report, Report::default());
}
