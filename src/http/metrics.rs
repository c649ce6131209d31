//! `GET /metrics` and the hoop that counts and times every request.

use std::time::Instant;

use salvo::http::HeaderValue;
use salvo::http::header::CONTENT_TYPE;
use salvo::prelude::*;

use super::problem::ApiError;
use super::state::app_state;
use crate::metrics::Metrics;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Route label of requests no route matched (keeps the label set bounded).
const UNMATCHED_ROUTE: &str = "unmatched";

/// A hoop recording `http_requests_total` and `http_request_duration_seconds`
/// by route template (never the raw path: ids would explode the series).
pub struct RecordHttp(pub Metrics);

#[async_trait]
impl Handler for RecordHttp {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        let route = match req.matched_path() {
            "" if status == StatusCode::NOT_FOUND.as_u16() => UNMATCHED_ROUTE.to_owned(),
            matched => format!("/{matched}"),
        };
        self.0
            .http_request(req.method().as_str(), &route, status, started.elapsed());
    }
}

/// `GET /metrics`: Prometheus text, refreshed from the actor tree, the outbox
/// and the pools at each scrape. Unauthenticated, like `/health`: expose it
/// only where scrapers can reach it.
#[handler]
pub async fn metrics(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    crate::ops::scrape::refresh(&state.metrics, &state.tree, &state.db, state.clock.now()).await;
    if let Some(cluster) = &state.cluster {
        crate::ops::scrape::record_cluster(&state.metrics, cluster.ownership());
    }
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    res.write_body(state.metrics.render())
        .map_err(ApiError::internal)?;
    Ok(())
}
