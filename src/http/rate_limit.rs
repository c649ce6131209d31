//! Rate limits: per user (or per client IP when anonymous) on every API
//! route, per IP on login, and a progressive delay after repeated failed
//! logins of one address on one account ([`LoginThrottle`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use salvo::prelude::*;
use uuid::Uuid;

use crate::auth::login_throttle::LoginThrottle;
use crate::http::problem::ApiError;

/// How often idle limiter keys are evicted.
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(60);

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    User(Uuid),
    Ip(IpAddr),
}

/// All limiters of the process.
pub struct RateLimits {
    general: DefaultKeyedRateLimiter<Caller>,
    login_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    failed_logins: LoginThrottle,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limiters allowing `per_minute` API requests per caller and
    /// `login_per_minute` login attempts per IP.
    pub fn new(per_minute: NonZeroU32, login_per_minute: NonZeroU32) -> Self {
        Self {
            general: RateLimiter::keyed(Quota::per_minute(per_minute)),
            login_per_ip: RateLimiter::keyed(Quota::per_minute(login_per_minute)),
            failed_logins: LoginThrottle::default(),
        }
    }

    /// Drops limiter state of keys that have been idle long enough to be full again.
    pub fn evict_idle(&self) {
        self.general.retain_recent();
        self.general.shrink_to_fit();
        self.login_per_ip.retain_recent();
        self.login_per_ip.shrink_to_fit();
        self.failed_logins.evict_idle(Instant::now());
    }

    /// Counts an API request against its signed-in `user`, or against the
    /// client address `ip` when anonymous; 429 over the limit.
    pub fn check_request(&self, user: Option<Uuid>, ip: IpAddr) -> Result<(), ApiError> {
        let caller = user.map_or(Caller::Ip(ip), Caller::User);
        self.general
            .check_key(&caller)
            .map_err(|not_until| too_many(&not_until))
    }

    /// Counts a request against the address `ip` (an anonymous caller, or
    /// one whose token was refused); 429 over the limit.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.general
            .check_key(&Caller::Ip(ip))
            .map_err(|not_until| too_many(&not_until))
    }

    /// Counts a login attempt from `ip`; 429 when over the per-IP login limit.
    pub fn check_login_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.login_per_ip
            .check_key(&ip)
            .map_err(|not_until| too_many(&not_until))
    }

    /// 429 while `address` must wait before trying `account` again.
    pub fn check_account(&self, account: &str, address: IpAddr) -> Result<(), ApiError> {
        self.failed_logins
            .check(account, address, Instant::now())
            .map_err(|wait| ApiError::TooManyRequests {
                retry_after_secs: retry_after(wait),
            })
    }

    /// Records a failed login of `address` on `account`.
    pub fn record_failure(&self, account: &str, address: IpAddr) {
        self.failed_logins
            .record_failure(account, address, Instant::now());
    }

    /// Forgets the failures of `address` on `account` after a successful login.
    pub fn clear_failures(&self, account: &str, address: IpAddr) {
        self.failed_logins.clear(account, address);
    }
}

/// Whole seconds to wait, at least one.
fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn too_many(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: retry_after(not_until.wait_time_from(DefaultClock::default().now())),
    }
}

/// The client's IP address (the socket peer; no proxy headers are trusted).
pub fn client_ip(req: &Request) -> IpAddr {
    req.remote_addr()
        .as_ipv4()
        .map(|addr| IpAddr::V4(*addr.ip()))
        .or_else(|| {
            req.remote_addr()
                .as_ipv6()
                .map(|addr| IpAddr::V6(*addr.ip()))
        })
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
