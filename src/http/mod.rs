//! The HTTP edge: routes, error rendering, request logging.

pub mod access;
mod admin;
mod asyncapi;
mod audit;
mod auth;
pub mod body;
mod catcher;
mod dead_letters;
pub mod forward;
mod headers;
mod health;
pub mod idempotency;
mod jobs;
mod loans;
pub mod metrics;
mod notifications;
pub mod openapi;
pub mod pagination;
pub mod problem;
mod profile;
pub mod rate_limit;
pub mod request_log;
pub mod state;
mod users;

use std::sync::Arc;

use salvo::catcher::Catcher;
use salvo::oapi::swagger_ui::SwaggerUi;
use salvo::prelude::*;

use self::state::{AppState, InjectState};

/// Every route the service answers (the OpenAPI document and `/docs` included).
pub fn router() -> Router {
    let api = Router::with_path("api/v1")
        .hoop(forward::to_owner)
        .hoop(crate::http::access::authenticate)
        .hoop(crate::http::access::limit_requests)
        .append(&mut loans::payment_routers())
        .push(
            Router::new()
                .hoop(idempotency::idempotent)
                .push(auth::router())
                .push(users::router())
                .push(profile::router())
                .push(notifications::router())
                .push(audit::router())
                .push(admin::router())
                .append(&mut loans::routers()),
        );
    let router = Router::new()
        .push(Router::with_path("health").get(health::health))
        .push(Router::with_path("ready").get(health::ready))
        .push(Router::with_path("metrics").get(metrics::metrics))
        .push(asyncapi::router())
        .push(api);
    let document = openapi::document(&router);
    router.push(openapi::route("openapi.json", &document)).push(
        SwaggerUi::new("/openapi.json")
            .title("loan-tracker API")
            .into_router("docs"),
    )
}

/// Builds the service: every route, the hoops that wrap them, the error catcher.
pub fn service(state: Arc<AppState>) -> Service {
    Service::new(router())
        .hoop(headers::security_headers)
        .hoop(request_log::log_requests)
        .hoop(metrics::RecordHttp(state.metrics.clone()))
        .hoop(salvo::size_limiter::max_size(body::MAX_BODY_BYTES as u64))
        .hoop(InjectState(state))
        .hoop(salvo::catch_panic::CatchPanic::new())
        .catcher(Catcher::default().hoop(catcher::catch_errors))
}
