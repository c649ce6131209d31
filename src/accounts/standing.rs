//! A caller's *current* standing — role, active flag, whether the token's
//! session is still live — read from the database and kept in a bounded
//! in-memory cache, so each request is judged by the present, not by what
//! its access token said when it was issued.
//!
//! Staleness is bounded in two ways:
//! - in this instance, a change made through it drops the user at once
//!   ([`StandingCache::forget`]);
//! - for every instance, [`StandingCache::follow_changes`] reads the
//!   session change log ([`crate::auth::changes`]) every poll interval and drops
//!   the users it names. A cached entry is used only while the last
//!   successful read started less than [`FRESHNESS`] ago; otherwise the
//!   database is asked on every request. So a change committed anywhere
//!   ends the affected tokens everywhere within [`FRESHNESS`] (< 1 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::users;
use crate::auth::changes::{self, Recent};
use crate::auth::role::Role;
use crate::auth::sessions;
use crate::store::{Db, StoreError};

/// A cached entry is used only while the last successful read of the change
/// log started less than this long ago (the cross-instance guarantee).
pub const FRESHNESS: Duration = Duration::from_millis(750);
/// How often stale cache entries and old change-log rows are dropped.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest accepted poll interval: it must leave slack under [`FRESHNESS`].
pub const MAX_POLL_INTERVAL: Duration = crate::settings::MAX_SESSION_POLL;
/// Each read of the change log reaches back this far before the start of
/// the previous successful read: covers transactions that commit out of
/// order and clock skew between instances (up to about this much).
const LOOKBACK_MS: i64 = 2_000;
/// After this long without a successful read, rows may have been purged
/// meanwhile: the whole cache is dropped instead.
const MAX_READ_GAP: Duration = Duration::from_secs(60);
/// Rows of the change log are kept this long.
const CHANGE_RETENTION_MS: i64 = 10 * 60 * 1000;
/// An entry is re-read after this long even without a change in the log
/// (so a change written behind the service's back, e.g. by hand in SQL,
/// also applies, just later).
const MAX_ENTRY_AGE: Duration = Duration::from_secs(60);
/// Users cached at most.
const MAX_USERS: usize = 100_000;
/// Sessions cached per user at most (more clears that user's sessions).
const MAX_SESSIONS_PER_USER: usize = 16;

/// How a request with a genuine access token is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user is active and the session live; act with this (current) role.
    Allowed(Role),
    /// Refused (401): the reason, safe to show.
    Refused(&'static str),
}

/// What the database says about a user and one of their sessions.
#[derive(Debug, Clone, Copy)]
struct Standing {
    role: Role,
    active: bool,
    session_live: bool,
}

impl Standing {
    fn verdict(self) -> Verdict {
        if !self.active {
            Verdict::Refused("the account is deactivated")
        } else if !self.session_live {
            Verdict::Refused("this session has ended (logged out or revoked)")
        } else {
            Verdict::Allowed(self.role)
        }
    }
}

/// One cached user: role and active flag, and the sessions seen so far.
#[derive(Debug)]
struct UserEntry {
    role: Role,
    active: bool,
    /// Session (refresh family) id → still live.
    sessions: HashMap<Uuid, bool>,
    fetched_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<Uuid, UserEntry>,
    /// Start (monotonic, wall-clock ms) of the last successful read of the change log.
    last_read: Option<(Instant, i64)>,
    /// Bumped by every invalidation: a database read that started before
    /// one must not fill the cache with what it read.
    generation: u64,
}

impl Inner {
    fn fresh(&self, now: Instant) -> bool {
        self.last_read
            .is_some_and(|(started, _)| now.duration_since(started) < FRESHNESS)
    }

    fn cached(&self, user_id: Uuid, session_id: Uuid, now: Instant) -> Option<Standing> {
        let entry = self.users.get(&user_id)?;
        if now.duration_since(entry.fetched_at) >= MAX_ENTRY_AGE {
            return None;
        }
        let session_live = *entry.sessions.get(&session_id)?;
        Some(Standing {
            role: entry.role,
            active: entry.active,
            session_live,
        })
    }

