//! The OTP policy that applies to a credential (one per client in this model).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::card::CellIndex;
use crate::label::LabelFormat;

/// OTP policy settings; every field has the vendor's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtpPolicy {
    /// `coordinateCardFormat`: label cells `B7` (true) or `019` (false, the default).
    pub coordinate_card_format: bool,
    /// `challengeLifetime`: how long an issued challenge is re-served instead of drawing a
    /// new cell (spec 3.6). Default 120 s; zero draws a new cell on every call.
    pub challenge_lifetime: Duration,
    /// `lowOnChallengesThreshold`: below this many unused cells the card is reported as low.
    /// Default 20.
    pub low_on_challenges_threshold: u16,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        Self {
            coordinate_card_format: false,
            challenge_lifetime: Duration::from_secs(120),
            low_on_challenges_threshold: 20,
        }
    }
}

impl OtpPolicy {
    /// The label format this policy selects.
    pub fn label_format(&self) -> LabelFormat {
        LabelFormat::from_coordinate_flag(self.coordinate_card_format)
    }
}

/// A challenge stored on a credential: which cell was asked for, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingChallenge {
    /// The cell asked for.
    pub cell: CellIndex,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

impl PendingChallenge {
    /// Whether it is still pending at `now`: issued less than `lifetime` ago. A zero lifetime
    /// means never pending. A challenge stamped in the future (clock skew between replicas)
    /// counts as pending until `issued_at + lifetime`.
    pub fn is_pending(&self, now: DateTime<Utc>, lifetime: Duration) -> bool {
        let Ok(lifetime) = chrono::TimeDelta::from_std(lifetime) else {
            return true; // a lifetime too long to represent never ends
        };
        !lifetime.is_zero()
            && self
                .issued_at
                .checked_add_signed(lifetime)
                .is_none_or(|expires| now < expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::GridSize;
    use chrono::TimeDelta;

    fn pending_at(issued_at: DateTime<Utc>) -> PendingChallenge {
        PendingChallenge {
            cell: GridSize::DEFAULT.cell(3).unwrap(),
            issued_at,
        }
    }

    #[test]
    fn defaults_are_the_vendors() {
        let policy = OtpPolicy::default();
        assert!(!policy.coordinate_card_format);
        assert_eq!(policy.label_format(), LabelFormat::Sequential);
        assert_eq!(policy.challenge_lifetime, Duration::from_secs(120));
        assert_eq!(policy.low_on_challenges_threshold, 20);
    }

    #[test]
    fn pending_until_exactly_the_lifetime_has_passed() {
        let issued = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let challenge = pending_at(issued);
        let lifetime = Duration::from_secs(120);
        let tick = TimeDelta::nanoseconds(1);
        assert!(challenge.is_pending(issued, lifetime));
        assert!(challenge.is_pending(issued + TimeDelta::seconds(120) - tick, lifetime));
        assert!(!challenge.is_pending(issued + TimeDelta::seconds(120), lifetime));
        assert!(!challenge.is_pending(issued + TimeDelta::seconds(121), lifetime));
        assert!(challenge.is_pending(issued - TimeDelta::seconds(5), lifetime));
    }

    #[test]
    fn zero_lifetime_is_never_pending() {
        let issued = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(!pending_at(issued).is_pending(issued, Duration::ZERO));
    }
}
