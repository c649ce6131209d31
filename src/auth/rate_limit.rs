//! Rate limits: per user (or per client IP when anonymous) on every API
//! route, per IP on login, and a lockout after repeated failed logins.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use salvo::prelude::*;

use super::access::Principal;
use crate::http::problem::ApiError;
use crate::http::state::app_state;

/// Failed logins allowed per account within [`FAILURE_WINDOW`].
const MAX_FAILED_LOGINS: usize = 5;
/// Window of the failed-login count.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts whose failures we track at most; beyond it, stale ones are dropped
/// first and then the oldest, so memory stays bounded under a spraying attack.
const MAX_TRACKED_ACCOUNTS: usize = 100_000;
/// How often idle limiter keys are evicted.
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(60);

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    User(uuid::Uuid),
    Ip(IpAddr),
}

/// All limiters of the process.
pub struct RateLimits {
    general: DefaultKeyedRateLimiter<Caller>,
    login_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    failed_logins: Mutex<HashMap<String, VecDeque<Instant>>>,
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
            failed_logins: Mutex::new(HashMap::new()),
        }
    }

    /// Drops limiter state of keys that have been idle long enough to be full again.
    pub fn evict_idle(&self) {
        self.general.retain_recent();
        self.general.shrink_to_fit();
        self.login_per_ip.retain_recent();
        self.login_per_ip.shrink_to_fit();
        let mut failures = self
            .failed_logins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        failures.retain(|_, attempts| {
            attempts
                .back()
                .is_some_and(|last| now.duration_since(*last) < FAILURE_WINDOW)
        });
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

    /// 429 while `account` has had too many failed logins in the window.
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        let mut failures = self
            .failed_logins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(attempts) = failures.get_mut(account) else {
            return Ok(());
        };
        let now = Instant::now();
        while attempts
            .front()
            .is_some_and(|first| now.duration_since(*first) >= FAILURE_WINDOW)
        {
            attempts.pop_front();
        }
        match attempts.front() {
            Some(first) if attempts.len() >= MAX_FAILED_LOGINS => Err(ApiError::TooManyRequests {
                retry_after_secs: (FAILURE_WINDOW - now.duration_since(*first))
                    .as_secs()
                    .max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed login for `account`.
    pub fn record_failure(&self, account: &str) {
        let mut failures = self
            .failed_logins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= MAX_TRACKED_ACCOUNTS && !failures.contains_key(account) {
            let now = Instant::now();
            failures.retain(|_, attempts| {
                attempts
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < FAILURE_WINDOW)
            });
            if failures.len() >= MAX_TRACKED_ACCOUNTS
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, attempts)| attempts.back().copied())
                    .map(|(key, _)| key.clone())
            {
                failures.remove(&oldest);
            }
        }
        let attempts = failures.entry(account.to_owned()).or_default();
        attempts.push_back(Instant::now());
        while attempts.len() > MAX_FAILED_LOGINS {
            attempts.pop_front();
        }
    }

    /// Forgets the failures of `account` after a successful login.
    pub fn clear_failures(&self, account: &str) {
        self.failed_logins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(account);
    }
}

fn too_many(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::TooManyRequests {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
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

/// Hoop: counts the request against its user (or IP when anonymous); 429 over the limit.
#[handler]
pub async fn limit_requests(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let caller = match Principal::of(depot) {
        Ok(principal) => Caller::User(principal.user_id),
        Err(_) => Caller::Ip(client_ip(req)),
    };
    let verdict = app_state(depot).and_then(|state| {
        state
            .rate_limits
            .general
            .check_key(&caller)
            .map_err(|not_until| too_many(&not_until))
    });
    if let Err(error) = verdict {
        error.write(req, depot, res).await;
        ctrl.skip_rest();
    }
}
