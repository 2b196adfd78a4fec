//! Identifiers: the external ids callers use on the wire, and the opaque
//! internal ids that data rooms are expressed in.

use std::fmt;

use uuid::Uuid;

/// The longest external id accepted, in bytes (the vendor's column width).
pub const EXT_ID_MAX_BYTES: usize = 255;

/// Which kind of external id failed to parse; part of [`ExtIdError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtIdKind {
    /// A client's external id.
    Client,
    /// A user's external id.
    User,
    /// A credential's external id.
    Credential,
    /// A unit's external id.
    Unit,
}

impl ExtIdKind {
    /// The wire name of the field, as in the vendor's path parameters.
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Client => "clientExtId",
            Self::User => "userExtId",
            Self::Credential => "credentialExtId",
            Self::Unit => "unitExtId",
        }
    }
}

/// Why a string is not a valid external id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtIdError {
    /// The id is the empty string.
    #[error("{} must not be empty", .0.field_name())]
    Empty(ExtIdKind),
    /// The id is longer than [`EXT_ID_MAX_BYTES`].
    #[error("{field} must be at most {EXT_ID_MAX_BYTES} bytes, got {len}", field = .0.field_name(), len = .1)]
    TooLong(ExtIdKind, usize),
    /// The id contains a control character (including NUL).
    #[error("{} must not contain control characters", .0.field_name())]
    ControlCharacter(ExtIdKind),
}

fn validate_ext_id(kind: ExtIdKind, value: &str) -> Result<(), ExtIdError> {
    if value.is_empty() {
        return Err(ExtIdError::Empty(kind));
    }
    if value.len() > EXT_ID_MAX_BYTES {
        return Err(ExtIdError::TooLong(kind, value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(ExtIdError::ControlCharacter(kind));
    }
    Ok(())
}

macro_rules! ext_id {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most [`EXT_ID_MAX_BYTES`] bytes, no control characters.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an external id, rejecting empty, over-long and control-character input.
            pub fn parse(value: impl Into<String>) -> Result<Self, ExtIdError> {
                let value = value.into();
                validate_ext_id($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as it appears on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ExtIdError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }
    };
}

ext_id!(
    /// External id of a client (tenant), as in `{clientExtId}`.
    ClientExtId,
    ExtIdKind::Client
);
ext_id!(
    /// External id of a user, unique within its client, as in `{userExtId}`.
    UserExtId,
    ExtIdKind::User
);
ext_id!(
    /// External id of a credential, unique within its client.
    CredentialExtId,
    ExtIdKind::Credential
);
ext_id!(
    /// External id of an organisational unit, unique within its client.
    UnitExtId,
    ExtIdKind::Unit
);

macro_rules! internal_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

internal_id!(
    /// Storage identity of a client; data rooms list these.
    ClientId
);
internal_id!(
    /// Storage identity of a unit; data rooms list these.
    UnitId
);
internal_id!(
    /// Storage identity of a credential; the repository stores challenges by it.
    CredentialId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_keeps_them_verbatim() {
        let id = ClientExtId::parse("client-123").unwrap();
        assert_eq!(id.as_str(), "client-123");
        assert_eq!(id.to_string(), "client-123");
        assert_eq!(UserExtId::parse("jürg ü").unwrap().as_str(), "jürg ü");
    }

    #[test]
    fn rejects_empty_long_and_control_input_with_field_name() {
        assert_eq!(
            UserExtId::parse(""),
            Err(ExtIdError::Empty(ExtIdKind::User))
        );
        let long = "x".repeat(EXT_ID_MAX_BYTES + 1);
        let err = ClientExtId::parse(long).unwrap_err();
        assert_eq!(err, ExtIdError::TooLong(ExtIdKind::Client, 256));
        assert_eq!(
            err.to_string(),
            "clientExtId must be at most 255 bytes, got 256"
        );
        assert!(ClientExtId::parse("x".repeat(EXT_ID_MAX_BYTES)).is_ok());
        assert_eq!(
            CredentialExtId::parse("a\0b"),
            Err(ExtIdError::ControlCharacter(ExtIdKind::Credential))
        );
        assert!(UnitExtId::parse("line\nbreak").is_err());
    }

    #[test]
    fn byte_limit_counts_bytes_not_characters() {
        // 128 two-byte characters = 256 bytes.
        assert!(UserExtId::parse("é".repeat(128)).is_err());
        assert!(UserExtId::parse("é".repeat(127)).is_ok());
    }
}
