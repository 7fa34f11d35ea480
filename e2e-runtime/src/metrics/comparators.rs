//! Comparators: what a wait expects of the sums of its metrics.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What a wait expects of the sums of its metrics, one sum per metric name, in order. Made by
/// [`equals`], [`greater`], [`greater_or_equal`], [`less`], [`less_or_equal`], [`between`],
/// [`equals_amongst_two`], [`greater_amongst_two`], [`less_amongst_two`], or
/// [`Comparator::new`].
#[derive(Clone)]
pub struct Comparator {
    description: String,
    arity: usize,
    holds: Holds,
}

type Holds = Arc<dyn Fn(&[f64]) -> bool + Send + Sync>;

impl Comparator {
    /// A comparator of `arity` sums; `description` names it in messages.
    pub fn new(
        description: impl Into<String>,
        arity: usize,
        holds: impl Fn(&[f64]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Comparator { description: description.into(), arity, holds: Arc::new(holds) }
    }

    /// How many sums it compares.
    pub fn arity(&self) -> usize {
        self.arity
    }

    /// Whether it holds for these sums; an error if there are not as many as it compares.
    pub fn check(&self, sums: &[f64]) -> Result<bool> {
        self.check_arity(sums.len())?;
        Ok((self.holds)(sums))
    }

    pub(super) fn check_arity(&self, given: usize) -> Result<()> {
        if given == self.arity {
            return Ok(());
        }
        Err(Error::ComparatorArity { comparator: self.description.clone(), expected: self.arity, given })
    }

    fn one(description: String, holds: impl Fn(f64) -> bool + Send + Sync + 'static) -> Self {
        Self::new(description, 1, move |s| holds(s[0]))
    }

    fn two(description: &str, holds: impl Fn(f64, f64) -> bool + Send + Sync + 'static) -> Self {
        Self::new(description, 2, move |s| holds(s[0], s[1]))
    }
}

impl fmt::Debug for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Comparator").field("description", &self.description).field("arity", &self.arity).finish()
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Equality where NaN equals NaN, so a wait for a NaN gauge can succeed.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The one sum equals `value` (NaN equals NaN).
pub fn equals(value: f64) -> Comparator {
    Comparator::one(format!("equals({value})"), move |v| same(v, value))
}

/// The one sum is greater than `value`.
pub fn greater(value: f64) -> Comparator {
    Comparator::one(format!("greater({value})"), move |v| v > value)
}

/// The one sum is greater than or equal to `value`.
pub fn greater_or_equal(value: f64) -> Comparator {
    Comparator::one(format!("greater_or_equal({value})"), move |v| v >= value)
}

/// The one sum is less than `value`.
pub fn less(value: f64) -> Comparator {
    Comparator::one(format!("less({value})"), move |v| v < value)
}

/// The one sum is less than or equal to `value`.
pub fn less_or_equal(value: f64) -> Comparator {
    Comparator::one(format!("less_or_equal({value})"), move |v| v <= value)
}

/// The one sum lies strictly between the bounds: `lower < sum < upper`.
pub fn between(lower: f64, upper: f64) -> Comparator {
    Comparator::one(format!("between({lower}, {upper})"), move |v| lower < v && v < upper)
}

/// The first of two sums equals the second (NaN equals NaN). Two metrics are rarely updated
/// atomically: a scrape may see one changed and not yet the other.
pub fn equals_amongst_two() -> Comparator {
    Comparator::two("equals_amongst_two", same)
}

/// The first of two sums is greater than the second.
pub fn greater_amongst_two() -> Comparator {
    Comparator::two("greater_amongst_two", |a, b| a > b)
}

/// The first of two sums is less than the second.
pub fn less_amongst_two() -> Comparator {
    Comparator::two("less_amongst_two", |a, b| a < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparators() {
        let holds = |c: Comparator, sums: &[f64]| c.check(sums).unwrap();
        assert!(holds(equals(2.0), &[2.0]) && !holds(equals(2.0), &[2.5]));
        assert!(holds(equals(f64::NAN), &[f64::NAN]), "NaN equals NaN");
        assert!(!holds(equals(1.0), &[f64::NAN]));
        assert!(holds(greater(1.0), &[2.0]) && !holds(greater(2.0), &[2.0]));
        assert!(holds(greater_or_equal(2.0), &[2.0]) && !holds(greater_or_equal(2.1), &[2.0]));
        assert!(holds(less(3.0), &[2.0]) && !holds(less(2.0), &[2.0]));
        assert!(holds(less_or_equal(2.0), &[2.0]) && !holds(less_or_equal(1.9), &[2.0]));
        assert!(holds(between(1.0, 3.0), &[2.0]));
        assert!(!holds(between(2.0, 3.0), &[2.0]) && !holds(between(1.0, 2.0), &[2.0]), "bounds excluded");
        assert!(!holds(greater(0.0), &[f64::NAN]) && !holds(less(0.0), &[f64::NAN]));
        assert!(holds(equals_amongst_two(), &[1.0, 1.0]) && !holds(equals_amongst_two(), &[1.0, 2.0]));
        assert!(holds(equals_amongst_two(), &[f64::NAN, f64::NAN]));
        assert!(holds(greater_amongst_two(), &[2.0, 1.0]) && !holds(greater_amongst_two(), &[1.0, 1.0]));
        assert!(holds(less_amongst_two(), &[1.0, 2.0]) && !holds(less_amongst_two(), &[1.0, 1.0]));
        let custom = Comparator::new("sum is 3", 2, |s| s[0] + s[1] == 3.0);
        assert!(holds(custom.clone(), &[1.0, 2.0]));
        assert_eq!(custom.to_string(), "sum is 3");
        assert_eq!(between(1.0, 2.5).to_string(), "between(1, 2.5)");
    }

    #[test]
    fn comparators_given_the_wrong_number_of_sums_are_errors() {
        for (c, sums) in [(equals(1.0), vec![]), (greater(1.0), vec![1.0, 2.0]), (equals_amongst_two(), vec![1.0])] {
            match c.check(&sums) {
                Err(Error::ComparatorArity { expected, given, .. }) => {
                    assert_eq!((expected, given), (c.arity(), sums.len()))
                }
                other => panic!("{c}: {other:?}"),
            }
        }
        let e = less_amongst_two().check(&[1.0]).unwrap_err().to_string();
        assert!(e.contains("less_amongst_two compares 2 metric(s) but was given 1"), "{e}");
    }

    #[test]
    fn each_constructor_names_itself_and_compares_one_sum() {
        let cases = [
            (equals(2.0), "equals(2)"),
            (greater(1.5), "greater(1.5)"),
            (greater_or_equal(-3.0), "greater_or_equal(-3)"),
            (less(0.25), "less(0.25)"),
            (less_or_equal(1e21), "less_or_equal(1000000000000000000000)"),
            (between(1.0, 3.0), "between(1, 3)"),
        ];
        for (c, name) in cases {
            assert_eq!((c.to_string(), c.arity()), (name.to_string(), 1));
            assert_eq!(format!("{c:?}"), format!("Comparator {{ description: {name:?}, arity: 1 }}"));
        }
    }

    #[test]
    fn the_two_metric_forms_compare_the_first_sum_with_the_second() {
        for c in [equals_amongst_two(), greater_amongst_two(), less_amongst_two()] {
            assert_eq!(c.arity(), 2, "{c}");
        }
        let holds = |c: Comparator, a: f64, b: f64| c.check(&[a, b]).unwrap();
        assert!(holds(greater_amongst_two(), 3.0, -1.0) && !holds(greater_amongst_two(), -1.0, 3.0), "order matters");
        assert!(holds(less_amongst_two(), -1.0, 3.0) && !holds(less_amongst_two(), 3.0, -1.0));
        assert!(!holds(equals_amongst_two(), f64::NAN, 1.0) && !holds(greater_amongst_two(), f64::NAN, 1.0));
        assert!(!holds(less_amongst_two(), 1.0, f64::NAN));
        assert_eq!(equals_amongst_two().to_string(), "equals_amongst_two");
    }

    #[test]
    fn infinities_compare_as_numbers() {
        let holds = |c: Comparator, v: f64| c.check(&[v]).unwrap();
        assert!(holds(greater(1e300), f64::INFINITY) && holds(equals(f64::INFINITY), f64::INFINITY));
        assert!(holds(less(-1e300), f64::NEG_INFINITY) && !holds(between(0.0, f64::INFINITY), f64::INFINITY));
        assert!(holds(greater_or_equal(f64::NEG_INFINITY), -5.0));
    }

    #[test]
    fn a_custom_comparator_of_any_arity_is_checked_like_the_others() {
        let rising = Comparator::new("rising", 3, |s| s[0] < s[1] && s[1] < s[2]);
        assert_eq!(rising.arity(), 3);
        assert!(rising.check(&[1.0, 2.0, 3.0]).unwrap() && !rising.check(&[1.0, 3.0, 2.0]).unwrap());
        for given in [0, 2, 4] {
            let e = rising.check(&vec![1.0; given]).unwrap_err();
            assert!(matches!(e, Error::ComparatorArity { expected: 3, given: g, .. } if g == given), "{e}");
        }
        assert!(rising.check_arity(3).is_ok() && rising.check_arity(1).is_err());
        let shared = rising.clone();
        assert_eq!(shared.to_string(), "rising", "a clone shares the predicate and the name");
        assert!(shared.check(&[0.0, 1.0, 2.0]).unwrap());
    }
}
