//! `loan-tracker admin create`: the only way to get the first ADMIN.

use chrono::Utc;

use super::password::{self, Password};
use super::users::{self, NewUser, User, UserChange};
use super::{Email, Role, Username};
use crate::store::Db;

/// What `admin create` did.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminOutcome {
    /// A new ADMIN account was created.
    Created(User),
    /// An existing account was promoted to ADMIN (its password is unchanged).
    Promoted(User),
    /// The account already was an ADMIN.
    AlreadyAdmin(User),
}

/// Creates an ADMIN with this e-mail and password, or promotes the existing
/// account. The password policy applies in both cases, so a weak password is
/// never accepted on the command line.
pub async fn create_or_promote(
    db: &Db,
    email: &str,
    password: &str,
) -> anyhow::Result<AdminOutcome> {
    let email = Email::parse(email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
    let password =
        Password::parse(password).map_err(|error| anyhow::anyhow!("--password: {error}"))?;
    let now = Utc::now();
    if let Some(existing) = users::find_by_email(db, &email).await? {
        if existing.user.role == Role::Admin {
            return Ok(AdminOutcome::AlreadyAdmin(existing.user));
        }
        return match users::set_role(db, existing.user.id, Role::Admin, None, now).await? {
            UserChange::Changed(promoted) => Ok(AdminOutcome::Promoted(promoted)),
            other => anyhow::bail!("promoting {} failed: {other:?}", existing.user.id),
        };
    }
    let username = Username::parse(email.as_str())
        .map_err(|error| anyhow::anyhow!("--email as username: {error}"))?;
    let password_hash = password::hash(password).await?;
    let user = users::create(
        db,
        NewUser {
            email,
            username,
            password_hash,
            role: Role::Admin,
        },
        now,
    )
    .await?;
    Ok(AdminOutcome::Created(user))
}
