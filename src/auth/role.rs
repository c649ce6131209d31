//! The role a user holds: what the edge lets them do.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A stored or requested role that is not one of the three.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("role must be one of USER, MANAGER, ADMIN")]
pub struct UnknownRole;

/// What a user may do. Staff = MANAGER or ADMIN.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, salvo::oapi::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// A borrower: sees and acts on their own loans only.
    User,
    /// Staff: approves loans, sees every loan.
    Manager,
    /// Staff with user administration, reversals, write-offs and the audit log.
    Admin,
}

impl Role {
    /// The stored and serialized spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Manager => "MANAGER",
            Self::Admin => "ADMIN",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(raw: &str) -> Result<Self, UnknownRole> {
        match raw {
            "USER" => Ok(Self::User),
            "MANAGER" => Ok(Self::Manager),
            "ADMIN" => Ok(Self::Admin),
            _ => Err(UnknownRole),
        }
    }

    /// MANAGER or ADMIN.
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Manager | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_round_trip_and_reject_unknown_spellings() {
        for role in [Role::User, Role::Manager, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("admin").is_err());
    }
}
