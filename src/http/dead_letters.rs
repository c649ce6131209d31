//! `/admin/inbound/dead-letters`: inbound payments that could not apply,
//! listed newest first and replayed by an ADMIN (SPEC §5).

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::pagination::{Page, path_id, store_page};
use super::problem::ApiError;
use super::state::app_state;
use crate::inbound::dead_letters::{self, DeadLetter};
use crate::inbound::{InboundPayments, ReplayError, replay};

/// The dead-letter routes (under the ADMIN-only `/admin`).
pub fn router() -> Router {
    Router::with_path("inbound/dead-letters")
        .get(list)
        .push(Router::with_path("{id}/replay").post(replay_one))
}

/// An inbound payment message that could not apply.
#[derive(Debug, Serialize, ToSchema)]
struct DeadLetterBody {
    /// Id.
    id: Uuid,
    /// The sender's reference, when the message had one.
    #[salvo(schema(example = "BANK-2026-000123"))]
    external_ref: Option<String>,
    /// Why it could not apply.
    #[salvo(schema(example = "loan 0190… is still PENDING after 20 deliveries"))]
    reason: String,
    /// The message as received (invalid UTF-8 replaced).
    message: String,
    /// When it was recorded.
    received_at: DateTime<Utc>,
    /// When it was last replayed; `null` if never.
    replayed_at: Option<DateTime<Utc>>,
    /// What the last replay did: `applied`, `already_applied` (nothing
    /// changed) or `not_applied`; `null` if never replayed.
    #[salvo(schema(example = "applied"))]
    replay_outcome: Option<String>,
    /// Why the last replay did not apply it.
    replay_detail: Option<String>,
}

impl From<DeadLetter> for DeadLetterBody {
    fn from(letter: DeadLetter) -> Self {
        Self {
            id: letter.id,
            external_ref: letter.external_ref,
            reason: letter.reason,
            message: String::from_utf8_lossy(&letter.payload).into_owned(),
            received_at: letter.received_at,
            replayed_at: letter.replayed_at,
            replay_outcome: letter.replay_outcome,
            replay_detail: letter.replay_detail,
        }
    }
}

/// Inbound payments that could not apply, newest first (ADMIN).
#[endpoint(
    tags("admin"),
    parameters(
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401, 403),
    security(("bearer" = []))
)]
async fn list(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<DeadLetterBody>>, ApiError> {
    let state = app_state(depot)?;
    let page = dead_letters::list(&state.db, store_page(req)?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Page::from_store(page, DeadLetterBody::from)))
}

/// Replay a dead letter now (ADMIN): applied if it can be; a reference
/// already recorded on its loan changes nothing (`already_applied`); one that
/// still cannot apply says why (`not_applied`). 503 when the loan cannot
/// answer now (nothing recorded; replay again).
#[endpoint(
    tags("admin"),
    parameters(("id" = Uuid, Path, description = "Dead letter id")),
    status_codes(200, 401, 403, 404, 503),
    security(("bearer" = []))
)]
async fn replay_one(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<DeadLetterBody>, ApiError> {
    let state = app_state(depot)?;
    let id = path_id(req, "id", "dead letter")?;
    let payments = InboundPayments::new(state.db.clone(), state.tree.clone(), state.clock.clone())
        .in_cluster(state.cluster.clone());
    match replay(&state.db, &payments, id, state.clock.now()).await {
        Ok(Some(letter)) => Ok(Json(letter.into())),
        Ok(None) => Err(ApiError::NotFound("dead letter not found".into())),
        Err(ReplayError::Unavailable(detail)) => Err(ApiError::Unavailable(detail)),
        Err(ReplayError::Store(error)) => Err(ApiError::internal(error)),
    }
}
