//! Several instances (SPEC §8): a write to a loan another instance owns is
//! forwarded, as the HTTP request it is, to the owner over NATS
//! ([`crate::cluster::forward`]), which runs it through its own routes —
//! authentication, rate limit, idempotency, the loan's actor — and answers
//! with the response this instance then writes. Same status codes, same
//! bodies, same deadline (a timeout or a partition on the move is 503).
//! Reads are served by whichever instance receives them.

use std::sync::Arc;
use std::time::Duration;

use actors::core::{LoanId, PaymentId};
use actors::store::BoxFuture;
use async_nats::HeaderMap;
use bytes::Bytes;
use salvo::http::{Method, ResBody, StatusCode};
use salvo::prelude::*;
use uuid::Uuid;

use crate::cluster::forward::{ForwardHandler, Forwarded};
use crate::cluster::{ClusterNode, partition_of};
use crate::http::problem::ApiError;
use crate::http::state::app_state;
use crate::store::loans::get_payment;

/// The forwarded kind this module sends and answers.
pub const HTTP_KIND: &str = "http";
const METHOD: &str = "Lt-Method";
const PATH: &str = "Lt-Path";
const STATUS: &str = "Lt-Status";
/// Prefix of a carried HTTP header's name.
const HEADER_PREFIX: &str = "H-";
/// Time on top of the actor call timeout for the two NATS hops.
const FORWARD_MARGIN: Duration = Duration::from_secs(1);

/// Marks a request that came forwarded from another instance: it is served
/// here whoever owns the loan now (never forwarded twice).
#[derive(Debug, Clone, Copy)]
struct ForwardedHere;

/// Forwards a write to a loan owned by another instance; anything else goes on.
#[handler]
pub async fn to_owner(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let Ok(state) = app_state(depot) else {
        ctrl.call_next(req, depot, res).await;
        return;
    };
    let Some(cluster) = state.cluster.as_ref() else {
        ctrl.call_next(req, depot, res).await;
        return;
    };
    if req.extensions().get::<ForwardedHere>().is_some() {
        ctrl.call_next(req, depot, res).await;
        return;
    }
    let target = match target_loan(req, &state.db).await {
        Some(loan_id) if !cluster.owns(loan_id) => loan_id,
        _ => {
            ctrl.call_next(req, depot, res).await;
            return;
        }
    };
    let deadline = state.settings.actor_call_timeout + FORWARD_MARGIN;
    match forward(cluster, req, target, deadline).await {
        Ok(answer) => write_answer(res, answer),
        Err(error) => {
            ApiError::UnavailableFor {
                detail: error,
                retry_after_secs: 1,
            }
            .write(req, depot, res)
            .await;
        }
    }
    ctrl.skip_rest();
}

/// The loan a write request is for, if it is one that goes to a loan's actor.
async fn target_loan(req: &mut Request, db: &crate::store::Db) -> Option<LoanId> {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches("/api/v1/").to_owned();
    let parts: Vec<&str> = path.split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::DELETE, ["loans", id]) => uuid(id).map(LoanId::new),
        (
            &Method::POST,
            [
                "loans",
                id,
                "approve" | "reject" | "cancel" | "write-off" | "payments",
            ],
        ) => uuid(id).map(LoanId::new),
        (&Method::POST, ["payments"]) => {
            let body = req.payload().await.ok()?;
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            value["loan_id"].as_str().and_then(uuid).map(LoanId::new)
        }
        (&Method::POST, ["payments", id, "reverse"]) => {
            let payment = get_payment(db, PaymentId::new(uuid(id)?)).await.ok()??;
            Some(payment.loan_id)
        }
        _ => None,
    }
}

fn uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

