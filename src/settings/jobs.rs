//! The scheduler's settings: when each job runs, the business time zone, and
//! how many loans a job works on at once. Parsed with the rest of
//! [`crate::settings::Settings`], so a bad value stops the process at start.

use std::fmt;

use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::{SettingsError, invalid};

/// Default `REMINDER_CRON`: every day at 06:00 in the business time zone.
pub const DEFAULT_REMINDER_CRON: &str = "0 0 6 * * *";
/// Default `OVERDUE_CRON`: every day at 00:30, just after the date changes.
pub const DEFAULT_OVERDUE_CRON: &str = "0 30 0 * * *";
/// Default `JOB_BATCH_PARALLELISM`: loans worked on at once by one run.
pub const DEFAULT_BATCH_PARALLELISM: u32 = 8;
/// Largest accepted `JOB_BATCH_PARALLELISM`: more would only queue on the
/// database pool and the actors' mailboxes.
pub const MAX_BATCH_PARALLELISM: u32 = 256;

/// A validated six-field cron expression (`sec min hour day-of-month month day-of-week`).
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
}

impl CronSchedule {
    /// Parses `expression` the way tokio-cron-scheduler will: seconds field
    /// required, day-of-month and day-of-week both have to match.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let expression = expression.trim();
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expression)
            .map_err(|error| format!("{expression:?} is not a cron expression with a seconds field (e.g. \"0 30 0 * * *\"): {error}"))?;
        Ok(Self {
            expression: expression.to_owned(),
            cron,
        })
    }

    /// The expression as configured.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The parsed schedule.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.expression)
    }
}

/// Everything the scheduler is told.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// When `payment-reminders` runs (`REMINDER_CRON`); `None`: never on its own.
    pub reminder_cron: Option<CronSchedule>,
    /// When `overdue` runs (`OVERDUE_CRON`); `None`: never on its own.
    pub overdue_cron: Option<CronSchedule>,
    /// The zone "today" and the cron expressions are read in (`BUSINESS_TIMEZONE`).
    pub business_timezone: Tz,
    /// Loans (or reminders) a run works on at once (`JOB_BATCH_PARALLELISM`).
    pub batch_parallelism: u32,
}

impl JobSettings {
    /// Reads the job settings. `lookup` returns the raw value: an empty cron
    /// setting disables its job, an unset one takes the default.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Ok(Self {
            reminder_cron: cron_setting(
                "REMINDER_CRON",
                lookup("REMINDER_CRON"),
                DEFAULT_REMINDER_CRON,
            )?,
            overdue_cron: cron_setting(
                "OVERDUE_CRON",
                lookup("OVERDUE_CRON"),
                DEFAULT_OVERDUE_CRON,
            )?,
            business_timezone: timezone_setting(lookup("BUSINESS_TIMEZONE"))?,
            batch_parallelism: parallelism_setting(lookup("JOB_BATCH_PARALLELISM"))?,
        })
    }
}

fn cron_setting(
    name: &'static str,
    raw: Option<String>,
    default: &str,
) -> Result<Option<CronSchedule>, SettingsError> {
    match raw {
        None => CronSchedule::parse(default).map(Some),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => CronSchedule::parse(&raw).map(Some),
    }
    .map_err(|reason| invalid(name, reason))
}

fn timezone_setting(raw: Option<String>) -> Result<Tz, SettingsError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(Tz::UTC),
        Some(name) => name.parse().map_err(|_| {
            invalid(
                "BUSINESS_TIMEZONE",
                format!("{name:?} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"),
            )
        }),
    }
}

fn parallelism_setting(raw: Option<String>) -> Result<u32, SettingsError> {
    let name = "JOB_BATCH_PARALLELISM";
    let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
        return Ok(DEFAULT_BATCH_PARALLELISM);
    };
    match raw.trim().parse::<u32>() {
        Ok(value) if (1..=MAX_BATCH_PARALLELISM).contains(&value) => Ok(value),
        _ => Err(invalid(
            name,
            format!("{raw:?}: a whole number from 1 to {MAX_BATCH_PARALLELISM}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn job_settings(pairs: &[(&str, &str)]) -> Result<JobSettings, SettingsError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        JobSettings::from_lookup(&|name| map.get(name).map(|value| (*value).to_owned()))
    }

    #[test]
    fn unset_cron_settings_take_the_daily_defaults() {
        let settings = job_settings(&[]).unwrap();
        assert_eq!(
            settings.reminder_cron.unwrap().expression(),
            DEFAULT_REMINDER_CRON
        );
        assert_eq!(
            settings.overdue_cron.unwrap().expression(),
            DEFAULT_OVERDUE_CRON
        );
        assert_eq!(settings.business_timezone, Tz::UTC);
    }

    #[test]
    fn an_empty_cron_setting_disables_its_job() {
        let settings = job_settings(&[("OVERDUE_CRON", " ")]).unwrap();
        assert!(settings.overdue_cron.is_none() && settings.reminder_cron.is_some());
    }

    #[test]
    fn bad_job_settings_name_the_variable() {
        for (name, value) in [
            ("REMINDER_CRON", "0 6 * * *"),
            ("OVERDUE_CRON", "every day"),
            ("BUSINESS_TIMEZONE", "Mars/Olympus"),
            ("JOB_BATCH_PARALLELISM", "0"),
            ("JOB_BATCH_PARALLELISM", "100000"),
        ] {
            let error = job_settings(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}
