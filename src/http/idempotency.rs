//! The `Idempotency-Key` hoops for state-changing POSTs: a repeat with the same
//! key and body returns the first response (`Idempotent-Replayed: true`);
//! the same key with another body is 422; a repeat while the first is still
//! running is 409 ([`idempotent`]) or, on the payment routes, waits for the
//! first in the loan's actor and answers with it ([`idempotent_in_commit`]). Keys are per user and kept 24 hours. A retry after a 5xx
//! acts again with the first attempt's identity (ids derived from the key and
//! its first claim), so a first attempt that still commits is never doubled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use actors::store::ReplyRecord;
use actors::tree::{CommandOutcome, RenderReply, ReplyPlan, TreeError};
use bytes::Bytes;
use chrono::Utc;
use salvo::http::{HeaderValue, ResBody, header};
use salvo::prelude::*;
use sha2::{Digest, Sha256};

use super::body::MAX_BODY_BYTES;
use super::problem::{ApiError, PROBLEM_JSON};
use super::state::app_state;
use crate::http::access::Principal;
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
    /// On a route whose answer is kept by its command's commit: that answer.
    kept: Option<Arc<KeptAnswer>>,
}

/// The answer of a request whose key its command's own commit takes.
#[derive(Debug)]
struct KeptAnswer {
    /// The record to keep, status and body still empty.
    record: ReplyRecord,
    /// What became of it ([`PENDING`], [`KEPT`], [`TAKEN`]).
    fate: AtomicU8,
}

/// Not (yet) written.
const PENDING: u8 = 0;
/// Written with the command's commit.
const KEPT: u8 = 1;
/// Another request with the key was answered first; the command did nothing.
const TAKEN: u8 = 2;

impl IdempotencyKey {
    /// What a loan command hands its actor so that the answer `render`
    /// makes is kept in the command's own transaction; `None` when the
    /// request has no key or its route claims keys beforehand.
    pub fn reply_plan(depot: &Depot, render: RenderReply) -> Option<ReplyPlan> {
        let kept = depot.get_typed::<IdempotencyKey>().ok()?.kept.as_ref()?;
        Some(ReplyPlan {
            record: kept.record.clone(),
            render,
        })
    }

    /// Notes what the actor did with the answer of the current request (see
    /// [`IdempotencyKey::reply_plan`]), for the hoop to finish by.
    pub fn note(depot: &Depot, outcome: &Result<CommandOutcome, TreeError>) {
        let Some(kept) = depot
            .get_typed::<IdempotencyKey>()
            .ok()
            .and_then(|key| key.kept.as_ref())
        else {
            return;
        };
        let fate = match outcome {
            Ok(Ok(applied)) if applied.reply_kept => KEPT,
            Err(TreeError::ReplyTaken(_)) => TAKEN,
            _ => return,
        };
        kept.fate.store(fate, Ordering::Release);
    }
}

/// Hoop for state-changing routes: claims the key before the handler runs
/// and stores the response after it; a no-op without the header.
#[handler]
pub async fn idempotent(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    guard(Keeping::Claimed, req, depot, res, ctrl).await;
}

/// Hoop for routes whose handler runs one loan command and hands its answer
/// to the actor ([`IdempotencyKey::reply_plan`]): the key is only looked at
/// before, and the command's own transaction takes it with the response, so
/// a fresh key costs one read and no transaction of its own. A repeat while
/// the first is running waits behind it in the loan's actor and gets its
/// answer; a refusal (4xx) is kept after the fact; a 5xx keeps nothing, and
/// a retry acts again — if the first attempt still commits, its kept answer
/// makes the retry's commit fail, and the retry answers with it.
#[handler]
pub async fn idempotent_in_commit(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    guard(Keeping::InCommit, req, depot, res, ctrl).await;
}

/// When a route's key is taken and its response stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keeping {
    /// Claimed before the handler, the response stored after it.
    Claimed,
    /// Taken with the response by the handler's command commit.
    InCommit,
}

