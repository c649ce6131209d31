//! `GET /asyncapi.json`: the AsyncAPI 3.0 document of the bus, beside
//! `/openapi.json` (built once, from `bus::asyncapi`).

use std::sync::LazyLock;

use salvo::prelude::*;

/// The document, rendered at first use.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| crate::bus::asyncapi::document().to_string());

/// The routes: `GET /asyncapi.json`.
pub fn router() -> Router {
    Router::with_path("asyncapi.json").get(asyncapi)
}

/// The AsyncAPI 3.0 document of the NATS bus: streams, subjects, every event
/// and inbound message with its JSON Schema, the relay and the consumers.
#[endpoint(
    tags("contract"),
    status_codes(200),
    responses((status_code = 200, body = serde_json::Value, description = "AsyncAPI 3.0 document"))
)]
async fn asyncapi(res: &mut Response) {
    res.render(Text::Json(DOCUMENT.as_str()));
}
