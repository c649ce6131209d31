//! The `Idempotency-Key` hoop for state-changing POSTs: a repeat with the same
//! key and body returns the first response (`Idempotent-Replayed: true`);
//! the same key with another body is 422; a repeat while the first is still
//! running is 409. Keys are per user and kept 24 hours. A retry after a 5xx
//! acts again with the first attempt's identity (ids derived from the key and
//! its first claim), so a first attempt that still commits is never doubled.

use bytes::Bytes;
use chrono::Utc;
use salvo::http::{HeaderValue, ResBody, header};
use salvo::prelude::*;
use sha2::{Digest, Sha256};

use super::body::MAX_BODY_BYTES;
use super::problem::{ApiError, PROBLEM_JSON};
use super::state::app_state;
use crate::auth::access::Principal;
use crate::store::idempotency::{self, Claim, KeyedRequest};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest accepted key.
const MAX_KEY_LEN: usize = 255;

/// The key of the current request, for handlers that derive ids from it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The header value.
    pub key: String,
    /// When the key was first claimed (the same on every retry of it).
    pub first_claimed_at: chrono::DateTime<Utc>,
}

/// Hoop for state-changing routes; a no-op without the header.
#[handler]
pub async fn idempotent(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if req.method() != salvo::http::Method::POST {
        return;
    }
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY) else {
        return;
    };
    // A key with bytes outside visible ASCII is refused below, not ignored.
    let key = String::from_utf8_lossy(raw_key.as_bytes()).into_owned();
    // Anonymous requests fail authorization further on; nothing to key by.
    let Ok(principal) = Principal::of(depot) else {
        return;
    };
    let first_claimed_at = match claim(req, depot, principal, &key).await {
        Ok(Claim::Fresh { first_claimed_at }) => first_claimed_at,
        Ok(Claim::Replay { status, body }) => {
            replay(res, status, body);
            ctrl.skip_rest();
            return;
        }
        Ok(Claim::InProgress) => {
            return reject(
                ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress".into(),
                ),
                req,
                depot,
                res,
                ctrl,
            )
            .await;
        }
        Ok(Claim::Mismatch) => {
            let error = ApiError::Unprocessable(
                "this Idempotency-Key was used with a different request body or route".into(),
            );
            return reject(error, req, depot, res, ctrl).await;
        }
        Err(error) => return reject(error, req, depot, res, ctrl).await,
    };
    depot.insert_typed(IdempotencyKey {
        key: key.clone(),
        first_claimed_at,
    });
    ctrl.call_next(req, depot, res).await;
    finish(depot, res, principal, &key).await;
}

async fn claim(
    req: &mut Request,
    depot: &Depot,
    principal: Principal,
    key: &str,
) -> Result<Claim, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    let state = app_state(depot)?;
    let body = match req.payload_with_max_size(MAX_BODY_BYTES).await {
        Ok(bytes) => bytes.clone(),
        Err(_) => {
            return Err(ApiError::PayloadTooLarge {
                limit_bytes: MAX_BODY_BYTES,
            });
        }
    };
    let body_hash: String = Sha256::digest(&body)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let route = format!("{} {}", req.method(), req.uri().path());
    let request = KeyedRequest {
        user_id: principal.user_id,
        key,
        route: &route,
        body_hash: &body_hash,
    };
    idempotency::claim(&state.db, request, Utc::now())
        .await
        .map_err(ApiError::internal)
}

fn replay(res: &mut Response, status: u16, body: Vec<u8>) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    res.status_code(status);
    let content_type = if status.is_client_error() {
        PROBLEM_JSON
    } else {
        "application/json; charset=utf-8"
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    res.body = ResBody::Once(Bytes::from(body));
}

async fn reject(
    error: ApiError,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    error.write(req, depot, res).await;
    ctrl.skip_rest();
}

/// Stores the response, or after a server error unlocks the key so a retry
/// may act at once — under the first attempt's identity, since that attempt
/// may still commit (see [`idempotency::unlock`]).
async fn finish(depot: &Depot, res: &Response, principal: Principal, key: &str) {
    let Ok(state) = app_state(depot) else {
        return;
    };
    let status = res.status_code.unwrap_or(StatusCode::OK);
    let outcome = if status.is_server_error() {
        idempotency::unlock(&state.db, principal.user_id, key, Utc::now()).await
    } else {
        let body = match &res.body {
            ResBody::Once(bytes) => bytes.to_vec(),
            _ => Vec::new(),
        };
        idempotency::complete(&state.db, principal.user_id, key, status.as_u16(), &body).await
    };
    if let Err(error) = outcome {
        tracing::error!(%error, "recording an idempotent response failed; a repeat may act again");
    }
}
