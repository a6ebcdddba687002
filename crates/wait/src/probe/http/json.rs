//! `--http-json` conditions: a path into the JSON body and what must hold there.
//!
//! The forms are those of wait4x and the Spring/Quarkus health documents they are used on:
//! `PATH=VALUE`, `PATH!=VALUE`, or a bare `PATH` (present, and neither `false` nor `null`).
//! A path is keys joined by dots with array indexes in brackets, `components.db.status`,
//! `checks[0].healthy`; a key holding a dot or a bracket is quoted, `["a.b"]`,
//! `details["db:main"].status`. VALUE compares to a JSON string by its text and to a number,
//! a boolean or null by its JSON spelling, so `status=UP`, `ready=true` and `count=3` all read
//! as written; a quoted VALUE (`version="3"`) matches strings only.
//!
//! A path that leads nowhere (a missing key, an index past the end, a key looked up in a
//! string) fails every form, `!=` included: a document without the field is not the
//! document the condition was written for.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// The forms, for messages about a bad `--http-json`.
const FORM: &str = "expected PATH=VALUE, PATH!=VALUE or PATH, e.g. status=UP, \
                    components.db.status=UP, checks[0].healthy=true or [\"a.b\"]!=null";

/// Longest JSON value text a reason shows.
const SHOWN_VALUE: usize = 100;

/// One `--http-json` condition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    path: Path,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// Present, and neither `false` nor `null`.
    Truthy,
    Equals(Expected),
    NotEquals(Expected),
}

/// A VALUE as typed, and whether it was quoted (then only a string can match it).
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    text: String,
    string_only: bool,
}

/// A path: the steps from the document's root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Condition, String> {
        let fail = |detail: &str| format!("invalid --http-json {text:?}: {detail}; {FORM}");
        let trimmed = text.trim();
        let (path, rest) = parse_path(trimmed).map_err(|detail| fail(&detail))?;
        let requirement = if rest.is_empty() {
            Test::Truthy
        } else if let Some(value) = rest.strip_prefix("!=") {
            Test::NotEquals(parse_expected(value).map_err(|detail| fail(&detail))?)
        } else if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
            // `==` is what a programmer's fingers type; a VALUE that starts with `=` is quoted.
            Test::Equals(parse_expected(value).map_err(|detail| fail(&detail))?)
        } else {
            return Err(fail(&format!(
                "{:?} after the path is not =VALUE or !=VALUE",
                rest.chars().take(20).collect::<String>()
            )));
        };
        Ok(Condition {
            path,
            test: requirement,
        })
    }
}

/// Reads a path from the start of `text`; returns it and what follows it (the operator).
fn parse_path(text: &str) -> Result<(Path, &str), String> {
    let mut steps = Vec::new();
    let mut rest = text;
    loop {
        let first = steps.is_empty();
        if let Some(inside) = rest.strip_prefix('[') {
            let (step, after) = parse_bracket(inside)?;
            steps.push(step);
            rest = after;
        } else if first || rest.starts_with('.') {
            let after_dot = if first { rest } else { &rest[1..] };
            if let Some(inside) = after_dot.strip_prefix('[') {
                // `a.["b"]`: the dot is redundant, but harmless.
                let (step, after) = parse_bracket(inside)?;
                steps.push(step);
                rest = after;
            } else {
                let end = after_dot
                    .find(['.', '[', ']', '=', '!', '"'])
                    .unwrap_or(after_dot.len());
                let key = after_dot[..end].trim();
                if key.is_empty() {
                    return Err(if first {
                        "no path".to_owned()
                    } else {
                        format!("an empty key at {:?}", shorten(after_dot, 20))
                    });
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &after_dot[end..];
            }
        } else {
            break;
        }
        if rest.is_empty() || rest.starts_with('=') || rest.starts_with("!=") {
            break;
        }
        if !rest.starts_with(['.', '[']) {
            return Err(format!("unexpected {:?} in the path", shorten(rest, 20)));
        }
    }
    Ok((Path(steps), rest.trim_start()))
}

/// Reads `0]` or `"key"]` (after the `[`).
fn parse_bracket(text: &str) -> Result<(Step, &str), String> {
    if text.starts_with('"') {
        let (key, length) = json_string_prefix(text)
            .ok_or_else(|| format!("an unterminated quoted key at {:?}", shorten(text, 20)))?;
        let after = text[length..]
            .strip_prefix(']')
            .ok_or_else(|| "a quoted key must be followed by `]`".to_owned())?;
        return Ok((Step::Key(key), after));
    }
    let end = text.find(']').ok_or_else(|| "`[` without `]`".to_owned())?;
    let index = &text[..end];
    if index.is_empty() || !index.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "[{index}] is not an array index; quote keys in brackets, [\"{index}\"]"
        ));
    }
    let index = index
        .parse()
        .map_err(|_| format!("the index [{index}] is too large"))?;
    Ok((Step::Index(index), &text[end + 1..]))
}

