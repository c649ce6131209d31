//! The access rules, in one place: who is asking (the principal), and the
//! hoops and checks every route uses.
//!
//! - no or invalid token → 401 (any route that needs a user);
//! - a valid token with the wrong role → 403;
//! - another user's resource → 404 (we do not confirm it exists).

use salvo::http::header::AUTHORIZATION;
use salvo::prelude::*;
use uuid::Uuid;

use crate::accounts::Role;
use crate::http::problem::ApiError;
use crate::http::state::app_state;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: Uuid,
    /// The role in the access token.
    pub role: Role,
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

/// Reads a bearer token if one is sent: a valid one puts the [`Principal`]
/// into the depot, an invalid one answers 401 at once. No token: anonymous.
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
    let verified = match (
        app_state(depot),
        header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")),
    ) {
        (Err(error), _) => Err(error),
        (Ok(_), None) => Err(ApiError::Unauthorized(
            "Authorization must be 'Bearer <token>'".into(),
        )),
        (Ok(state), Some(token)) => state
            .tokens
            .verify(token.trim())
            .map_err(|error| ApiError::Unauthorized(error.to_string())),
    };
    match verified {
        Ok(claims) => {
            depot.insert_typed(Principal {
                user_id: claims.sub,
                role: claims.role,
            });
        }
        Err(error) => {
            error.write(req, depot, res).await;
            ctrl.skip_rest();
        }
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
