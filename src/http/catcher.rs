//! The catcher: a response that reached the service's edge without a body
//! (no route, wrong method, body too large, a panic) leaves as problem+json.

use salvo::http::StatusCode;
use salvo::prelude::*;

use super::body::MAX_BODY_BYTES;
use super::problem::Problem;

/// Turns errors that reached the service without a body (no route, wrong
/// method, body too large, a panic) into problem+json.
#[handler]
pub async fn catch_errors(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let status = res.status_code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = match status {
        StatusCode::NOT_FOUND => format!("no resource at {}", req.uri().path()),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{} is not allowed on {}", req.method(), req.uri().path())
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body is larger than {} bytes", MAX_BODY_BYTES)
        }
        status if status.is_server_error() => "the server failed to handle this request".to_owned(),
        status => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    Problem::new(status, detail, req, depot).render(res);
    ctrl.skip_rest();
}
