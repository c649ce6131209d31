//! The one HTTP error type, rendered as RFC 9457 `application/problem+json`.

use salvo::http::{HeaderValue, StatusCode, header};
use salvo::prelude::*;
use serde::Serialize;
use thiserror::Error;

use super::request_log::RequestIdExt;

/// Content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every way a request can fail, each mapped to one status.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400: the request cannot be understood (bad query string, bad header).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a token that is not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid token, wrong role.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or one the caller may not know exists.
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource is in a state that forbids this.
    #[error("{0}")]
    Conflict(String),
    /// 413: body over the limit.
    #[error("request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit that was exceeded.
        limit_bytes: usize,
    },
    /// 422: well-formed request with unusable content (bad JSON, bad field).
    #[error("{0}")]
    Unprocessable(String),
    /// 429: over a rate limit.
    #[error("rate limit exceeded; retry in {retry_after_secs}s")]
    TooManyRequests {
        /// Seconds until a request would be accepted again.
        retry_after_secs: u64,
    },
    /// 503: a dependency (database, bus, an actor) cannot answer right now.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with a known time to retry.
    #[error("{detail}")]
    UnavailableFor {
        /// What is unavailable.
        detail: String,
        /// Seconds until a retry may succeed (sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// 500: a bug or an infrastructure failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Wraps any infrastructure failure as a 500.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::UnavailableFor { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, salvo::oapi::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind (the status reason).
    pub title: String,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The path of the request.
    pub instance: String,
    /// The id also sent as `x-request-id`, to find the request in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// Builds the body for `status` with a human-readable `detail`.
    pub fn new(
        status: StatusCode,
        detail: impl Into<String>,
        req: &Request,
        depot: &Depot,
    ) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let slug = title.to_lowercase().replace(' ', "-");
        Self {
            kind: format!("https://loan-tracker.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            instance: req.uri().path().to_owned(),
            request_id: depot.request_id().map(str::to_owned),
        }
    }

    /// Writes the body and status to the response.
    pub fn render(&self, res: &mut Response) {
        res.status_code(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        match serde_json::to_vec(self) {
            Ok(body) => {
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                // A body rendered earlier (e.g. by a handler that failed late) must not leak through.
                let _ = res.take_body();
                res.write_body(body).ok();
            }
            Err(error) => tracing::error!(%error, "serializing a problem body failed"),
        }
    }
}

#[async_trait]
impl Writer for ApiError {
    async fn write(self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(
                error = format!("{cause:#}"),
                path = req.uri().path(),
                "request failed"
            );
        }
        if let Self::TooManyRequests { retry_after_secs }
        | Self::UnavailableFor {
            retry_after_secs, ..
        } = &self
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        Problem::new(status, self.to_string(), req, depot).render(res);
    }
}

impl salvo::oapi::EndpointOutRegister for ApiError {
    fn register(components: &mut salvo::oapi::Components, operation: &mut salvo::oapi::Operation) {
        use salvo::oapi::{Content, Response as OapiResponse, ToSchema};
        let schema = Problem::to_schema(components);
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let description = status.canonical_reason().unwrap_or("Error");
            operation.responses.insert(
                status.as_str(),
                OapiResponse::new(description)
                    .add_content(PROBLEM_JSON, Content::new(schema.clone())),
            );
        }
    }
}
