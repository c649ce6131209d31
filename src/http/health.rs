//! Liveness and readiness.

use actors::bus::Bus;
use salvo::prelude::*;
use serde_json::json;

use super::problem::{ApiError, Problem};
use super::state::app_state;

/// `GET /health`: the process is up and serving HTTP.
#[handler]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: the database and the bus answer and no supervised service
/// is down past its restart budget; 503 names what is not.
#[handler]
pub async fn ready(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    let database = state.db.ping().await.map_err(|error| error.to_string());
    let bus = state.bus.check_ready();
    let mut failing = Vec::new();
    if let Err(error) = &database {
        tracing::warn!(%error, "readiness: database not reachable");
        failing.push(format!("database ({}) not reachable", state.db.backend()));
    }
    if let Err(error) = &bus {
        failing.push(format!("bus ({}) not reachable: {error}", state.bus.kind()));
    }
    for service in state.tree.failed_services() {
        failing.push(format!("service {service} failed past its restart budget"));
    }
    if let Some(cluster) = &state.cluster {
        let ownership = cluster.ownership();
        if !ownership.knows_owners() {
            failing.push("cluster: the partition owners are not known yet".into());
        } else if !ownership.has_share() {
            failing.push("cluster: this instance does not hold its share of partitions yet".into());
        }
    }
    if failing.is_empty() {
        res.render(Json(json!({
            "status": "ready",
            "database": state.db.backend(),
            "bus": state.bus.kind(),
        })));
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            failing.join("; "),
            req,
            depot,
        )
        .render(res);
    }
    Ok(())
}
