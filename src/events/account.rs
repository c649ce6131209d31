//! The account events (SPEC §5), version 1: `loan_id` is `null`,
//! `user_id` the account, and no `actor_id` (the admin is `changed_by`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{Envelope, Payload, to_the_millisecond};

/// The events of a user account, tagged by `type`, each with its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    /// A user signed up (or an admin was created).
    #[serde(rename = "user.registered")]
    Registered(UserRegistered),
    /// A login was refused.
    #[serde(rename = "user.login_failed")]
    LoginFailed(LoginFailed),
    /// An admin changed a user's role.
    #[serde(rename = "user.role_changed")]
    RoleChanged(RoleChanged),
    /// An admin deactivated a user.
    #[serde(rename = "user.deactivated")]
    Deactivated(UserDeactivated),
}

impl Payload for AccountEvent {
    const TYPES: &'static [&'static str] = &[
        "user.registered",
        "user.login_failed",
        "user.role_changed",
        "user.deactivated",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Registered(_) => "user.registered",
            Self::LoginFailed(_) => "user.login_failed",
            Self::RoleChanged(_) => "user.role_changed",
            Self::Deactivated(_) => "user.deactivated",
        }
    }
}

impl AccountEvent {
    /// The envelope of this event about `user_id` (`None`: a failed login
    /// for an unknown e-mail), with a fresh event id.
    pub fn envelope(self, user_id: Option<Uuid>, occurred_at: DateTime<Utc>) -> Envelope<Self> {
        Envelope {
            event_id: Uuid::now_v7(),
            payload: self,
            loan_id: None,
            user_id,
            occurred_at: to_the_millisecond(occurred_at),
            actor_id: None,
        }
    }
}

/// `data` of `user.registered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    /// The account's e-mail address.
    pub email: String,
    /// The account's username.
    pub username: String,
    /// `USER`, `MANAGER` or `ADMIN`.
    pub role: String,
}

/// `data` of `user.login_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoginFailed {
    /// The e-mail address tried.
    pub email: String,
    /// `unknown_email`, `deactivated` or `wrong_password`.
    pub reason: String,
    /// The caller's IP address.
    pub ip: String,
}

/// `data` of `user.role_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RoleChanged {
    /// The role before.
    pub from: String,
    /// The role now.
    pub to: String,
    /// The admin who changed it (`null`: the command line).
    pub changed_by: Option<Uuid>,
}

/// `data` of `user.deactivated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserDeactivated {
    /// The admin who deactivated the account.
    pub changed_by: Uuid,
}
