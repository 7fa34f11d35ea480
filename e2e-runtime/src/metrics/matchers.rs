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
