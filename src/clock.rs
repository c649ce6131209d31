//! The one clock every "today" and "now" is read from, so tests and `as_of`
//! runs can move time without waiting.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};

/// Wall-clock time, or a manual clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    System,
    Manual(Mutex<DateTime<Utc>>),
}

impl Clock {
    /// The real time.
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock stopped at `start` (tests).
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Source::Manual(Mutex::new(start))))
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Source::System => Utc::now(),
            Source::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// The current business date (UTC).
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Moves a manual clock to `at`; a system clock cannot be set (returns false).
    pub fn set(&self, at: DateTime<Utc>) -> bool {
        match &*self.0 {
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
