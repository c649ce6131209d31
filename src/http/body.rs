//! Reading JSON request bodies with the limits and messages the API promises.

use salvo::http::ParseError;
use salvo::prelude::*;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest accepted request body; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses the body as `T`; malformed JSON or unknown fields give 422 saying where.
pub async fn json<T: DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let bytes = read(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Unprocessable(
            "a JSON request body is required".to_owned(),
        ));
    }
    parse(&bytes)
}

/// Like [`json`] for routes whose fields are all optional: no body means `T::default()`.
pub async fn optional_json<T: DeserializeOwned + Default>(
    req: &mut Request,
) -> Result<T, ApiError> {
    let bytes = read(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(&bytes)
}

async fn read(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    match req.payload_with_max_size(MAX_BODY_BYTES).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(ParseError::PayloadTooLarge) => Err(ApiError::PayloadTooLarge {
            limit_bytes: MAX_BODY_BYTES,
        }),
        Err(error) => Err(ApiError::BadRequest(format!(
            "reading the request body failed: {error}"
        ))),
    }
}

/// Parses a body already read as JSON (a handler that takes a field off it
/// first), with the same errors as [`json`].
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&value)
        .map_err(|error| ApiError::Unprocessable(format!("invalid JSON body: {error}")))?;
    parse(&bytes)
}

/// Parses `bytes`; an error names the field it is about (`first_due_date: …`).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |detail: String| ApiError::Unprocessable(format!("invalid JSON body: {detail}"));
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        invalid(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })?;
    // Trailing characters after the value.
    deserializer
        .end()
        .map_err(|error| invalid(error.to_string()))?;
    Ok(value)
}
