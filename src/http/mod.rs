//! The HTTP edge: routes, error rendering, request logging.

pub mod body;
mod health;
pub mod problem;
pub mod request_log;
pub mod state;

use std::sync::Arc;

use salvo::catcher::Catcher;
use salvo::prelude::*;

use self::state::{AppState, InjectState};

/// Builds the service: every route, the hoops that wrap them, the error catcher.
pub fn service(state: Arc<AppState>) -> Service {
    let router = Router::new()
        .push(Router::with_path("health").get(health::health))
        .push(Router::with_path("ready").get(health::ready));
    Service::new(router)
        .hoop(request_log::log_requests)
        .hoop(salvo::size_limiter::max_size(body::MAX_BODY_BYTES as u64))
        .hoop(InjectState(state))
        .hoop(salvo::catch_panic::CatchPanic::new())
        .catcher(Catcher::default().hoop(problem::catch_errors))
}
