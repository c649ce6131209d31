//! Authentication and access: access tokens (JWT), refresh-token sessions,
//! the principal of a request with the access rules, and rate limits.

pub mod access;
pub mod rate_limit;
pub mod sessions;
pub mod tokens;
