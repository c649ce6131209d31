//! `POST /admin/inbound/dead-letters/{id}/replay`: a dead letter applied now
//! if it can; replaying an applied reference changes nothing.

use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

use super::apply::{InboundPayments, Verdict};
use super::dead_letters::{self, DeadLetter, ReplayOutcome};
use crate::store::{Db, StoreError};

/// Why a replay could not be judged (nothing was recorded).
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The loan's actor failed or did not answer; the payment may or may not
    /// be recorded, and a second replay tells.
    #[error("the payment could not be applied now: {0}")]
    Unavailable(String),
}

/// Replays the dead letter `id` through `payments`; `None` if there is no such dead letter.
pub async fn replay(
    db: &Db,
    payments: &InboundPayments,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<DeadLetter>, ReplayError> {
    let Some(letter) = dead_letters::find(db, id).await? else {
        return Ok(None);
    };
    let (outcome, detail) = match payments.apply(&letter.payload).await {
        Verdict::Applied => (ReplayOutcome::Applied, None),
        Verdict::AlreadyApplied => (ReplayOutcome::AlreadyApplied, None),
        Verdict::NotYet { reason, .. } | Verdict::Never { reason, .. } => {
            (ReplayOutcome::NotApplied, Some(reason))
        }
        Verdict::Failed { reason } => return Err(ReplayError::Unavailable(reason)),
    };
    Ok(dead_letters::record_replay(db, id, outcome, detail.as_deref(), now).await?)
}
