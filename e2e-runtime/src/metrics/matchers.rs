//! Label matchers: which series of a metric count, as in PromQL.

use std::fmt;

use regex::Regex;

use crate::error::{Error, Result};

/// Selects series by one label, as a PromQL label matcher does. A series without the label
/// matches as if its value were empty. Regexes are anchored at both ends, as in Prometheus:
/// `Matcher::regex("code", "2..")` matches `200`, not `1200`.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<std::result::Result<Regex, String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Matcher {
    fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let regex = matches!(op, MatchOp::Regex | MatchOp::NotRegex)
            .then(|| Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string()));
        Matcher { name: name.into(), op, value, regex }
    }

    /// `name="value"`: the label equals the value.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::Equal, name, value)
    }

    /// `name!="value"`: the label differs from the value.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::NotEqual, name, value)
    }

    /// `name=~"regex"`: the whole label value matches the regex. An invalid regex is reported
    /// by the call that uses the matcher.
    pub fn regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::Regex, name, regex)
    }

    /// `name!~"regex"`: the whole label value does not match the regex.
    pub fn not_regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::NotRegex, name, regex)
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a label value (empty for a missing label) is selected. An invalid regex
    /// selects nothing.
    pub fn matches(&self, label_value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => label_value == self.value,
            (MatchOp::NotEqual, _) => label_value != self.value,
            (MatchOp::Regex, Some(Ok(re))) => re.is_match(label_value),
            (MatchOp::NotRegex, Some(Ok(re))) => !re.is_match(label_value),
            _ => false,
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        match &self.regex {
            Some(Err(reason)) => Err(Error::InvalidMatcher { matcher: self.to_string(), reason: reason.clone() }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_matchers_compare_the_whole_value() {
        let (eq, ne) = (Matcher::equal("code", "200"), Matcher::not_equal("code", "200"));
        assert!(eq.matches("200") && !eq.matches("2000") && !eq.matches(""));
        assert!(!ne.matches("200") && ne.matches("500") && ne.matches(""));
        assert_eq!((eq.name(), ne.name()), ("code", "code"));
        // An equality matcher treats regex syntax as text.
        assert!(Matcher::equal("p", "a.*").matches("a.*") && !Matcher::equal("p", "a.*").matches("abc"));
    }

    #[test]
    fn regex_matchers_are_anchored_at_both_ends() {
        let re = Matcher::regex("code", "2..");
        assert!(re.matches("200") && re.matches("299"));
        assert!(!re.matches("1200") && !re.matches("2000") && !re.matches("20"));
        // The anchors hold around an alternation too: `^(?:a|b)$`, not `^a|b$`.
        let alt = Matcher::regex("x", "a|b");
        assert!(alt.matches("a") && alt.matches("b") && !alt.matches("xb") && !alt.matches("ax"));
        let nre = Matcher::not_regex("code", "2..");
        assert!(!nre.matches("200") && nre.matches("1200") && nre.matches(""));
    }

    #[test]
    fn a_missing_label_is_the_empty_value() {
        assert!(Matcher::equal("floor", "").matches(""));
        assert!(Matcher::regex("floor", ".*").matches(""));
        assert!(!Matcher::regex("floor", ".+").matches(""));
        assert!(Matcher::not_regex("floor", ".+").matches(""));
        assert!(!Matcher::not_equal("floor", "").matches(""));
    }

    #[test]
    fn an_invalid_regex_selects_nothing_and_is_reported_by_check() {
        for m in [Matcher::regex("code", "("), Matcher::not_regex("code", "[0-9")] {
            assert!(!m.matches("(") && !m.matches("") && !m.matches("200"), "{m}");
            match m.check() {
                Err(Error::InvalidMatcher { matcher, reason }) => {
                    assert_eq!(matcher, m.to_string());
                    assert!(!reason.is_empty());
                }
                other => panic!("{m}: {other:?}"),
            }
        }
        for m in [Matcher::equal("a", "("), Matcher::not_equal("a", "("), Matcher::regex("a", "\\(")] {
            assert!(m.check().is_ok(), "{m}");
        }
    }

    #[test]
    fn matchers_display_as_in_promql() {
        assert_eq!(Matcher::equal("a", "1").to_string(), r#"a="1""#);
        assert_eq!(Matcher::not_equal("b", "2").to_string(), r#"b!="2""#);
        assert_eq!(Matcher::regex("c", "x|y").to_string(), r#"c=~"x|y""#);
        assert_eq!(Matcher::not_regex("d", r"\d+").to_string(), r#"d!~"\\d+""#, "escaped as in a PromQL string");
    }
}