async fn guard(
    keeping: Keeping,
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
    let looked = match keyed_request(req, principal, &key).await {
        Ok(owned) => claim(depot, keeping, &owned)
            .await
            .map(|claim| (owned, claim)),
        Err(error) => Err(error),
    };
    let (owned, first_claimed_at) = match looked {
        Ok((owned, Claim::Fresh { first_claimed_at })) => (owned, first_claimed_at),
        Ok((_, other)) => return refuse(other, req, depot, res, ctrl).await,
        Err(error) => return reject(error, req, depot, res, ctrl).await,
    };
    let kept = (keeping == Keeping::InCommit).then(|| {
        Arc::new(KeptAnswer {
            record: ReplyRecord {
                user_id: principal.user_id,
                key: key.clone(),
                route: owned.route.clone(),
                body_hash: owned.body_hash.clone(),
                claimed_at: first_claimed_at,
                status: 0,
                body: Vec::new(),
            },
            fate: AtomicU8::new(PENDING),
        })
    });
    depot.insert_typed(IdempotencyKey {
        key: key.clone(),
        first_claimed_at,
        kept: kept.clone(),
    });
    ctrl.call_next(req, depot, res).await;
    match kept {
        None => finish(depot, res, principal, &key).await,
        Some(kept) => finish_in_commit(req, depot, res, &owned, &kept).await,
    }
}

/// A keyed request as the store compares it: the route and the body's hash.
struct OwnedRequest {
    user_id: uuid::Uuid,
    key: String,
    route: String,
    body_hash: String,
}

impl OwnedRequest {
    fn borrow(&self) -> KeyedRequest<'_> {
        KeyedRequest {
            user_id: self.user_id,
            key: &self.key,
            route: &self.route,
            body_hash: &self.body_hash,
        }
    }
}

/// Answers a claim that is not fresh: the first response again, 409 or 422.
async fn refuse(
    claim: Claim,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let error = match claim {
        Claim::Fresh { .. } => return,
        Claim::Replay { status, body } => {
            replay(res, status, body);
            ctrl.skip_rest();
            return;
        }
        Claim::InProgress => {
            ApiError::Conflict("a request with this Idempotency-Key is still in progress".into())
        }
        Claim::Mismatch => ApiError::Unprocessable(
            "this Idempotency-Key was used with a different request body or route".into(),
        ),
    };
    reject(error, req, depot, res, ctrl).await;
}

async fn keyed_request(
    req: &mut Request,
    principal: Principal,
    key: &str,
) -> Result<OwnedRequest, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
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
    Ok(OwnedRequest {
        user_id: principal.user_id,
        key: key.to_owned(),
        route: format!("{} {}", req.method(), req.uri().path()),
        body_hash,
    })
}

async fn claim(depot: &Depot, keeping: Keeping, request: &OwnedRequest) -> Result<Claim, ApiError> {
    let state = app_state(depot)?;
    let now = Utc::now();
    match keeping {
        Keeping::Claimed => idempotency::claim(&state.db, request.borrow(), now).await,
        Keeping::InCommit => idempotency::look(&state.db, request.borrow(), now).await,
    }
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

/// After a route that keeps its answer in its commit: nothing to do when the
/// commit kept it; the kept answer of the request that took the key when it
/// was taken; a refusal (4xx) or an answer that went with no commit is kept
/// now; a 5xx keeps nothing.
async fn finish_in_commit(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    request: &OwnedRequest,
    kept: &KeptAnswer,
) {
    let Ok(state) = app_state(depot) else {
        return;
    };
    match kept.fate.load(Ordering::Acquire) {
        KEPT => {}
        TAKEN => match idempotency::look(&state.db, request.borrow(), Utc::now()).await {
            Ok(Claim::Replay { status, body }) => replay(res, status, body),
            Ok(Claim::Mismatch) => {
                ApiError::Unprocessable(
                    "this Idempotency-Key was used with a different request body or route".into(),
                )
                .write(req, depot, res)
                .await;
            }
            // The taking request's answer is gone again (expired): the 409 stands.
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "reading the answer of a taken Idempotency-Key failed")
            }
        },
        _ => {
            let status = res.status_code.unwrap_or(StatusCode::OK);
            if status.is_server_error() {
                return;
            }
            let body = match &res.body {
                ResBody::Once(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            };
            let reply = ReplyRecord {
                status: status.as_u16(),
                body,
                ..kept.record.clone()
            };
            match idempotency::keep(&state.db, &reply).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("an Idempotency-Key was answered by another request first")
                }
                Err(error) => {
                    tracing::error!(%error, "recording an idempotent response failed; a repeat may act again")
                }
            }
        }
    }
}
