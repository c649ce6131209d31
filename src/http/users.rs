//! `/users`: list, get, role changes, deactivation.

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body;
use super::pagination::{Page, path_id, store_page};
use super::problem::ApiError;
use super::state::app_state;
use crate::accounts::Role;
use crate::accounts::users::{self, User, UserChange};
use crate::http::access::{Principal, require_admin, require_user};

/// The `/users` routes.
pub fn router() -> Router {
    Router::with_path("users")
        .push(Router::new().hoop(require_admin).get(list_users))
        .push(
            Router::with_path("{id}")
                .hoop(require_user)
                .get(get_user)
                .push(
                    Router::with_path("role")
                        .hoop(require_admin)
                        .patch(set_role),
                )
                .push(Router::with_path("loans").get(user_loans))
                .push(
                    Router::with_path("deactivate")
                        .hoop(require_admin)
                        .post(deactivate),
                ),
        )
}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    /// Stable id.
    id: Uuid,
    /// Lowercased e-mail.
    email: String,
    /// Display handle.
    username: String,
    /// `USER`, `MANAGER` or `ADMIN`.
    role: Role,
    /// False once deactivated.
    active: bool,
    /// Creation time.
    created_at: DateTime<Utc>,
    /// Last change.
    updated_at: DateTime<Utc>,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            username: user.username,
            role: user.role,
            active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    /// The new role.
    role: Role,
}

/// List every account (ADMIN).
#[endpoint(
    tags("users"),
    parameters(("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    status_codes(200, 400, 401, 403),
    security(("bearer" = []))
)]
async fn list_users(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<UserBody>>, ApiError> {
    let state = app_state(depot)?;
    let page = users::list(&state.db, store_page(req)?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Page::from_store(page, UserBody::from)))
}

/// One account (the user themself, or staff).
#[endpoint(tags("users"), parameters(("id" = Uuid, Path, description = "User id")), status_codes(200, 401, 404), security(("bearer" = [])))]
async fn get_user(req: &mut Request, depot: &mut Depot) -> Result<Json<UserBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let id = path_id(req, "id", "user")?;
    principal.ensure_owner_or_staff(id, "user")?;
    let user = users::find_by_id(&state.db, id)
        .await
        .map_err(ApiError::internal)?;
    user.map(|user| Json(user.into()))
        .ok_or_else(|| ApiError::NotFound("user not found".into()))
}

fn change_result(change: UserChange) -> Result<Json<UserBody>, ApiError> {
    match change {
        UserChange::Changed(user) => Ok(Json(user.into())),
        UserChange::NotFound => Err(ApiError::NotFound("user not found".into())),
        UserChange::LastAdmin => Err(ApiError::Conflict(
            "this is the last active ADMIN; promote another first".into(),
        )),
    }
}

/// Change a user's role (ADMIN); the last active ADMIN cannot be demoted.
#[endpoint(tags("users"), parameters(("id" = Uuid, Path, description = "User id")), request_body = RoleRequest, status_codes(200, 401, 403, 404, 409, 422), security(("bearer" = [])))]
async fn set_role(req: &mut Request, depot: &mut Depot) -> Result<Json<UserBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let id = path_id(req, "id", "user")?;
    let request: RoleRequest = body::json(req).await?;
    let change = users::set_role(
        &state.db,
        id,
        request.role,
        Some(principal.user_id),
        Utc::now(),
    )
    .await
    .map_err(ApiError::internal)?;
    // The user's tokens carry the new role from the next request on.
    state.standing.forget(id);
    change_result(change)
}

/// Deactivate a user (ADMIN): no more logins or refreshes.
#[endpoint(tags("users"), parameters(("id" = Uuid, Path, description = "User id")), status_codes(200, 401, 403, 404, 409), security(("bearer" = [])))]
async fn deactivate(req: &mut Request, depot: &mut Depot) -> Result<Json<UserBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let id = path_id(req, "id", "user")?;
    let change = users::deactivate(&state.db, id, principal.user_id, Utc::now())
        .await
        .map_err(ApiError::internal)?;
    state.standing.forget(id);
    change_result(change)
}

/// A user's loans (the user themself, or staff).
#[endpoint(
    tags("users"),
    parameters(
        ("id" = Uuid, Path, description = "User id"),
        ("status" = Option<String>, Query, description = "Only loans in this status"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401, 404),
    security(("bearer" = []))
)]
async fn user_loans(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<super::loans::wire::LoanListBody>, ApiError> {
    let principal = Principal::of(depot)?;
    let id = path_id(req, "id", "user")?;
    principal.ensure_owner_or_staff(id, "user")?;
    super::loans::list_for(req, depot, Some(id)).await
}
