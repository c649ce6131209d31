//! Settings of the event flow: how often the relay looks at the outbox
//! unprompted, how long published outbox rows are kept, and how an inbound
//! payment for a loan that is not repaying yet is retried.

use std::time::Duration;

use super::SettingsError;
use super::parse::{Vars, invalid};

/// Default `OUTBOX_POLL_MS`: the relay's safety net (its own instance's
/// commits wake it at once).
pub const DEFAULT_OUTBOX_POLL_MS: u32 = 1_000;
/// Longest accepted `OUTBOX_POLL_MS` (10 minutes): rows another instance
/// left behind wait at most this long.
const MAX_OUTBOX_POLL_MS: u32 = 600_000;
/// Default `OUTBOX_RETENTION_DAYS`.
pub const DEFAULT_OUTBOX_RETENTION_DAYS: u32 = 7;
/// Longest accepted `OUTBOX_RETENTION_DAYS` (about ten years).
const MAX_OUTBOX_RETENTION_DAYS: u32 = 3650;
/// Default `OUTBOX_PURGE_INTERVAL_SECS`.
pub const DEFAULT_OUTBOX_PURGE_INTERVAL_SECS: u32 = 600;
/// Default `INBOUND_PENDING_RETRY_FIRST_MS`: the first pause.
pub const DEFAULT_PENDING_RETRY_FIRST_MS: u32 = 1_000;
/// Default `INBOUND_PENDING_RETRY_MAX_MS`: the longest pause (5 minutes).
pub const DEFAULT_PENDING_RETRY_MAX_MS: u32 = 300_000;
/// Default `INBOUND_PENDING_RETRY_ATTEMPTS`: with the pauses above, about an hour in all.
pub const DEFAULT_PENDING_RETRY_ATTEMPTS: u32 = 20;
/// Most accepted `INBOUND_PENDING_RETRY_ATTEMPTS`.
const MAX_PENDING_RETRY_ATTEMPTS: u32 = 1_000;

/// Retries of an inbound payment whose loan is still `PENDING` (it may be
/// approved soon): doubling pauses from `first_pause` up to `max_pause`, at
/// most `max_attempts` deliveries, then a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRetry {
    /// Pause after the first delivery.
    pub first_pause: Duration,
    /// Longest pause between deliveries.
    pub max_pause: Duration,
    /// Deliveries in all (the first included) before the message is dead-lettered.
    pub max_attempts: u32,
}

/// The event flow's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// Longest pause between relay rounds when no commit of this instance
    /// wakes it (`OUTBOX_POLL_MS`): how soon rows written elsewhere (another
    /// instance, the `admin` command) or left by a crash are published.
    pub outbox_poll_interval: Duration,
    /// Published outbox rows older than this are deleted (`OUTBOX_RETENTION_DAYS`).
    pub outbox_retention: Duration,
    /// How often the purge runs (`OUTBOX_PURGE_INTERVAL_SECS`).
    pub outbox_purge_interval: Duration,
    /// Inbound payments for a `PENDING` loan (`INBOUND_PENDING_RETRY_*`).
    pub pending_retry: PendingRetry,
}

impl EventSettings {
    pub(super) fn from_vars(vars: &Vars<'_>) -> Result<Self, SettingsError> {
        let outbox_poll_interval = vars.millis("OUTBOX_POLL_MS", DEFAULT_OUTBOX_POLL_MS)?;
        if outbox_poll_interval > Duration::from_millis(u64::from(MAX_OUTBOX_POLL_MS)) {
            return Err(invalid(
                "OUTBOX_POLL_MS",
                format!("at most {MAX_OUTBOX_POLL_MS} (ms)"),
            ));
        }
        let retention_days =
            vars.positive("OUTBOX_RETENTION_DAYS", DEFAULT_OUTBOX_RETENTION_DAYS)?;
        if retention_days > MAX_OUTBOX_RETENTION_DAYS {
            return Err(invalid(
                "OUTBOX_RETENTION_DAYS",
                format!("at most {MAX_OUTBOX_RETENTION_DAYS} days"),
            ));
        }
        let first_pause = vars.millis(
            "INBOUND_PENDING_RETRY_FIRST_MS",
            DEFAULT_PENDING_RETRY_FIRST_MS,
        )?;
        let max_pause =
            vars.millis("INBOUND_PENDING_RETRY_MAX_MS", DEFAULT_PENDING_RETRY_MAX_MS)?;
        if max_pause < first_pause {
            return Err(invalid(
                "INBOUND_PENDING_RETRY_MAX_MS",
                "must not be below INBOUND_PENDING_RETRY_FIRST_MS",
            ));
        }
        let max_attempts = vars.positive(
            "INBOUND_PENDING_RETRY_ATTEMPTS",
            DEFAULT_PENDING_RETRY_ATTEMPTS,
        )?;
        if max_attempts > MAX_PENDING_RETRY_ATTEMPTS {
            return Err(invalid(
                "INBOUND_PENDING_RETRY_ATTEMPTS",
                format!("at most {MAX_PENDING_RETRY_ATTEMPTS}"),
            ));
        }
        Ok(Self {
            outbox_poll_interval,
            outbox_retention: Duration::from_secs(u64::from(retention_days) * 24 * 3600),
            outbox_purge_interval: vars.seconds(
                "OUTBOX_PURGE_INTERVAL_SECS",
                DEFAULT_OUTBOX_PURGE_INTERVAL_SECS,
            )?,
            pending_retry: PendingRetry {
                first_pause,
                max_pause,
                max_attempts,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::settings::Settings;

    fn events(pairs: &[(&str, &str)]) -> Result<super::EventSettings, String> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::from_lookup(|name| map.get(name).map(|value| (*value).to_owned()))
            .map(|settings| settings.events)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_poll_each_second_keep_a_week_and_retry_pending_loans_for_about_an_hour() {
        let settings = events(&[]).unwrap();
        assert_eq!(settings.outbox_poll_interval, Duration::from_secs(1));
        assert_eq!(
            settings.outbox_retention,
            Duration::from_secs(7 * 24 * 3600)
        );
        let retry = settings.pending_retry;
        assert_eq!(
            retry.first_pause,
            Duration::from_millis(u64::from(super::DEFAULT_PENDING_RETRY_FIRST_MS))
        );
        assert_eq!(
            retry.max_pause,
            Duration::from_millis(u64::from(super::DEFAULT_PENDING_RETRY_MAX_MS))
        );
        assert_eq!(retry.max_attempts, super::DEFAULT_PENDING_RETRY_ATTEMPTS);
        // How long that retries in all: `bus::backoff`'s tests.
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("OUTBOX_POLL_MS", "0"),
            ("OUTBOX_POLL_MS", "600001"),
            ("OUTBOX_RETENTION_DAYS", "0"),
            ("OUTBOX_RETENTION_DAYS", "99999"),
            ("OUTBOX_PURGE_INTERVAL_SECS", "soon"),
            ("INBOUND_PENDING_RETRY_ATTEMPTS", "0"),
            ("INBOUND_PENDING_RETRY_MAX_MS", "10"),
        ] {
            let error = events(&[(name, value)]).unwrap_err();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }
}
