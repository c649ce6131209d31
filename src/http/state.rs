//! The shared state every handler reaches through the depot.

use std::sync::Arc;

use salvo::prelude::*;

use super::problem::ApiError;
use crate::auth::tokens::TokenKeys;
use crate::bus::BusConnection;
use crate::http::rate_limit::RateLimits;
use crate::settings::Settings;
use crate::store::Db;

/// Everything handlers need, built once at start.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The event bus connection.
    pub bus: BusConnection,
    /// The settings the process started with.
    pub settings: Settings,
    /// Access-token signing and verification.
    pub tokens: TokenKeys,
    /// Rate limiters.
    pub rate_limits: RateLimits,
    /// Users' current role, active flag and live sessions (cached).
    pub standing: crate::accounts::standing::StandingCache,
    /// Lifetime of a refresh token.
    pub refresh_ttl: chrono::Duration,
    /// Sends e-mail (SMTP or `.eml` files).
    pub mailer: std::sync::Arc<dyn actors::mailer::Mailer>,
    /// Where "now" and "today" come from.
    pub clock: crate::clock::Clock,
    /// The loan actors: every write to a loan goes through them.
    pub tree: actors::tree::LoanTree,
    /// Runs the scheduled jobs (also on demand, `POST /admin/jobs/{name}/run`).
    pub jobs: crate::jobs::JobRunner,
    /// This app's metrics recorder (`GET /metrics` renders it).
    pub metrics: crate::metrics::Metrics,
    /// This instance's part in a cluster (`CLUSTER_INSTANCE_ID`); `None`
    /// for a single instance, which owns every loan.
    pub cluster: Option<crate::cluster::ClusterNode>,
}

/// A hoop that puts the shared state into every request's depot.
pub struct InjectState(pub Arc<AppState>);

#[async_trait]
impl Handler for InjectState {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.0.clone());
        ctrl.call_next(req, depot, res).await;
    }
}

/// The shared state of this request (a 500 if the hoop is missing: a wiring bug).
pub fn app_state(depot: &Depot) -> Result<Arc<AppState>, ApiError> {
    depot
        .get_typed::<Arc<AppState>>()
        .cloned()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("application state missing from depot")))
}