/// A JSON string literal at the start of `text`: its value and its length in bytes.
fn json_string_prefix(text: &str) -> Option<(String, usize)> {
    let mut escaped = false;
    for (offset, character) in text.char_indices().skip(1) {
        match (escaped, character) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                let literal = &text[..=offset];
                return serde_json::from_str::<String>(literal)
                    .ok()
                    .map(|value| (value, literal.len()));
            }
            _ => {}
        }
    }
    None
}

fn parse_expected(text: &str) -> Result<Expected, String> {
    let text = text.trim();
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        let value = serde_json::from_str::<String>(text)
            .map_err(|err| format!("the quoted value is not a JSON string ({err})"))?;
        return Ok(Expected {
            text: value,
            string_only: true,
        });
    }
    Ok(Expected {
        text: text.to_owned(),
        string_only: false,
    })
}

impl Condition {
    /// Whether the condition holds in `document`; if not, why, as the end of a reason
    /// ("JSON status is \"DOWN\" (expected \"UP\")", "JSON has no components.db").
    pub fn check(&self, document: &Value) -> Result<(), String> {
        let value = self.path.find(document)?;
        match &self.test {
            Test::Truthy => match value {
                Value::Null | Value::Bool(false) => Err(format!("JSON {} is {value}", self.path)),
                _ => Ok(()),
            },
            Test::Equals(expected) if expected.matches(value) => Ok(()),
            Test::Equals(expected) => Err(format!(
                "JSON {} is {} (expected {expected})",
                self.path,
                show(value)
            )),
            Test::NotEquals(expected) if expected.matches(value) => Err(format!(
                "JSON {} is {} (expected anything but {expected})",
                self.path,
                show(value)
            )),
            Test::NotEquals(_) => Ok(()),
        }
    }
}

impl Path {
    /// The value at this path, or why there is none.
    fn find<'a>(&self, document: &'a Value) -> Result<&'a Value, String> {
        let mut current = document;
        for (depth, step) in self.0.iter().enumerate() {
            let next = match (step, current) {
                (Step::Key(key), Value::Object(map)) => map.get(key),
                (Step::Index(index), Value::Array(items)) => items.get(*index),
                _ => None,
            };
            let Some(next) = next else {
                let reached = Path(self.0[..=depth].to_vec());
                let holder = if depth == 0 {
                    "the document".to_owned()
                } else {
                    Path(self.0[..depth].to_vec()).to_string()
                };
                let detail = match (step, current) {
                    (Step::Key(_), Value::Object(_)) => String::new(),
                    (Step::Index(_), Value::Array(items)) => {
                        format!(" ({holder} has {} element{})", items.len(), plural(items.len()))
                    }
                    (_, other) => format!(" ({holder} is {})", type_name(other)),
                };
                return Err(format!("JSON has no {reached}{detail}"));
            };
            current = next;
        }
        Ok(current)
    }
}

impl Expected {
    fn matches(&self, value: &Value) -> bool {
        match value {
            Value::String(text) => *text == self.text,
            _ if self.string_only => false,
            Value::Number(number) => number_equals(number, &self.text),
            Value::Bool(flag) => self.text == if *flag { "true" } else { "false" },
            Value::Null => self.text == "null",
            Value::Array(_) | Value::Object(_) => false,
        }
    }

    /// Whether the text is spelled like a JSON number, boolean or null.
    fn is_json_scalar(&self) -> bool {
        !self.string_only
            && (matches!(self.text.as_str(), "true" | "false" | "null")
                || serde_json::from_str::<serde_json::Number>(&self.text).is_ok())
    }
}

