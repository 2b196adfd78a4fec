//! Authorization (spec 2.3): rights held through authorizations, each limited by a client
//! data room and a unit data room.

use std::fmt;

use crate::ids::{ClientExtId, ClientId, UnitId, UserExtId};

/// An elementary right, e.g. `AccessControl.CredentialView`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Right(&'static str);

impl Right {
    /// The right the challenge endpoint requires.
    pub const CREDENTIAL_VIEW: Right = Right("AccessControl.CredentialView");

    /// The right's name as stored in roles.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Who is calling: the user named by an authenticated token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The caller's client.
    pub client: ClientExtId,
    /// The caller's user ext id within that client.
    pub user: UserExtId,
}

/// The extent of a data room: everything, or a list of members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataRoom<T> {
    /// Covers every member.
    Global,
    /// Covers only these.
    Only(Vec<T>),
}

impl<T: PartialEq> DataRoom<T> {
    /// Whether `member` is inside.
    pub fn covers(&self, member: &T) -> bool {
        match self {
            Self::Global => true,
            Self::Only(members) => members.contains(member),
        }
    }

    /// Whether any of `members` is inside.
    pub fn covers_any(&self, members: &[T]) -> bool {
        match self {
            Self::Global => true,
            Self::Only(listed) => members.iter().any(|m| listed.contains(m)),
        }
    }
}

/// Where a target user sits, for data-room checks: its client and the path of units from the
/// client's root unit down to the user's own unit (inclusive), so a unit data room that lists
/// any ancestor covers the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetScope {
    /// The target user's client.
    pub client: ClientId,
    /// Root-first path of units ending with the user's unit.
    pub unit_path: Vec<UnitId>,
}

/// One authorization of the caller that grants the right asked about, with its data rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The clients it covers.
    pub clients: DataRoom<ClientId>,
    /// The units it covers (a unit covers all its sub-units).
    pub units: DataRoom<UnitId>,
}

impl Grant {
    /// Whether this one authorization covers both the target's client and its unit
    /// ("combined" data room).
    pub fn covers(&self, target: &TargetScope) -> bool {
        self.clients.covers(&target.client) && self.units.covers_any(&target.unit_path)
    }
}

/// What the permission checker knows of a caller for one right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerGrants {
    /// The token names no existing user.
    UnknownCaller,
    /// The caller exists; these of its authorizations grant the right (possibly none).
    Known(Vec<Grant>),
}

/// Proof that the caller may act on one target: only [`Grants::authorize`] makes one, and the
/// steps that touch a credential take it.
#[derive(Debug)]
pub struct DataroomAccess {
    _private: (),
}

/// The caller's grants of the required right, once it is known to hold the right at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// `Some` when at least one authorization grants the right (spec 3.1 step 2).
    pub fn holding(grants: Vec<Grant>) -> Option<Self> {
        (!grants.is_empty()).then_some(Self(grants))
    }

    /// Access to the target when one authorization covers it (spec 3.1 step 5).
    pub fn authorize(&self, target: &TargetScope) -> Option<DataroomAccess> {
        self.0
            .iter()
            .any(|grant| grant.covers(target))
            .then_some(DataroomAccess { _private: () })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn client(n: u128) -> ClientId {
        ClientId(Uuid::from_u128(n))
    }
    fn unit(n: u128) -> UnitId {
        UnitId(Uuid::from_u128(1000 + n))
    }

    fn target() -> TargetScope {
        // root(1) > branch(2) > desk(3)
        TargetScope {
            client: client(1),
            unit_path: vec![unit(1), unit(2), unit(3)],
        }
    }

    #[test]
    fn global_rooms_cover_everything() {
        let grant = Grant {
            clients: DataRoom::Global,
            units: DataRoom::Global,
        };
        assert!(grant.covers(&target()));
    }

    #[test]
    fn a_unit_covers_its_sub_units_but_not_its_parent() {
        let on_branch = Grant {
            clients: DataRoom::Only(vec![client(1)]),
            units: DataRoom::Only(vec![unit(2)]),
        };
        assert!(on_branch.covers(&target()));
        let above = TargetScope {
            client: client(1),
            unit_path: vec![unit(1)],
        };
        assert!(!on_branch.covers(&above));
    }

    #[test]
    fn client_and_unit_must_be_covered_by_the_same_authorization() {
        let client_only = Grant {
            clients: DataRoom::Only(vec![client(1)]),
            units: DataRoom::Only(vec![unit(9)]),
        };
        let unit_only = Grant {
            clients: DataRoom::Only(vec![client(2)]),
            units: DataRoom::Global,
        };
        let grants = Grants::holding(vec![client_only, unit_only]).unwrap();
        assert!(grants.authorize(&target()).is_none());
    }

    #[test]
    fn holding_requires_at_least_one_grant() {
        assert!(Grants::holding(vec![]).is_none());
        assert_eq!(
            Right::CREDENTIAL_VIEW.to_string(),
            "AccessControl.CredentialView"
        );
    }
}
