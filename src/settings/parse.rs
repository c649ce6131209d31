//! Parsing one variable at a time; every error names the variable.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::{DatabaseSettings, LogFormat, Secret, SettingsError};

/// Typed reads of the (already blank-filtered) variables.
pub(super) struct Vars<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable parsed as `T`, or `default` when unset.
    pub(super) fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        parse_or(name, (self.0)(name), default)
    }

    /// A count of at least 1.
    pub(super) fn positive(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        match self.parsed(name, default)? {
            0 => Err(invalid(name, "must be at least 1")),
            value => Ok(value),
        }
    }

    /// A positive number of seconds.
    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: u32,
    ) -> Result<Duration, SettingsError> {
        Ok(Duration::from_secs(u64::from(
            self.positive(name, default)?,
        )))
    }

    /// A positive number of milliseconds.
    pub(super) fn millis(
        &self,
        name: &'static str,
        default: u32,
    ) -> Result<Duration, SettingsError> {
        Ok(Duration::from_millis(u64::from(
            self.positive(name, default)?,
        )))
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn parse_or<T: FromStr>(
    name: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|error| invalid(name, format!("{raw:?}: {error}"))),
    }
}

pub(super) fn parse_database_url(url: &str) -> Result<DatabaseSettings, SettingsError> {
    let name = "DATABASE_URL";
    let parsed = url::Url::parse(url).map_err(|error| invalid(name, error.to_string()))?;
    match parsed.scheme() {
        "postgres" | "postgresql" => Ok(DatabaseSettings::Postgres {
            url: Secret::from(url),
        }),
        "sqlite" => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(invalid(
                    name,
                    "sqlite needs a file path (an in-memory database would lose every write)",
                ));
            }
            Ok(DatabaseSettings::Sqlite {
                path: PathBuf::from(path),
            })
        }
        other => Err(invalid(
            name,
            format!("unsupported scheme {other:?}; use postgres:// or sqlite://"),
        )),
    }
}

pub(super) fn parse_scheme(
    name: &'static str,
    url: String,
    schemes: &[&str],
) -> Result<String, SettingsError> {
    let parsed = url::Url::parse(&url).map_err(|error| invalid(name, error.to_string()))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(invalid(name, format!("scheme must be one of {schemes:?}")));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(name, "a host is required"));
    }
    Ok(url)
}

/// Longest `NATS_NAMESPACE`: stream names must stay well under NATS's limits.
const MAX_NATS_NAMESPACE_CHARS: usize = 32;

pub(super) fn parse_nats_namespace(raw: String) -> Result<String, SettingsError> {
    let valid = raw.len() <= MAX_NATS_NAMESPACE_CHARS
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(raw)
    } else {
        Err(invalid(
            "NATS_NAMESPACE",
            format!("{raw:?}: up to {MAX_NATS_NAMESPACE_CHARS} letters, digits, '_' or '-'"),
        ))
    }
}

pub(super) fn parse_mail_from(raw: Option<String>) -> Result<String, SettingsError> {
    let value = raw.unwrap_or_else(|| "loan-tracker <no-reply@loan-tracker.localhost>".to_owned());
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| value.clone())
        .map_err(|error| invalid("MAIL_FROM", format!("{value:?}: {error}")))
}

pub(super) fn parse_log_format(raw: Option<String>) -> Result<LogFormat, SettingsError> {
    match raw.as_deref().map(str::trim) {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "LOG_FORMAT",
            format!("{other:?}: use text or json"),
        )),
    }
}
