//! Authentication and access: access tokens (JWT), refresh-token sessions,
//! the principal of a request with the access rules, the current standing
//! of each caller (cached, following the session change log), and rate limits.

pub mod changes;
pub mod login_throttle;
pub mod role;
pub mod sessions;
pub mod signing_key;
pub mod tokens;