async fn forward(
    cluster: &ClusterNode,
    req: &mut Request,
    loan_id: LoanId,
    deadline: Duration,
) -> Result<Forwarded, String> {
    let mut headers = HeaderMap::new();
    headers.insert(METHOD, req.method().as_str());
    let path = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    headers.insert(PATH, path.as_str());
    for (name, value) in req.headers() {
        if let Ok(value) = value.to_str() {
            headers.append(format!("{HEADER_PREFIX}{name}").as_str(), value);
        }
    }
    let body = req
        .payload()
        .await
        .map_err(|error| format!("reading the request body: {error}"))?
        .clone();
    cluster
        .forwarder()
        .send(
            partition_of(loan_id),
            HTTP_KIND,
            Forwarded { headers, body },
            deadline,
        )
        .await
        .map_err(|error| error.to_string())
}

fn write_answer(res: &mut Response, answer: Forwarded) {
    let status = answer
        .headers
        .get(STATUS)
        .and_then(|value| value.as_str().parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    res.status_code(status);
    for (name, values) in answer.headers.iter() {
        let Some(name) = AsRef::<str>::as_ref(name).strip_prefix(HEADER_PREFIX) else {
            continue;
        };
        // This instance frames the body itself.
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        let Ok(name) = salvo::http::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = salvo::http::HeaderValue::from_str(value.as_str()) {
                res.headers_mut().append(name.clone(), value);
            }
        }
    }
    res.body(answer.body);
}

/// Runs forwarded HTTP requests through this instance's own routes.
pub struct ServeForwarded {
    service: Arc<Service>,
}

impl ServeForwarded {
    /// Answers with `service` (built like the one serving the port).
    pub fn new(service: Service) -> Self {
        Self {
            service: Arc::new(service),
        }
    }

    async fn answer(&self, request: Forwarded) -> Result<Forwarded, String> {
        let method = request
            .headers
            .get(METHOD)
            .ok_or("no method")?
            .as_str()
            .to_owned();
        let path = request
            .headers
            .get(PATH)
            .ok_or("no path")?
            .as_str()
            .to_owned();
        let mut builder = salvo::hyper::Request::builder()
            .method(method.as_str())
            .uri(path);
        for (name, values) in request.headers.iter() {
            let Some(name) = AsRef::<str>::as_ref(name).strip_prefix(HEADER_PREFIX) else {
                continue;
            };
            for value in values {
                builder = builder.header(name, value.as_str());
            }
        }
        let hyper_request = builder
            .body(request.body)
            .map_err(|error| format!("rebuilding the request: {error}"))?;
        let mut req = Request::from_hyper(hyper_request, salvo::http::uri::Scheme::HTTP);
        req.extensions_mut().insert(ForwardedHere);
        let local: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        let handler = self.service.hyper_handler(
            local.into(),
            local.into(),
            salvo::http::uri::Scheme::HTTP,
            None,
            salvo::ConnCtrl::new(),
            None,
        );
        let mut res = handler.handle(req).await;
        let mut headers = HeaderMap::new();
        let status = res.status_code.unwrap_or(StatusCode::OK);
        headers.insert(STATUS, status.as_u16().to_string().as_str());
        for (name, value) in res.headers() {
            if let Ok(value) = value.to_str() {
                headers.append(format!("{HEADER_PREFIX}{name}").as_str(), value);
            }
        }
        let body = match res.take_body() {
            ResBody::None => Bytes::new(),
            ResBody::Once(bytes) => bytes,
            ResBody::Chunks(chunks) => chunks.into_iter().flatten().collect(),
            _ => return Err("a streamed answer cannot be forwarded".into()),
        };
        Ok(Forwarded { headers, body })
    }
}

impl ForwardHandler for ServeForwarded {
    fn handle(&self, request: Forwarded) -> BoxFuture<'_, Forwarded> {
        Box::pin(async move {
            self.answer(request).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "a forwarded request could not be served");
                let mut headers = HeaderMap::new();
                headers.insert(STATUS, "503");
                Forwarded {
                    headers,
                    body: Bytes::new(),
                }
            })
        })
    }
}
