//! The one clock every "today" and "now" is read from, so tests and `as_of`
//! runs can move time without waiting.
//!
//! "Today" is the date in the business time zone (`BUSINESS_TIMEZONE`, UTC by
//! default): a loan due on the 5th is late from the 6th *there*, wherever the
//! servers run.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Wall-clock time, or a manual clock that only moves when told to, read in
/// one business time zone.
#[derive(Debug, Clone)]
pub struct Clock {
    source: Arc<Source>,
    timezone: Tz,
}

#[derive(Debug)]
enum Source {
    System,
    Manual(Mutex<DateTime<Utc>>),
}

impl Clock {
    /// The real time.
    pub fn system() -> Self {
        Self {
            source: Arc::new(Source::System),
            timezone: Tz::UTC,
        }
    }

    /// A clock stopped at `start` (tests).
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self {
            source: Arc::new(Source::Manual(Mutex::new(start))),
            timezone: Tz::UTC,
        }
    }

    /// The same clock (moving one moves the other) with "today" read in `timezone`.
    pub fn in_timezone(&self, timezone: Tz) -> Self {
        Self {
            source: Arc::clone(&self.source),
            timezone,
        }
    }

    /// The business time zone "today" is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.source {
            Source::System => Utc::now(),
            Source::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// The current business date: today in the business time zone.
    pub fn today(&self) -> NaiveDate {
        self.date_of(self.now())
    }

    /// The business date of the instant `at`.
    pub fn date_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.timezone).date_naive()
    }

    /// Moves a manual clock to `at`; a system clock cannot be set (returns false).
    pub fn set(&self, at: DateTime<Utc>) -> bool {
        match &*self.source {
            Source::System => false,
            Source::Manual(current) => {
                *current
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn today_is_the_date_in_the_business_time_zone() {
        let late_evening_utc = Utc.with_ymd_and_hms(2026, 3, 9, 23, 30, 0).unwrap();
        let clock = Clock::manual(late_evening_utc);
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2026, 3, 9).unwrap());
        let tokyo = clock.in_timezone(chrono_tz::Asia::Tokyo);
        assert_eq!(tokyo.today(), NaiveDate::from_ymd_opt(2026, 3, 10).unwrap());
        // One source: moving the UTC clock moves the Tokyo one.
        clock.set(late_evening_utc - chrono::Duration::hours(10));
        assert_eq!(tokyo.today(), NaiveDate::from_ymd_opt(2026, 3, 9).unwrap());
    }
}
