//! The credential states of the vendor's model (spec 2.2) and what each allows.

use std::fmt;
use std::str::FromStr;

/// The state of a credential, with the vendor's eight wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialState {
    /// Created, not yet used for a login (a new card needs a challenge for its first login).
    Initial,
    /// In normal use.
    Active,
    /// Temporarily locked after failed logins.
    TmpLocked,
    /// Locked after too many failed logins.
    FailLocked,
    /// Reset by an administrator; the next login re-activates it.
    ResetCode,
    /// Changed by an administrator.
    AdminChanged,
    /// Disabled: challenges are refused with 403.
    Disabled,
    /// Archived: never selected for a challenge.
    Archived,
}

/// Every state, in the vendor's order.
pub const ALL_STATES: [CredentialState; 8] = [
    CredentialState::Initial,
    CredentialState::Active,
    CredentialState::TmpLocked,
    CredentialState::FailLocked,
    CredentialState::ResetCode,
    CredentialState::AdminChanged,
    CredentialState::Disabled,
    CredentialState::Archived,
];

impl CredentialState {
    /// The wire name, e.g. `tmp-locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Active => "active",
            Self::TmpLocked => "tmp-locked",
            Self::FailLocked => "fail-locked",
            Self::ResetCode => "reset-code",
            Self::AdminChanged => "admin-changed",
            Self::Disabled => "disabled",
            Self::Archived => "archived",
        }
    }

    /// Whether a login may be attempted in this state, so a challenge is worth issuing
    /// (spec 3.3). Locked states answer with a null challenge; `disabled` is refused
    /// before this question is asked and `archived` is never selected.
    pub fn allows_login(self) -> bool {
        matches!(
            self,
            Self::Initial | Self::Active | Self::ResetCode | Self::AdminChanged
        )
    }
}

impl fmt::Display for CredentialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the eight state names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown credential state '{0}'")]
pub struct UnknownState(pub String);

impl FromStr for CredentialState {
    type Err = UnknownState;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| UnknownState(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_unknown_names_fail() {
        for state in ALL_STATES {
            assert_eq!(state.as_str().parse::<CredentialState>(), Ok(state));
        }
        assert_eq!(
            "Active".parse::<CredentialState>(),
            Err(UnknownState("Active".into()))
        );
        assert_eq!(CredentialState::TmpLocked.to_string(), "tmp-locked");
    }

    #[test]
    fn only_the_four_usable_states_allow_login() {
        let allowed: Vec<_> = ALL_STATES
            .into_iter()
            .filter(|s| s.allows_login())
            .collect();
        assert_eq!(
            allowed,
            [
                CredentialState::Initial,
                CredentialState::Active,
                CredentialState::ResetCode,
                CredentialState::AdminChanged
            ]
        );
    }
}
