//! `/notifications`: the caller's in-app notifications.

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::pagination::{Page, path_id, store_page};
use super::problem::ApiError;
use super::state::app_state;
use crate::http::access::{Principal, require_user};
use crate::notifications::store::{self, Notification};

/// The `/notifications` routes.
pub fn router() -> Router {
    Router::with_path("notifications")
        .hoop(require_user)
        .get(list)
        .push(Router::with_path("read-all").post(read_all))
        .push(Router::with_path("{id}/read").post(read_one))
}

/// A notification.
#[derive(Debug, Serialize, ToSchema)]
struct NotificationBody {
    /// Id.
    id: Uuid,
    /// Kind, e.g. `payment.received`.
    kind: String,
    /// Title.
    title: String,
    /// Text.
    body: String,
    /// When it was created.
    created_at: DateTime<Utc>,
    /// When it was read; `null` while unread.
    read_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationBody {
    fn from(notification: Notification) -> Self {
        Self {
            id: notification.id,
            kind: notification.kind,
            title: notification.title,
            body: notification.body,
            created_at: notification.created_at,
            read_at: notification.read_at,
        }
    }
}

/// How many notifications were marked read.
#[derive(Debug, Serialize, ToSchema)]
struct ReadAllBody {
    /// Notifications that were unread before.
    marked_read: u64,
}

/// Your notifications, newest first; `?unread=true` for unread ones only.
#[endpoint(
    tags("notifications"),
    parameters(
        ("unread" = Option<bool>, Query, description = "Only unread notifications"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401),
    security(("bearer" = []))
)]
async fn list(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<NotificationBody>>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let unread_only = match req.query::<String>("unread").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("unread must be true or false".into())),
    };
    let page = store::list(&state.db, principal.user_id, unread_only, store_page(req)?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Page::from_store(page, NotificationBody::from)))
}

/// Mark one of your notifications read.
#[endpoint(tags("notifications"), parameters(("id" = Uuid, Path, description = "Notification id")), status_codes(200, 401, 404), security(("bearer" = [])))]
async fn read_one(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<NotificationBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let id = path_id(req, "id", "notification")?;
    let notification = store::mark_read(&state.db, principal.user_id, id, state.clock.now())
        .await
        .map_err(ApiError::internal)?;
    notification
        .map(|n| Json(n.into()))
        .ok_or_else(|| ApiError::NotFound("notification not found".into()))
}

/// Mark all your notifications read.
#[endpoint(tags("notifications"), status_codes(200, 401), security(("bearer" = [])))]
async fn read_all(depot: &mut Depot) -> Result<Json<ReadAllBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let marked_read = store::mark_all_read(&state.db, principal.user_id, state.clock.now())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(ReadAllBody { marked_read }))
}
