//! `/auth`: register, login, refresh, logout.

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::body;
use super::problem::ApiError;
use super::state::{AppState, app_state};
use super::users::UserBody;
use crate::accounts::password::{self, Password};
use crate::accounts::users::{self, NewUser, User};
use crate::accounts::{Email, Role, Username};
use crate::auth::sessions::{self, Rotation};
use crate::events::account::{AccountEvent, LoginFailed};
use crate::http::access::{Principal, require_user};
use crate::http::rate_limit::client_ip;
use crate::store::{StoreError, outbox};

/// The `/auth` routes.
pub fn router() -> Router {
    Router::with_path("auth")
        .push(Router::with_path("register").post(register))
        .push(Router::with_path("login").post(login))
        .push(Router::with_path("refresh-token").post(refresh))
        .push(Router::with_path("logout").hoop(require_user).post(logout))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// E-mail address (case-insensitive, unique).
    #[salvo(schema(example = "pat@example.com", format = Email))]
    email: String,
    /// Display handle, 3–64 of `A–Z a–z 0–9 . _ - @` (unique, case-insensitive).
    #[salvo(schema(
        example = "pat",
        min_length = 3,
        max_length = 64,
        pattern = r"^[A-Za-z0-9._@-]{3,64}$"
    ))]
    username: String,
    /// 12–128 characters, no control characters.
    #[salvo(schema(
        example = "correct horse battery staple",
        min_length = 12,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]{12,128}$"
    ))]
    password: String,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    /// E-mail address.
    #[salvo(schema(example = "pat@example.com", format = Email))]
    email: String,
    /// Password.
    #[salvo(schema(example = "correct horse battery staple"))]
    password: String,
}

/// A refresh token, for refresh and logout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    /// The opaque refresh token from the last token pair.
    refresh_token: String,
}

