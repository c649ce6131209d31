//! Keyset pagination shared by every list: `?limit=&cursor=` in,
//! `{ items, next_cursor }` out. Ids are UUIDv7, so id order is creation
//! order; pages go newest first.

use thiserror::Error;
use uuid::Uuid;

/// Page size when the client gives none (SPEC §4).
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Largest page a client may ask for (SPEC §4).
pub const MAX_PAGE_LIMIT: u32 = 100;

/// The `?cursor=` text did not come from us.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// Where the next page starts: the key of the last item of the previous one.
/// Ids are UUIDv7, so id order is creation order; pages go newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(Uuid);

impl Cursor {
    /// Parses the opaque text a previous page returned as `next_cursor`.
    pub fn parse(text: &str) -> Result<Cursor, InvalidCursor> {
        // 32 hex digits: refuse anything else before the UUID parser sees it.
        if text.len() != 32 {
            return Err(InvalidCursor);
        }
        Uuid::try_parse(text).map(Cursor).map_err(|_| InvalidCursor)
    }

    /// The cursor pointing after the item with this id.
    pub fn of(id: Uuid) -> Cursor {
        Cursor(id)
    }

    /// The opaque text for `next_cursor`.
    pub fn encode(self) -> String {
        self.0.simple().to_string()
    }
}

/// Which page of a list: at most `limit` items after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    after: Option<Cursor>,
}

impl PageRequest {
    /// The page of `limit` items (default [`DEFAULT_PAGE_LIMIT`], clamped to
    /// 1..=[`MAX_PAGE_LIMIT`]) after `cursor` (none: the first page).
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, InvalidCursor> {
        Ok(PageRequest {
            limit: limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT),
            after: cursor.map(Cursor::parse).transpose()?,
        })
    }

    /// The number of items asked for.
    pub fn limit(self) -> u32 {
        self.limit
    }

    /// Items come after (older than) this id; `None` on the first page.
    pub fn after(self) -> Option<Uuid> {
        self.after.map(|cursor| cursor.0)
    }
}

/// One page of a list (SPEC §4: `{ items, next_cursor }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Text to pass as `?cursor=` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Splits one extra fetched row off into the next cursor.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    page: PageRequest,
    key: impl Fn(&T) -> Uuid,
) -> Page<T> {
    let limit = page.limit() as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|item| Cursor::of(key(item)).encode())
    } else {
        None
    };
    Page { items, next_cursor }
}
