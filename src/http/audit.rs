//! `/audit-logs` (ADMIN): read and verify the audit trail. Read-only by
//! design: no route changes or deletes an entry.

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::pagination::{Page, store_page};
use super::problem::ApiError;
use super::state::app_state;
use crate::audit::AuditEntry;
use crate::audit::store::{self, Filter, ListError};
use crate::http::access::require_admin;

/// The `/audit-logs` routes.
pub fn router() -> Router {
    Router::with_path("audit-logs")
        .hoop(require_admin)
        .get(list_audit_logs)
        .push(Router::with_path("verify").get(verify_audit_logs))
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
struct AuditEntryBody {
    /// Entry id (the pagination cursor).
    id: Uuid,
    /// Position in the hash chain, from 1.
    seq: i64,
    /// The event recorded.
    event_id: Uuid,
    /// User id of whoever caused the event, or `system`.
    actor: String,
    /// The event type, e.g. `loan.approved`.
    action: String,
    /// `loan` or `user`.
    entity: String,
    /// The loan or user id.
    entity_id: Option<Uuid>,
    /// When the event happened.
    occurred_at: DateTime<Utc>,
    /// When the entry was written.
    recorded_at: DateTime<Utc>,
    /// The event's data.
    detail: serde_json::Value,
    /// Hash of the previous entry (hex sha-256).
    prev_hash: String,
    /// sha-256(prev_hash ‖ canonical entry), hex.
    hash: String,
}

impl From<AuditEntry> for AuditEntryBody {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            seq: entry.seq,
            event_id: entry.event_id,
            actor: entry.actor,
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id,
            occurred_at: entry.occurred_at,
            recorded_at: entry.recorded_at,
            detail: entry.detail,
            prev_hash: entry.prev_hash,
            hash: entry.hash,
        }
    }
}

/// The first entry where the chain breaks.
#[derive(Debug, Serialize, ToSchema)]
struct BrokenEntry {
    /// Position of the entry (or of the first missing one).
    seq: i64,
    /// The entry's id, when it exists.
    id: Option<Uuid>,
    /// The event it records, when it exists.
    event_id: Option<Uuid>,
    /// What is wrong.
    reason: String,
}

/// Result of walking the hash chain.
#[derive(Debug, Serialize, ToSchema)]
struct VerifyBody {
    /// True when every entry links to the previous one and hashes to its `hash`.
    ok: bool,
    /// Entries checked (up to the first broken one).
    checked: u64,
    /// The first broken entry; `null` when `ok`.
    first_broken: Option<BrokenEntry>,
}

/// Audit entries, newest first (ADMIN).
#[endpoint(
    tags("audit"),
    parameters(
        ("actor_id" = Option<String>, Query, description = "A user id, or `system`"),
        ("action" = Option<String>, Query, description = "Event type, e.g. loan.approved"),
        ("entity_id" = Option<Uuid>, Query, description = "The loan or user the entry is about"),
        ("from" = Option<DateTime<Utc>>, Query, description = "Events at or after this time (RFC 3339)"),
        ("to" = Option<DateTime<Utc>>, Query, description = "Events before this time (RFC 3339)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    status_codes(200, 400, 401, 403, 422),
    security(("bearer" = []))
)]
async fn list_audit_logs(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<AuditEntryBody>>, ApiError> {
    let state = app_state(depot)?;
    let page = store_page(req)?;
    let filter = filter_from_query(req)?;
    let entries = store::list(&state.db, &filter, page)
        .await
        .map_err(|error| match error {
            // Well-formed, but it names no entry: only the data can tell.
            ListError::UnknownCursor => {
                ApiError::Unprocessable("cursor names no audit entry".into())
            }
            ListError::Store(error) => ApiError::internal(error),
        })?;
    Ok(Json(Page::from_store(entries, AuditEntryBody::from)))
}

/// The filters; a parameter given empty is a value like any other (an empty
/// time or id is refused, as the document says), never "no filter".
fn filter_from_query(req: &Request) -> Result<Filter, ApiError> {
    let text = |name: &str| req.query::<String>(name);
    let time = |name: &str| {
        text(name)
            .map(|raw| {
                DateTime::parse_from_rfc3339(&raw)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| ApiError::BadRequest(format!("{name} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let actor = text("actor_id");
    if let Some(actor) = &actor
        && actor != crate::audit::entry::SYSTEM_ACTOR
        && Uuid::parse_str(actor).is_err()
    {
        return Err(ApiError::BadRequest(
            "actor_id must be a user id or 'system'".into(),
        ));
    }
    let entity_id = text("entity_id")
        .map(|raw| {
            Uuid::parse_str(&raw)
                .map_err(|_| ApiError::BadRequest("entity_id must be a UUID".into()))
        })
        .transpose()?;
    Ok(Filter {
        // Entries store the hyphenated lowercase form.
        actor: actor.map(|actor| Uuid::parse_str(&actor).map_or(actor, |id| id.to_string())),
        action: text("action"),
        entity_id,
        from: time("from")?,
        to: time("to")?,
    })
}

/// Walk the audit hash chain (ADMIN): `ok` when intact, else the first broken entry.
#[endpoint(tags("audit"), status_codes(200, 401, 403), security(("bearer" = [])))]
async fn verify_audit_logs(depot: &mut Depot) -> Result<Json<VerifyBody>, ApiError> {
    let state = app_state(depot)?;
    let verification = store::verify(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(VerifyBody {
        ok: verification.first_break.is_none(),
        checked: verification.checked,
        first_broken: verification.first_break.map(|broken| BrokenEntry {
            seq: broken.seq,
            id: broken.id,
            event_id: broken.event_id,
            reason: broken.reason,
        }),
    }))
}
