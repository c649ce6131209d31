//! The access rules, in one place: who is asking (the principal), and the
//! hoops and checks every route uses.
//!
//! - no or invalid token → 401 (any route that needs a user);
//! - a valid token with the wrong role → 403;
//! - another user's resource → 404 (we do not confirm it exists).

use salvo::http::header::AUTHORIZATION;
use salvo::prelude::*;
use uuid::Uuid;

use super::rate_limit::client_ip;
use crate::accounts::Role;
use crate::accounts::standing::Verdict;
use crate::http::problem::ApiError;
use crate::http::state::{AppState, app_state};

/// The authenticated caller of a request, as they stand *now*: the role is
/// the user's current one (not the token's), the user is active and the
/// session live ([`crate::accounts::standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: Uuid,
    /// The user's current role.
    pub role: Role,
    /// The session (refresh-token family) of the access token.
    pub session_id: Uuid,
}

impl Principal {
    /// The caller of this request, or 401.
    pub fn of(depot: &Depot) -> Result<Self, ApiError> {
        depot
            .get_typed::<Principal>()
            .copied()
            .map_err(|_| ApiError::Unauthorized("a valid bearer token is required".into()))
    }

    /// True for MANAGER and ADMIN.
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }

    /// Passes when the caller owns the resource or is staff; otherwise 404
    /// naming `what`, exactly as if it did not exist.
    pub fn ensure_owner_or_staff(&self, owner: Uuid, what: &str) -> Result<(), ApiError> {
        if self.user_id == owner || self.is_staff() {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("{what} not found")))
        }
    }
}

/// Reads a bearer token if one is sent: a genuine token of an active user
/// in a live session puts the [`Principal`] into the depot; any other token
/// answers 401 at once, counted against the client address (429 over its
/// limit). No token: anonymous.
#[handler]
pub async fn authenticate(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return;
    };
    let bearer = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned());
    let verdict = match app_state(depot) {
        Err(error) => Err(error),
        Ok(state) => match principal(&state, bearer.as_deref()).await {
            // A refused token spends the address's budget, so guessing
            // tokens is rate limited like any anonymous request.
            Err(ApiError::Unauthorized(why)) => state
                .rate_limits
                .check_address(client_ip(req))
                .and(Err(ApiError::Unauthorized(why))),
            other => other,
        },
    };
    match verdict {
        Ok(principal) => {
            depot.insert_typed(principal);
        }
        Err(error) => {
            error.write(req, depot, res).await;
            ctrl.skip_rest();
        }
    }
}

/// The principal of a presented bearer token, judged by the user's current standing.
async fn principal(state: &AppState, bearer: Option<&str>) -> Result<Principal, ApiError> {
    let token = bearer
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
    let claims = state
        .tokens
        .verify(token)
        .map_err(|error| ApiError::Unauthorized(error.to_string()))?;
    let verdict = state
        .standing
        .check(&state.db, claims.sub, claims.sid)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "checking a caller's standing failed");
            ApiError::Unavailable("cannot check the session right now; retry shortly".into())
        })?;
    match verdict {
        Verdict::Allowed(role) => Ok(Principal {
            user_id: claims.sub,
            role,
            session_id: claims.sid,
        }),
        Verdict::Refused(why) => Err(ApiError::Unauthorized(why.into())),
    }
}

/// Hoop: any authenticated user.
#[handler]
pub async fn require_user(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if let Err(error) = Principal::of(depot) {
        error.write(req, depot, res).await;
        ctrl.skip_rest();
    }
}

/// Hoop: MANAGER or ADMIN.
#[handler]
pub async fn require_staff(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let verdict = Principal::of(depot).and_then(|principal| {
        if principal.is_staff() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("staff only (MANAGER or ADMIN)".into()))
        }
    });
    if let Err(error) = verdict {
        error.write(req, depot, res).await;
        ctrl.skip_rest();
    }
}

/// Hoop: ADMIN only.
#[handler]
pub async fn require_admin(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let verdict = Principal::of(depot).and_then(|principal| {
        if principal.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("ADMIN only".into()))
        }
    });
    if let Err(error) = verdict {
        error.write(req, depot, res).await;
        ctrl.skip_rest();
    }
}

/// Hoop: counts the request against its user (or IP when anonymous); 429 over the limit.
#[handler]
pub async fn limit_requests(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let user = Principal::of(depot).ok().map(|principal| principal.user_id);
    let verdict =
        app_state(depot).and_then(|state| state.rate_limits.check_request(user, client_ip(req)));
    if let Err(error) = verdict {
        error.write(req, depot, res).await;
        ctrl.skip_rest();
    }
}
