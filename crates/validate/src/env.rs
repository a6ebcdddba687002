//! `--env` and `--env-regex`: required environment variables, and the shape of their values.
//!
//! The values are never shown, in no message and no log field: a variable that fails a check
//! is often a password from a Secret (`DB_PASSWORD does not match ^[a-z]+$`, never the value).
//! A value of only whitespace counts as empty: a Helm template that rendered `" "` is as
//! unset as one that rendered `""`.

use std::ffi::OsString;
use std::str::FromStr;

use crate::problem::{Check, Problem, Report};

/// A variable name, or a pattern where `*` matches any characters (`DB_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    fn is_pattern(&self) -> bool {
        self.0.contains('*')
    }

    /// Whether `name` matches (a plain name only itself).
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(index) => rest = &rest[index + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl FromStr for NamePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!(
                "invalid variable name {text:?}; expected a name such as DB_HOST or a pattern such as DB_*"
            ));
        }
        Ok(NamePattern(name.to_owned()))
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--env-regex NAME=RE`: the whole value of NAME (or of every variable NAME matches) must
/// match RE.
#[derive(Debug, Clone)]
pub struct EnvRegex {
    /// The variable or pattern.
    pub name: NamePattern,
    /// RE as given, for messages.
    pub text: String,
    /// RE anchored at both ends.
    regex: regex_lite::Regex,
}

impl FromStr for EnvRegex {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((name, regex)) = text.split_once('=') else {
            return Err(format!(
                "invalid --env-regex {text:?}; expected NAME=REGEX, e.g. DB_PORT=[0-9]+"
            ));
        };
        let name: NamePattern = name.parse()?;
        let anchored = regex_lite::Regex::new(&format!("^(?:{regex})$"))
            .map_err(|err| format!("invalid regex {regex:?} for {name}: {err}"))?;
        Ok(EnvRegex {
            name,
            text: regex.to_owned(),
            regex: anchored,
        })
    }
}

fn is_blank(value: &OsString) -> bool {
    value
        .to_str()
        .map_or(value.is_empty(), |text| text.trim().is_empty())
}

/// Checks `required` and `regexes` against `environment`, adding what fails to `report`.
pub fn check(
    required: &[NamePattern],
    regexes: &[EnvRegex],
    environment: &[(OsString, OsString)],
    report: &mut Report,
) {
    let lookup = |pattern: &NamePattern| -> Vec<(String, &OsString)> {
        let mut found: Vec<(String, &OsString)> = environment
            .iter()
            .filter_map(|(name, value)| {
                let name = name.to_str()?;
                pattern.matches(name).then(|| (name.to_owned(), value))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    };
    for pattern in required {
        report.variables += 1;
        let found = lookup(pattern);
        if found.is_empty() {
            let message = if pattern.is_pattern() {
                format!("no environment variable matches {pattern}")
            } else {
                format!("environment variable {pattern} is not set")
            };
            report.add(Problem::invalid(Check::Env, message));
            continue;
        }
        for (name, value) in found {
            if is_blank(value) {
                let by = if pattern.is_pattern() {
                    format!(" (matched by {pattern})")
                } else {
                    String::new()
                };
                report.add(Problem::invalid(
                    Check::Env,
                    format!("environment variable {name}{by} is set but empty"),
                ));
            }
        }
    }
    for rule in regexes {
        report.variables += 1;
        let found = lookup(&rule.name);
        if found.is_empty() {
            let message = if rule.name.is_pattern() {
                format!("no environment variable matches {} (--env-regex)", rule.name)
            } else {
                format!(
                    "environment variable {} is not set (--env-regex {}=…)",
                    rule.name, rule.name
                )
            };
            report.add(Problem::invalid(Check::EnvRegex, message));
            continue;
        }
        for (name, value) in found {
            let message = match value.to_str() {
                None => format!(
                    "environment variable {name} is not valid UTF-8, so it cannot match {}",
                    rule.text
                ),
                Some(text) if !rule.regex.is_match(text) => {
                    format!(
                        "environment variable {name} does not match {} (the whole value must)",
                        rule.text
                    )
                }
                Some(_) => continue,
            };
            report.add(Problem::invalid(Check::EnvRegex, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt as _;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn run(required: &[&str], regexes: &[&str], environment: &[(OsString, OsString)]) -> Vec<String> {
        let required: Vec<NamePattern> = required.iter().map(|r| r.parse().unwrap()).collect();
        let regexes: Vec<EnvRegex> = regexes.iter().map(|r| r.parse().unwrap()).collect();
        let mut report = Report::default();
        check(&required, &regexes, environment, &mut report);
        report.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn patterns_match_like_shell_globs() {
        let pattern: NamePattern = "DB_*".parse().unwrap();
        assert!(pattern.matches("DB_HOST") && pattern.matches("DB_"));
        assert!(!pattern.matches("XDB_HOST") && !pattern.matches("DB"));
        let pattern: NamePattern = "*_URL".parse().unwrap();
        assert!(pattern.matches("API_URL") && !pattern.matches("API_URLS"));
        let pattern: NamePattern = "A*B*C".parse().unwrap();
        assert!(pattern.matches("AxxBxxC") && pattern.matches("ABC") && !pattern.matches("AC"));
        let plain: NamePattern = "HOME".parse().unwrap();
        assert!(plain.matches("HOME") && !plain.matches("HOMES"));
        assert!("A=B".parse::<NamePattern>().is_err());
        assert!("".parse::<NamePattern>().is_err());
    }

    #[test]
    fn required_variables() {
        let environment = env(&[("DB_HOST", "db"), ("DB_USER", ""), ("DB_PASS", "  "), ("X", "1")]);
        assert_eq!(
            run(&["DB_HOST", "MISSING", "DB_*", "API_*", "X"], &[], &environment),
            [
                "environment variable MISSING is not set",
                "environment variable DB_PASS (matched by DB_*) is set but empty",
                "environment variable DB_USER (matched by DB_*) is set but empty",
                "no environment variable matches API_*",
            ]
        );
    }

    #[test]
    fn regexes_match_the_whole_value_and_never_show_it() {
        let secret = "Hunter2-s3cr3t";
        let environment = env(&[("DB_PASSWORD", secret), ("PORT", "8080x"), ("OK", "abc")]);
        let problems = run(
            &[],
            &["DB_PASSWORD=[a-z]+", "PORT=[0-9]+", "OK=[a-z]+", "GONE=x"],
            &environment,
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "environment variable DB_PASSWORD does not match [a-z]+ (the whole value must)"
        );
        for problem in &problems {
            assert!(
                !problem.contains(secret) && !problem.contains("8080x"),
                "{problem}"
            );
        }
        // Alternation is anchored as a whole: "a|b" must not accept "ax".
        assert_eq!(run(&[], &["V=a|b"], &env(&[("V", "ax")])).len(), 1);
    }

    #[test]
    fn non_utf8_values() {
        let environment = vec![(OsString::from("BIN"), OsString::from_vec(vec![0xff, 0xfe]))];
        assert!(run(&["BIN"], &[], &environment).is_empty());
        let problems = run(&[], &["BIN=.*"], &environment);
        assert!(problems[0].contains("not valid UTF-8"), "{problems:?}");
    }

    #[test]
    fn bad_rules_are_refused_naming_them() {
        assert!("NOEQUALS".parse::<EnvRegex>().unwrap_err().contains("NAME=REGEX"));
        assert!("A=[".parse::<EnvRegex>().unwrap_err().contains("\"[\""));
    }
}
