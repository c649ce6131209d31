//! `?limit=&cursor=` lists answering `{ items, next_cursor }`.

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::problem::ApiError;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 100;

/// A parsed page request: how many, after which id.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Items to return (1–100).
    pub limit: u32,
    /// Return items after this id (ids are time-ordered UUIDv7s).
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Reads `limit` and `cursor` from the query string; bad values are 400.
    pub fn from_query(req: &Request) -> Result<Self, ApiError> {
        let limit = match req.query::<String>("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        let after =
            match req.query::<String>("cursor") {
                None => None,
                Some(raw) if raw.is_empty() => None,
                Some(raw) => Some(Uuid::parse_str(&raw).map_err(|_| {
                    ApiError::BadRequest("cursor is not one this API returned".into())
                })?),
            };
        Ok(Self { limit, after })
    }

    /// Asks the store for one more than the limit, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> u32 {
        self.limit + 1
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema + 'static> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema + 'static> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows; `id` gives each row's cursor.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        request: PageRequest,
        id: impl Fn(&R) -> Uuid,
        map: impl Fn(R) -> T,
    ) -> Self {
        let has_more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|row| id(row).to_string())
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

/// Parses a path id; one that is not a UUID cannot exist, so it is a 404.
pub fn path_id(req: &Request, name: &str, what: &str) -> Result<Uuid, ApiError> {
    req.param::<String>(name)
        .and_then(|raw| Uuid::parse_str(&raw).ok())
        .ok_or_else(|| ApiError::NotFound(format!("{what} not found")))
}
