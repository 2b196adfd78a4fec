//! A credential's validity period.

use chrono::{DateTime, Utc};

/// When a credential may be used: `from` is inclusive, `to` is exclusive, and either
/// bound may be open. A credential is valid at `now` iff `from <= now < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidityPeriod {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// Where an instant lies relative to a [`ValidityPeriod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Before `from`.
    NotYetValid,
    /// Inside the period.
    Valid,
    /// At or after `to`.
    Expired,
}

/// A period whose end is not after its start, so no instant is inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("validity period is empty: validTo ({to}) must be after validFrom ({from})")]
pub struct EmptyValidityPeriod {
    /// The start given.
    pub from: DateTime<Utc>,
    /// The end given.
    pub to: DateTime<Utc>,
}

impl ValidityPeriod {
    /// A period with either bound open (`None`); refuses an empty period.
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, EmptyValidityPeriod> {
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(EmptyValidityPeriod { from, to });
            }
        }
        Ok(Self { from, to })
    }

    /// A period open at both ends: always valid.
    pub fn unbounded() -> Self {
        Self::default()
    }

    /// The inclusive start, if any.
    pub fn from(&self) -> Option<DateTime<Utc>> {
        self.from
    }

    /// The exclusive end, if any.
    pub fn to(&self) -> Option<DateTime<Utc>> {
        self.to
    }

    /// Where `now` lies relative to this period.
    pub fn check(&self, now: DateTime<Utc>) -> Validity {
        if self.from.is_some_and(|from| now < from) {
            Validity::NotYetValid
        } else if self.to.is_some_and(|to| now >= to) {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).single().unwrap()
    }

    #[test]
    fn open_bounds_are_always_valid_and_empty_periods_are_refused() {
        assert_eq!(ValidityPeriod::unbounded().check(at(0)), Validity::Valid);
        assert_eq!(
            ValidityPeriod::new(Some(at(10)), None)
                .unwrap()
                .check(at(9)),
            Validity::NotYetValid
        );
        assert_eq!(
            ValidityPeriod::new(None, Some(at(10)))
                .unwrap()
                .check(at(10)),
            Validity::Expired
        );
        assert!(ValidityPeriod::new(Some(at(10)), Some(at(10))).is_err());
        assert!(ValidityPeriod::new(Some(at(11)), Some(at(10))).is_err());
    }

    proptest! {
        #[test]
        fn boundaries_from_inclusive_to_exclusive(from in -1_000_000_000i64..1_000_000_000, len in 1i64..1_000_000) {
            let (from, to) = (at(from), at(from + len));
            let period = ValidityPeriod::new(Some(from), Some(to)).unwrap();
            let tick = Duration::nanoseconds(1);
            prop_assert_eq!(period.check(from - tick), Validity::NotYetValid);
            prop_assert_eq!(period.check(from), Validity::Valid);
            prop_assert_eq!(period.check(from + tick), Validity::Valid);
            prop_assert_eq!(period.check(to - tick), Validity::Valid);
            prop_assert_eq!(period.check(to), Validity::Expired);
            prop_assert_eq!(period.check(to + tick), Validity::Expired);
        }
    }
}
