//! The users table: creating, finding and changing accounts, each change
//! with its event in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use super::{Email, Role, Username};
use crate::events::account::{AccountEvent, RoleChanged, UserDeactivated, UserRegistered};
use crate::store::page::{Page, PageRequest, into_page};
use crate::store::{Db, StoreError, Tx, outbox};
use crate::store::{with_read_pool, with_tx};

/// An account as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Lowercased e-mail address.
    pub email: String,
    /// Display handle.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// False once deactivated.
    pub active: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user with the stored password hash, for login only.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// argon2id PHC string.
    pub password_hash: String,
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    username: String,
    password_hash: String,
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for Credentials {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let role = Role::parse(&row.role)
            .map_err(|error| StoreError::Corrupt(format!("users.role of {}: {error}", row.id)))?;
        Ok(Self {
            user: User {
                id: row.id,
                email: row.email,
                username: row.username,
                role,
                active: row.active,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            password_hash: row.password_hash,
        })
    }
}

const SELECT_USER: &str =
    "select id, email, username, password_hash, role, active, created_at, updated_at from users";

/// Fields of a new account.
#[derive(Debug)]
pub struct NewUser {
    /// Normalized e-mail.
    pub email: Email,
    /// Display handle.
    pub username: Username,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Initial role.
    pub role: Role,
}

/// Inserts a user and its `user.registered` event in one transaction.
/// A taken e-mail or username is [`StoreError::Duplicate`].
pub async fn create(db: &Db, new_user: NewUser, now: DateTime<Utc>) -> Result<User, StoreError> {
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, |conn| {
        sqlx::query(
            "insert into users (id, email, username, password_hash, role, active, created_at, \
             updated_at) values ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id)
        .bind(new_user.email.as_str())
        .bind(new_user.username.as_str())
        .bind(&new_user.password_hash)
        .bind(new_user.role.as_str())
        .bind(true)
        .bind(now)
        .execute(conn)
        .await
        .map(drop)
    })?;
    let event = AccountEvent::Registered(UserRegistered {
        email: new_user.email.as_str().to_owned(),
        username: new_user.username.as_str().to_owned(),
        role: new_user.role.as_str().to_owned(),
    });
    outbox::insert(&mut tx, &event.envelope(Some(id), now).to_outbox()).await?;
    tx.commit().await?;
    Ok(User {
        id,
        email: new_user.email.as_str().to_owned(),
        username: new_user.username.as_str().to_owned(),
        role: new_user.role,
        active: true,
        created_at: now,
        updated_at: now,
    })
}

/// The account with this e-mail, with its password hash.
pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<Credentials>, StoreError> {
    let sql = format!("{SELECT_USER} where email = $1");
    let row: Option<UserRow> =
        with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email.as_str())
            .fetch_optional(pool)
            .await)?;
    row.map(Credentials::try_from).transpose()
}

/// The account with this id.
pub async fn find_by_id(db: &Db, id: Uuid) -> Result<Option<User>, StoreError> {
    let sql = format!("{SELECT_USER} where id = $1");
    let row: Option<UserRow> =
        with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await)?;
    Ok(row
        .map(Credentials::try_from)
        .transpose()?
        .map(|credentials| credentials.user))
}

/// Outcome of a role change or deactivation.
#[derive(Debug, PartialEq, Eq)]
pub enum UserChange {
    /// Done; the user as it is now.
    Changed(User),
    /// No such user.
    NotFound,
    /// Refused: it would leave no active ADMIN.
    LastAdmin,
}

/// Changes a user's role and records `user.role_changed` (by `changed_by`,
/// `None` for the command line). Demoting the last active ADMIN is refused.
pub async fn set_role(
    db: &Db,
    id: Uuid,
    role: Role,
    changed_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<UserChange, StoreError> {
    let mut tx = db.begin().await?;
    let Some(before) = load_for_change(&mut tx, id).await? else {
        return Ok(UserChange::NotFound);
    };
    if before.role == Role::Admin
        && role != Role::Admin
        && before.active
        && other_active_admins(&mut tx, id).await? == 0
    {
        return Ok(UserChange::LastAdmin);
    }
    with_tx!(&mut tx, |conn| sqlx::query(
        "update users set role = $1, updated_at = $2 where id = $3"
    )
    .bind(role.as_str())
    .bind(now)
    .bind(id)
    .execute(conn)
    .await
    .map(drop))?;
    // Ends the user's access tokens' old role on every instance within a second.
    crate::auth::changes::record(&mut tx, id, now).await?;
    let event = AccountEvent::RoleChanged(RoleChanged {
        from: before.role.as_str().to_owned(),
        to: role.as_str().to_owned(),
        changed_by,
    });
    outbox::insert(&mut tx, &event.envelope(Some(id), now).to_outbox()).await?;
    tx.commit().await?;
    Ok(UserChange::Changed(User {
        role,
        updated_at: now,
        ..before
    }))
}

/// Deactivates a user: no more logins or refreshes, every session revoked,
/// `user.deactivated` recorded. Deactivating the last active ADMIN is refused.
pub async fn deactivate(
    db: &Db,
    id: Uuid,
    changed_by: Uuid,
    now: DateTime<Utc>,
) -> Result<UserChange, StoreError> {
    let mut tx = db.begin().await?;
    let Some(before) = load_for_change(&mut tx, id).await? else {
        return Ok(UserChange::NotFound);
    };
    if before.role == Role::Admin && before.active && other_active_admins(&mut tx, id).await? == 0 {
        return Ok(UserChange::LastAdmin);
    }
    with_tx!(&mut tx, |conn| sqlx::query(
        "update users set active = $1, updated_at = $2 where id = $3"
    )
    .bind(false)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await
    .map(drop))?;
    // Also records the change: the user's access tokens end on every instance.
    crate::auth::sessions::revoke_all(&mut tx, id, now).await?;
    let event = AccountEvent::Deactivated(UserDeactivated { changed_by });
    outbox::insert(&mut tx, &event.envelope(Some(id), now).to_outbox()).await?;
    tx.commit().await?;
    Ok(UserChange::Changed(User {
        active: false,
        updated_at: now,
        ..before
    }))
}

/// Reads a user inside a write transaction (PostgreSQL locks the row).
async fn load_for_change(tx: &mut Tx, id: Uuid) -> Result<Option<User>, StoreError> {
    let sql = format!("{SELECT_USER} where id = $1{}", tx.row_lock());
    let row: Option<UserRow> = with_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await)?;
    Ok(row
        .map(Credentials::try_from)
        .transpose()?
        .map(|credentials| credentials.user))
}

/// Active ADMINs other than `id`, counted under lock so two concurrent
/// demotions cannot both pass the last-admin check.
async fn other_active_admins(tx: &mut Tx, id: Uuid) -> Result<usize, StoreError> {
    let sql = format!(
        "select id from users where role = 'ADMIN' and active = $1 and id <> $2{}",
        tx.row_lock()
    );
    let ids: Vec<Uuid> = with_tx!(tx, |conn| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(true)
        .bind(id)
        .fetch_all(conn)
        .await)?;
    Ok(ids.len())
}

/// One page of users, newest first.
pub async fn list(db: &Db, page: PageRequest) -> Result<Page<User>, StoreError> {
    let sql = format!("{SELECT_USER} where ($1 is null or id < $1) order by id desc limit $2");
    let rows: Vec<UserRow> = with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(pool)
        .await)?;
    let users = rows
        .into_iter()
        .map(|row| Credentials::try_from(row).map(|credentials| credentials.user))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(into_page(users, page, |user| user.id))
}
