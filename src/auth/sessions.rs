//! Refresh-token sessions: opaque 256-bit tokens stored as SHA-256 hashes,
//! rotated on every use; a reused token revokes its whole family.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use uuid::Uuid;

use super::changes;
use crate::store::{Db, StoreError};
use crate::store::{with_read_pool, with_tx};

/// Bytes of randomness in a refresh token.
const TOKEN_BYTES: usize = 32;

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was valid: it is now used, and this one replaces it.
    Rotated {
        /// The token's owner.
        user_id: Uuid,
        /// The new refresh token (same family).
        token: String,
        /// The family, so a failed follow-up check can revoke it.
        family_id: Uuid,
    },
    /// The token had been used or revoked before: the family is now revoked.
    Reused {
        /// The token's owner.
        user_id: Uuid,
    },
    /// Unknown or expired token.
    Invalid,
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A new login: its first refresh token and its family (the session id
/// that its access tokens carry).
#[derive(Debug)]
pub struct Started {
    /// The opaque refresh token.
    pub token: String,
    /// The family every token of this login shares.
    pub family_id: Uuid,
}

/// Starts a new family (one login) for `user_id`.
pub async fn start(
    db: &Db,
    user_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Started, StoreError> {
    let token = new_token();
    let family_id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    insert(&mut tx, family_id, user_id, &token, now, expires_at).await?;
    tx.commit().await?;
    Ok(Started { token, family_id })
}

async fn insert(
    tx: &mut crate::store::Tx,
    family_id: Uuid,
    user_id: Uuid,
    token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| {
        sqlx::query(
            "insert into refresh_tokens (id, family_id, user_id, token_hash, issued_at, \
             expires_at) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(family_id)
        .bind(user_id)
        .bind(hash(token))
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(drop)
    })?;
    Ok(())
}

#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    family_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Whether the session (refresh family) `family_id` of `user_id` still has
/// an unrevoked token.
pub async fn is_live(db: &Db, user_id: Uuid, family_id: Uuid) -> Result<bool, StoreError> {
    const SQL: &str = "select exists (select 1 from refresh_tokens \
        where family_id = $1 and user_id = $2 and revoked_at is null)";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(SQL)
            .bind(family_id)
            .bind(user_id)
            .fetch_one(pool)
            .await
    })?)
}

/// Exchanges `presented` for a new token of the same family, in one transaction.
pub async fn rotate(
    db: &Db,
    presented: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Rotation, StoreError> {
    let mut tx = db.begin().await?;
    let row: Option<TokenRow> = with_tx!(&mut tx, |conn| {
        sqlx::query_as(
            "select id, family_id, user_id, expires_at, used_at, revoked_at \
             from refresh_tokens where token_hash = $1",
        )
        .bind(hash(presented))
        .fetch_optional(conn)
        .await
    })?;
    let Some(row) = row else {
        return Ok(Rotation::Invalid);
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        revoke_family_in(&mut tx, row.family_id, row.user_id, now).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused {
            user_id: row.user_id,
        });
    }
    if row.expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    // The `used_at is null` guard makes a concurrent second use of the same
    // token lose the race and count as reuse.
    let marked = with_tx!(&mut tx, |conn| {
        sqlx::query(
            "update refresh_tokens set used_at = $1 where id = $2 and used_at is null \
             and revoked_at is null",
        )
        .bind(now)
        .bind(row.id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    if marked == 0 {
        revoke_family_in(&mut tx, row.family_id, row.user_id, now).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused {
            user_id: row.user_id,
        });
    }
    let token = new_token();
    insert(&mut tx, row.family_id, row.user_id, &token, now, expires_at).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user_id: row.user_id,
        token,
        family_id: row.family_id,
    })
}

/// Revokes the family and records the change, so its access tokens end too.
async fn revoke_family_in(
    tx: &mut crate::store::Tx,
    family_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| sqlx::query(
        "update refresh_tokens set revoked_at = $1 where family_id = $2 and revoked_at is null"
    )
    .bind(now)
    .bind(family_id)
    .execute(conn)
    .await
    .map(drop))?;
    changes::record(tx, user_id, now).await
}

/// Revokes every token of `user_id`'s family (a follow-up check failed after rotation).
pub async fn revoke_family(
    db: &Db,
    family_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    revoke_family_in(&mut tx, family_id, user_id, now).await?;
    tx.commit().await
}

/// Logout: revokes the family of `presented` if it belongs to `user_id`
/// (and so the access tokens of that login). Returns whether a live family
/// of that user was found.
pub async fn logout(
    db: &Db,
    presented: &str,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let revoked = with_tx!(&mut tx, |conn| sqlx::query(
        "update refresh_tokens set revoked_at = $1 where revoked_at is null \
         and family_id in (select family_id from refresh_tokens where token_hash = $2 \
         and user_id = $3)"
    )
    .bind(now)
    .bind(hash(presented))
    .bind(user_id)
    .execute(conn)
    .await
    .map(|done| done.rows_affected()))?;
    if revoked > 0 {
        changes::record(&mut tx, user_id, now).await?;
    }
    tx.commit().await?;
    Ok(revoked > 0)
}

/// Revokes every session of a user (deactivation) and records the change.
pub async fn revoke_all(
    tx: &mut crate::store::Tx,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| sqlx::query(
        "update refresh_tokens set revoked_at = $1 where user_id = $2 and revoked_at is null"
    )
    .bind(now)
    .bind(user_id)
    .execute(conn)
    .await
    .map(drop))?;
    changes::record(tx, user_id, now).await
}