/// `3` matches `3`, `3.0` and `3e0`; integers compare exactly (an `f64` cannot tell large ones
/// apart), anything else numerically.
// Exact float equality is meant: both sides are parsed from decimal text the same way, so
// `0.5` and `0.50` meet, and a margin would make `0.1=0.1000001` hold.
#[allow(clippy::float_cmp)]
fn number_equals(number: &serde_json::Number, text: &str) -> bool {
    let Ok(expected) = serde_json::from_str::<serde_json::Number>(text) else {
        return false;
    };
    if let (Some(left), Some(right)) = (number.as_i64(), expected.as_i64()) {
        return left == right;
    }
    if let (Some(left), Some(right)) = (number.as_u64(), expected.as_u64()) {
        return left == right;
    }
    if number.is_f64() || expected.is_f64() {
        return number
            .as_f64()
            .zip(expected.as_f64())
            .is_some_and(|(left, right)| left == right);
    }
    // One is a negative integer, the other one too large for i64: different.
    false
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_json_scalar() {
            f.write_str(&self.text)
        } else {
            f.write_str(&shorten(
                &Value::String(self.text.clone()).to_string(),
                SHOWN_VALUE,
            ))
        }
    }
}

impl fmt::Display for Path {
    /// As typed, in the simplest form: `components.db.status`, `checks[0]`, `["a.b"].c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                Step::Index(index) => write!(f, "[{index}]")?,
                Step::Key(key) if is_plain_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Step::Key(key) => write!(f, "[{}]", Value::String(key.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.trim() == key
        && !key.contains(['.', '[', ']', '=', '!', '"'])
        && !key.chars().any(char::is_control)
}

/// A JSON value for a reason: its JSON text, bounded.
fn show(value: &Value) -> String {
    shorten(&value.to_string(), SHOWN_VALUE)
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(limit).collect();
    short.push('…');
    short
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(text: &str) -> Condition {
        text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn document() -> Value {
        serde_json::from_str(
            r#"{
                "status": "UP",
                "components": {"db": {"status": "UP", "details": {"pool": 5}}},
                "checks": [{"name": "db", "healthy": true}, {"name": "cache", "healthy": false}],
                "count": 3, "ratio": 0.5, "big": 18446744073709551615, "negative": -2,
                "ready": true, "maintenance": false, "note": null, "empty": "",
                "a.b": {"c[0]": "dotted"}, "version": "3", "flag": "true"
            }"#,
        )
        .unwrap()
    }

    fn holds(text: &str) -> Result<(), String> {
        condition(text).check(&document())
    }

    #[test]
    fn paths_parse_into_keys_and_indexes() {
        let key = |name: &str| Step::Key(name.to_owned());
        assert_eq!(condition("status").path, Path(vec![key("status")]));
        assert_eq!(
            condition("components.db.status=UP").path,
            Path(vec![key("components"), key("db"), key("status")])
        );
        assert_eq!(
            condition("checks[1].healthy").path,
            Path(vec![key("checks"), Step::Index(1), key("healthy")])
        );
        assert_eq!(
            condition(r#"["a.b"]["c[0]"]=dotted"#).path,
            Path(vec![key("a.b"), key("c[0]")])
        );
        assert_eq!(
            condition(r#"x.["say \"hi\""]"#).path,
            Path(vec![key("x"), key("say \"hi\"")])
        );
        assert_eq!(condition("[0].ok").path, Path(vec![Step::Index(0), key("ok")]));
        assert_eq!(condition("  status = UP ").test, condition("status=UP").test);
    }

    #[test]
    fn operators_and_values_parse() {
        let expected = |text: &str, string_only| Expected {
            text: text.to_owned(),
            string_only,
        };
        assert_eq!(condition("ok").test, Test::Truthy);
        assert_eq!(condition("s=UP").test, Test::Equals(expected("UP", false)));
        assert_eq!(
            condition("s!=DOWN").test,
            Test::NotEquals(expected("DOWN", false))
        );
        assert_eq!(condition("s=").test, Test::Equals(expected("", false)));
        assert_eq!(condition("s==UP").test, Test::Equals(expected("UP", false)));
        assert_eq!(condition(r#"s="=UP""#).test, Test::Equals(expected("=UP", true)));
        assert_eq!(condition("s=a=b").test, Test::Equals(expected("a=b", false)));
        assert_eq!(
            condition(r#"s=" UP ""#).test,
            Test::Equals(expected(" UP ", true))
        );
        assert_eq!(condition(r#"["k=v"]=1"#).test, Test::Equals(expected("1", false)));
    }

    #[test]
    fn bad_conditions_name_the_value_and_the_forms() {
        for (text, detail) in [
            ("", "no path"),
            ("=UP", "no path"),
            ("a..b", "an empty key"),
            ("a.", "an empty key"),
            ("checks[x]", "[x] is not an array index"),
            ("checks[-1]", "[-1] is not an array index"),
            ("checks[0", "`[` without `]`"),
            (r#"["a.b"=1"#, "followed by `]`"),
            (r#"["a.b]"#, "unterminated quoted key"),
            ("a]b", "unexpected \"]b\""),
            ("status!UP", "unexpected \"!UP\" in the path"),
            (r#"s="a\x""#, "not a JSON string"),
            ("checks[99999999999999999999999]", "too large"),
        ] {
            let err = text.parse::<Condition>().unwrap_err();
            assert!(
                err.starts_with(&format!("invalid --http-json {text:?}: ")) && err.contains(FORM),
                "{text}: {err}"
            );
            assert!(err.contains(detail), "{text}: {err}");
        }
    }

    #[test]
    fn values_compare_by_text_and_json_spelling() {
        for text in [
            "status=UP",
            "components.db.status=UP",
            "components.db.details.pool=5",
            "checks[0].healthy=true",
            "checks[1].healthy=false",
            "checks[1].name=cache",
            "count=3",
            "count=3.0",
            "count=3e0",
            "ratio=0.5",
            "big=18446744073709551615",
            "negative=-2",
            "note=null",
            "empty=",
            r#"["a.b"]["c[0]"]=dotted"#,
            "version=3",
            r#"version="3""#,
            "flag=true",
            "status!=DOWN",
            "count!=4",
            "ready",
            "status",
            "empty",
            "count",
            "components",
            "checks[1]",
        ] {
            holds(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        }
    }

    #[test]
    fn failures_say_what_was_found() {
        for (text, reason) in [
            ("status=DOWN", r#"JSON status is "UP" (expected "DOWN")"#),
            (
                "status!=UP",
                r#"JSON status is "UP" (expected anything but "UP")"#,
            ),
            ("count=4", "JSON count is 3 (expected 4)"),
            (
                "big=18446744073709551614",
                "JSON big is 18446744073709551615 (expected 18446744073709551614)",
            ),
            (
                "negative=18446744073709551614",
                "JSON negative is -2 (expected 18446744073709551614)",
            ),
            ("ready=yes", r#"JSON ready is true (expected "yes")"#),
            (r#"count="3""#, r#"JSON count is 3 (expected "3")"#),
            ("note=", r#"JSON note is null (expected "")"#),
            ("maintenance", "JSON maintenance is false"),
            ("note", "JSON note is null"),
            (
                "checks[0]=x",
                r#"JSON checks[0] is {"healthy":true,"name":"db"} (expected "x")"#,
            ),
            ("components.cache.status=UP", "JSON has no components.cache"),
            (
                "checks[2].healthy",
                "JSON has no checks[2] (checks has 2 elements)",
            ),
            ("status.code=200", "JSON has no status.code (status is a string)"),
            (
                "components[0]",
                "JSON has no components[0] (components is an object)",
            ),
            ("[0]", "JSON has no [0] (the document is an object)"),
            (r#"["a.b"].c"#, r#"JSON has no ["a.b"].c"#),
            ("status!=DOWN.x", ""),
        ] {
            let err = holds(text).err();
            if reason.is_empty() {
                // `!=` with a value that merely looks like a path: the value is "DOWN.x".
                assert_eq!(err, None, "{text}");
            } else {
                assert_eq!(err.as_deref(), Some(reason), "{text}");
            }
        }
        let root_array: Value = serde_json::from_str("[1]").unwrap();
        assert_eq!(
            condition("[3]").check(&root_array).unwrap_err(),
            "JSON has no [3] (the document has 1 element)"
        );
    }

    #[test]
    fn shown_values_are_bounded() {
        let long: Value = serde_json::json!({ "s": "x".repeat(5000) });
        let err = condition("s=y").check(&long).unwrap_err();
        assert!(err.chars().count() < 200, "{err}");
        assert!(err.contains('…'), "{err}");
    }
}