/// A token pair and the user it belongs to.
#[derive(Debug, Serialize, ToSchema)]
struct TokenPair {
    /// The account.
    user: UserBody,
    /// JWT for `Authorization: Bearer …`.
    access_token: String,
    /// Opaque, single-use token for `POST /auth/refresh-token`.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// Issues a token pair for `user`: in a new session, or (on refresh) in
/// the session of an already rotated refresh token.
async fn issue_pair(
    state: &AppState,
    user: User,
    now: DateTime<Utc>,
    rotated: Option<sessions::Started>,
) -> Result<TokenPair, ApiError> {
    let session = match rotated {
        Some(session) => session,
        None => sessions::start(&state.db, user.id, now, now + state.refresh_ttl)
            .await
            .map_err(ApiError::internal)?,
    };
    let access_token = state
        .tokens
        .issue(user.id, user.role, session.family_id, now)
        .map_err(ApiError::internal)?;
    Ok(TokenPair {
        user: user.into(),
        access_token,
        refresh_token: session.token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
    })
}

fn unprocessable(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(error.to_string())
}

/// Register a USER account and log it in.
#[endpoint(tags("auth"), request_body = RegisterRequest, status_codes(201, 409, 413, 422, 429), responses((status_code = 201, body = TokenPair)))]
async fn register(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<TokenPair>, ApiError> {
    let state = app_state(depot)?;
    let request: RegisterRequest = body::json(req).await?;
    let email = Email::parse(&request.email).map_err(unprocessable)?;
    let username = Username::parse(&request.username).map_err(unprocessable)?;
    let password = Password::parse(&request.password).map_err(unprocessable)?;
    let password_hash = password::hash(password).await.map_err(ApiError::internal)?;
    let now = Utc::now();
    let new_user = NewUser {
        email,
        username,
        password_hash,
        role: Role::User,
    };
    let user = match users::create(&state.db, new_user, now).await {
        Ok(user) => user,
        Err(StoreError::Duplicate { constraint }) if constraint.contains("username") => {
            return Err(ApiError::Conflict("username is taken".into()));
        }
        Err(StoreError::Duplicate { .. }) => {
            return Err(ApiError::Conflict("email is already registered".into()));
        }
        Err(error) => return Err(ApiError::internal(error)),
    };
    let pair = issue_pair(&state, user, now, None).await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(pair))
}

/// Log in; unknown e-mail and wrong password get the same 401.
#[endpoint(tags("auth"), request_body = LoginRequest, status_codes(200, 401, 413, 422, 429))]
async fn login(req: &mut Request, depot: &mut Depot) -> Result<Json<TokenPair>, ApiError> {
    let state = app_state(depot)?;
    let address = client_ip(req);
    state.rate_limits.check_login_ip(address)?;
    let request: LoginRequest = body::json(req).await?;
    let email = Email::parse(&request.email).map_err(unprocessable)?;
    state.rate_limits.check_account(email.as_str(), address)?;
    let credentials = users::find_by_email(&state.db, &email)
        .await
        .map_err(ApiError::internal)?;
    let stored_hash = credentials
        .as_ref()
        .map(|found| found.password_hash.clone());
    let matched = password::verify(request.password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    let now = Utc::now();
    match credentials {
        Some(found) if matched && found.user.active => {
            state.rate_limits.clear_failures(email.as_str(), address);
            Ok(Json(issue_pair(&state, found.user, now, None).await?))
        }
        found => {
            state.rate_limits.record_failure(email.as_str(), address);
            let user_id = found.as_ref().map(|found| found.user.id);
            let reason = match found {
                None => "unknown_email",
                Some(found) if !found.user.active => "deactivated",
                Some(_) => "wrong_password",
            };
            let event = AccountEvent::LoginFailed(LoginFailed {
                email: email.as_str().to_owned(),
                reason: reason.to_owned(),
                ip: address.to_string(),
            });
            let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
            outbox::insert(&mut tx, &event.envelope(user_id, now).to_outbox())
                .await
                .map_err(ApiError::internal)?;
            tx.commit().await.map_err(ApiError::internal)?;
            Err(ApiError::Unauthorized("invalid email or password".into()))
        }
    }
}

/// Exchange a refresh token for a new pair; a reused token revokes its whole login.
#[endpoint(tags("auth"), request_body = RefreshRequest, status_codes(200, 401, 413, 422, 429))]
async fn refresh(req: &mut Request, depot: &mut Depot) -> Result<Json<TokenPair>, ApiError> {
    let state = app_state(depot)?;
    let request: RefreshRequest = body::json(req).await?;
    let now = Utc::now();
    let rotation = sessions::rotate(
        &state.db,
        request.refresh_token.trim(),
        now,
        now + state.refresh_ttl,
    )
    .await
    .map_err(ApiError::internal)?;
    match rotation {
        Rotation::Rotated {
            user_id,
            token,
            family_id,
        } => {
            let user = users::find_by_id(&state.db, user_id)
                .await
                .map_err(ApiError::internal)?;
            match user {
                Some(user) if user.active => {
                    let rotated = sessions::Started { token, family_id };
                    Ok(Json(issue_pair(&state, user, now, Some(rotated)).await?))
                }
                _ => {
                    sessions::revoke_family(&state.db, family_id, user_id, now)
                        .await
                        .map_err(ApiError::internal)?;
                    state.standing.forget(user_id);
                    Err(ApiError::Unauthorized("the account is deactivated".into()))
                }
            }
        }
        Rotation::Reused { user_id } => {
            // The family's access tokens end here at once, elsewhere within a second.
            state.standing.forget(user_id);
            tracing::warn!(%user_id, "refresh token reuse: the whole login was revoked");
            Err(ApiError::Unauthorized(
                "refresh token was already used; this login has been revoked".into(),
            ))
        }
        Rotation::Invalid => Err(ApiError::Unauthorized(
            "refresh token is invalid or expired".into(),
        )),
    }
}

/// Log out: revoke every token of this login, its access tokens included.
#[endpoint(tags("auth"), request_body = RefreshRequest, status_codes(204, 401, 422), responses((status_code = 204, description = "Logged out")), security(("bearer" = [])))]
async fn logout(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let request: RefreshRequest = body::json(req).await?;
    sessions::logout(
        &state.db,
        request.refresh_token.trim(),
        principal.user_id,
        Utc::now(),
    )
    .await
    .map_err(ApiError::internal)?;
    state.standing.forget(principal.user_id);
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
