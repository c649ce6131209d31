//! `?limit=&cursor=` lists answering `{ items, next_cursor }` (newest first).

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::problem::ApiError;
use crate::store::page::{MAX_PAGE_LIMIT, PageRequest};

/// One page of a list as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema + 'static> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema + 'static> Page<T> {
    /// Converts a store page item by item.
    pub fn from_store<S>(page: crate::store::page::Page<S>, map: impl FnMut(S) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(map).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Reads `limit` (1–100, default 50) and `cursor` from the query string; bad values are 400.
pub fn store_page(req: &Request) -> Result<PageRequest, ApiError> {
    let limit = match req.query::<String>("limit") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u32>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE_LIMIT).contains(limit))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit must be an integer from 1 to {MAX_PAGE_LIMIT}"
                    ))
                })?,
        ),
    };
    let cursor = req
        .query::<String>("cursor")
        .filter(|cursor| !cursor.is_empty());
    PageRequest::new(limit, cursor.as_deref())
        .map_err(|_| ApiError::BadRequest("cursor is not one this API returned".into()))
}

/// Parses a path id; one that is not a UUID cannot exist, so it is a 404.
pub fn path_id(req: &Request, name: &str, what: &str) -> Result<Uuid, ApiError> {
    req.param::<String>(name)
        .and_then(|raw| Uuid::parse_str(&raw).ok())
        .ok_or_else(|| ApiError::NotFound(format!("{what} not found")))
}