    fn fill(&mut self, user_id: Uuid, session_id: Uuid, standing: Standing, now: Instant) {
        if self.users.len() >= MAX_USERS
            && !self.users.contains_key(&user_id)
            && let Some(victim) = self.users.keys().next().copied()
        {
            self.users.remove(&victim);
        }
        let entry = self.users.entry(user_id).or_insert_with(|| UserEntry {
            role: standing.role,
            active: standing.active,
            sessions: HashMap::new(),
            fetched_at: now,
        });
        if entry.role != standing.role
            || entry.active != standing.active
            || entry.sessions.len() >= MAX_SESSIONS_PER_USER
        {
            entry.sessions.clear();
        }
        entry.role = standing.role;
        entry.active = standing.active;
        entry.fetched_at = now;
        entry.sessions.insert(session_id, standing.session_live);
    }
}

/// The bounded cache of users' current standing.
#[derive(Debug)]
pub struct StandingCache {
    inner: Mutex<Inner>,
    poll_interval: Duration,
}

impl StandingCache {
    /// An empty cache whose [`Self::follow_changes`] reads every `poll_interval`
    /// (at most [`MAX_POLL_INTERVAL`]; longer is cut to it).
    pub fn new(poll_interval: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            poll_interval: poll_interval.min(MAX_POLL_INTERVAL),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Judges a genuine token of `user_id` for session `session_id`: from the
    /// cache when it is fresh, else with one read of the database.
    pub async fn check(
        &self,
        db: &Db,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Verdict, StoreError> {
        let generation = {
            let inner = self.lock();
            let now = Instant::now();
            if inner.fresh(now)
                && let Some(standing) = inner.cached(user_id, session_id, now)
            {
                return Ok(standing.verdict());
            }
            inner.generation
        };
        let Some(standing) = load(db, user_id, session_id).await? else {
            return Ok(Verdict::Refused("the account no longer exists"));
        };
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.fill(user_id, session_id, standing, Instant::now());
        }
        Ok(standing.verdict())
    }

    /// Drops what is cached about `user_id` (after a change made here).
    pub fn forget(&self, user_id: Uuid) {
        let mut inner = self.lock();
        inner.users.remove(&user_id);
        inner.generation += 1;
    }

    /// Drops entries past their age (housekeeping; keeps memory to active users).
    pub fn evict_stale(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner
            .users
            .retain(|_, entry| now.duration_since(entry.fetched_at) < MAX_ENTRY_AGE);
        inner.users.shrink_to_fit();
    }

    /// Reads the change log once and drops the users it names; returns
    /// whether the read succeeded.
    pub async fn read_changes(&self, db: &Db) -> bool {
        let started = Instant::now();
        let started_ms = Utc::now().timestamp_millis();
        let previous = self.lock().last_read;
        let recent = match previous {
            Some((at, _)) if started.duration_since(at) > MAX_READ_GAP => Ok(Recent::Overflow),
            Some((_, at_ms)) => changes::since(db, at_ms - LOOKBACK_MS).await,
            None => changes::since(db, started_ms - LOOKBACK_MS).await,
        };
        let recent = match recent {
            Ok(recent) => recent,
            Err(error) => {
                tracing::warn!(%error, "reading the session change log failed; access checks go to the database");
                return false;
            }
        };
        let mut inner = self.lock();
        match recent {
            Recent::Users(users) if users.is_empty() => {}
            Recent::Users(users) => {
                for user_id in users {
                    inner.users.remove(&user_id);
                }
                inner.generation += 1;
            }
            Recent::Overflow => {
                inner.users.clear();
                inner.generation += 1;
            }
        }
        inner.last_read = Some((started, started_ms));
        true
    }

    /// Runs for ever: reads the change log every poll interval, and purges
    /// old rows of it now and then.
    pub async fn follow_changes(&self, db: Db) {
        let mut ticks = tokio::time::interval(self.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = Instant::now();
        loop {
            ticks.tick().await;
            self.read_changes(&db).await;
            if last_purge.elapsed() >= PURGE_INTERVAL {
                last_purge = Instant::now();
                self.evict_stale();
                let before_ms = Utc::now().timestamp_millis() - CHANGE_RETENTION_MS;
                if let Err(error) = changes::purge(&db, before_ms).await {
                    tracing::warn!(%error, "purging the session change log failed");
                }
            }
        }
    }
}

/// The user's role and active flag, and whether `session_id` (a refresh
/// family of theirs) still has an unrevoked token; `None` without the user.
async fn load(db: &Db, user_id: Uuid, session_id: Uuid) -> Result<Option<Standing>, StoreError> {
    let (user, session_live) = tokio::try_join!(
        users::find_by_id(db, user_id),
        sessions::is_live(db, user_id, session_id)
    )?;
    Ok(user.map(|user| Standing {
        role: user.role,
        active: user.active,
        session_live,
    }))
}
