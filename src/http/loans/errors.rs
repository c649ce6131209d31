//! How loan rejections and actor-tree failures answer over HTTP.

use actors::core::{ErrorKind, LoanError};
use actors::tree::TreeError;

use crate::http::problem::ApiError;

/// A business rejection: 422 for bad input, 409 for a wrong state, 404 for an unknown payment.
pub fn rejection(error: LoanError) -> ApiError {
    match error.kind() {
        ErrorKind::Invalid => ApiError::Unprocessable(error.to_string()),
        ErrorKind::Conflict => ApiError::Conflict(error.to_string()),
        ErrorKind::NotFound => ApiError::NotFound(error.to_string()),
        ErrorKind::Corrupt => ApiError::internal(error),
    }
}

/// An infrastructure failure of the tree: 404/409 when it is about the id,
/// 500 for a corrupt loan, otherwise 503 (retry later; see `LoanTree::execute`).
pub fn tree_failure(error: TreeError) -> ApiError {
    match error {
        TreeError::NotFound(_) => ApiError::NotFound("loan not found".into()),
        TreeError::AlreadyExists(_) => {
            ApiError::Conflict("a loan with this id already exists".into())
        }
        TreeError::Corrupt(_) => ApiError::internal(error),
        TreeError::Unavailable { retry_after, .. } => ApiError::UnavailableFor {
            detail: error.to_string(),
            retry_after_secs: retry_after.as_secs().max(1),
        },
        other => ApiError::Unavailable(other.to_string()),
    }
}
