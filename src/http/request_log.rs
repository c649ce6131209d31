//! Request ids and the one log line per request.

use std::time::Instant;

use salvo::http::HeaderValue;
use salvo::prelude::*;

/// Header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client-supplied request id we keep (longer ones are replaced).
const MAX_REQUEST_ID_LEN: usize = 128;
const DEPOT_KEY: &str = "request_id";

/// Access to the current request id from anywhere that has the depot.
pub trait RequestIdExt {
    /// The id of the current request, once the logging hoop has run.
    fn request_id(&self) -> Option<&str>;
}

impl RequestIdExt for Depot {
    fn request_id(&self) -> Option<&str> {
        self.get::<String>(DEPOT_KEY).ok().map(String::as_str)
    }
}

/// Assigns a request id (keeping a sane one sent by the client), returns it as
/// `x-request-id`, and logs method, path, status and latency when done.
#[handler]
pub async fn log_requests(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let started = Instant::now();
    let request_id = req
        .header::<String>(REQUEST_ID_HEADER)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    depot.insert(DEPOT_KEY, request_id.clone());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    ctrl.call_next(req, depot, res).await;
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        method = %req.method(),
        path = req.uri().path(),
        status,
        latency_ms,
        request_id,
        "request"
    );
}
