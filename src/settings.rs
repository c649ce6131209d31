//! One typed settings value, read once from environment variables (and `.env`).
//!
//! Everything the process can be told lives here; the value is passed
//! explicitly to whatever needs it, never read from a global.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// A setting that is missing or cannot be used; the message names the variable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    /// A required variable is not set.
    #[error("setting {name} is required: {why}")]
    Missing {
        /// The environment variable.
        name: &'static str,
        /// Why it is required in this configuration.
        why: &'static str,
    },
    /// A variable is set to something unusable.
    #[error("setting {name} is invalid: {reason}")]
    Invalid {
        /// The environment variable.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

/// Where loans, users and the outbox are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSettings {
    /// The embedded default: one SQLite file.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL server, given as a `postgres://` URL.
    Postgres {
        /// The full connection URL (may hold a password: never log it).
        url: String,
    },
}

impl DatabaseSettings {
    /// A description that is safe to log: the backend and host, never a password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite file {}", path.display()),
            Self::Postgres { url } => match url::Url::parse(url) {
                Ok(parsed) => format!(
                    "postgres at {}:{}",
                    parsed.host_str().unwrap_or("localhost"),
                    parsed.port().unwrap_or(5432)
                ),
                Err(_) => "postgres (unparseable URL)".to_owned(),
            },
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of the process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server listens on (`HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// Directory for the embedded database, mail files and the generated secret (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// The database (`DATABASE_URL`; the SQLite file under `DATA_DIR` when unset).
    pub database: DatabaseSettings,
    /// How long to keep retrying an unreachable database at start (`DB_CONNECT_TIMEOUT_SECS`).
    pub db_connect_timeout: Duration,
    /// Upper bound of pooled database connections (`DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// NATS server URL (`NATS_URL`); `None` selects the in-process bus.
    pub nats_url: Option<String>,
    /// Prefix for NATS stream, consumer and subject names (`NATS_NAMESPACE`),
    /// so several deployments (or test runs) can share one NATS server;
    /// `None` uses the names of SPEC §5 as they are.
    pub nats_namespace: Option<String>,
    /// SMTP server URL (`SMTP_URL`); `None` writes `.eml` files under `DATA_DIR/mail`.
    pub smtp_url: Option<String>,
    /// Sender address of every e-mail (`MAIL_FROM`).
    pub mail_from: String,
    /// HS256 key for access tokens (`JWT_SECRET`); `None` means "generate and keep one under `DATA_DIR`".
    pub jwt_secret: Option<String>,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// API requests per minute per user, or per IP when anonymous (`RATE_LIMIT_PER_MIN`).
    pub rate_limit_per_min: NonZeroU32,
    /// Login attempts per minute per client IP (`LOGIN_RATE_LIMIT_PER_MIN`).
    pub login_rate_limit_per_min: NonZeroU32,
    /// Lifetime of an access token (`ACCESS_TOKEN_TTL_SECS`).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (`REFRESH_TOKEN_TTL_DAYS`).
    pub refresh_token_ttl: Duration,
    /// A loan actor idle this long is stopped; the next command reloads it (`LOAN_ACTOR_IDLE_SECS`).
    pub loan_actor_idle: Duration,
    /// Longest wait for a loan actor's answer before 503 (`ACTOR_CALL_TIMEOUT_MS`).
    pub actor_call_timeout: Duration,
    /// Restarts of one loan actor allowed per window before it answers 503 (`ACTOR_RESTART_LIMIT`).
    pub actor_restart_limit: u32,
    /// The restart budget's window (`ACTOR_RESTART_WINDOW_SECS`).
    pub actor_restart_window: Duration,
    /// How often the metrics summary goes out on `ops.metrics` when on NATS (`OPS_METRICS_INTERVAL_SECS`).
    pub ops_metrics_interval: Duration,
    /// The scheduler: cron expressions, business time zone, batch parallelism.
    pub jobs: crate::jobs::settings::JobSettings,
}

/// Shortest accepted `JWT_SECRET`, in bytes: HS256 keys shorter than the hash are weak.
const MIN_JWT_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        // A missing .env is normal; a malformed one should not silently half-apply.
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(SettingsError::Invalid {
                name: ".env",
                reason: error.to_string(),
            });
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable lookup, so tests never touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let database = match get("DATABASE_URL") {
            None => DatabaseSettings::Sqlite {
                path: data_dir.join("loan-tracker.db"),
            },
            Some(url) => parse_database_url(&url)?,
        };
        let jwt_secret = get("JWT_SECRET");
        if let Some(secret) = &jwt_secret
            && secret.len() < MIN_JWT_SECRET_BYTES
        {
            return Err(invalid(
                "JWT_SECRET",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        if jwt_secret.is_none() && matches!(database, DatabaseSettings::Postgres { .. }) {
            return Err(SettingsError::Missing {
                name: "JWT_SECRET",
                why: "with DATABASE_URL set, instances must share one signing key",
            });
        }
        let jobs = crate::jobs::settings::JobSettings::from_lookup(&lookup)?;
        Ok(Self {
            jobs,
            http_addr: parse_or(
                "HTTP_ADDR",
                get("HTTP_ADDR"),
                "127.0.0.1:8080".parse().expect("valid literal"),
            )?,
            db_connect_timeout: Duration::from_secs(parse_or(
                "DB_CONNECT_TIMEOUT_SECS",
                get("DB_CONNECT_TIMEOUT_SECS"),
                30,
            )?),
            db_max_connections: parse_positive(
                "DB_MAX_CONNECTIONS",
                get("DB_MAX_CONNECTIONS"),
                10,
            )?,
            nats_url: get("NATS_URL")
                .map(|url| parse_scheme("NATS_URL", url, &["nats", "tls"]))
                .transpose()?,
            nats_namespace: get("NATS_NAMESPACE")
                .map(parse_nats_namespace)
                .transpose()?,
            smtp_url: get("SMTP_URL")
                .map(|url| parse_scheme("SMTP_URL", url, &["smtp", "smtps"]))
                .transpose()?,
            mail_from: parse_mail_from(get("MAIL_FROM"))?,
            log_format: parse_log_format(get("LOG_FORMAT"))?,
            rate_limit_per_min: parse_or(
                "RATE_LIMIT_PER_MIN",
                get("RATE_LIMIT_PER_MIN"),
                NonZeroU32::new(100).expect("non-zero"),
            )?,
            login_rate_limit_per_min: parse_or(
                "LOGIN_RATE_LIMIT_PER_MIN",
                get("LOGIN_RATE_LIMIT_PER_MIN"),
                NonZeroU32::new(10).expect("non-zero"),
            )?,
            access_token_ttl: Duration::from_secs(u64::from(parse_positive(
                "ACCESS_TOKEN_TTL_SECS",
                get("ACCESS_TOKEN_TTL_SECS"),
                15 * 60,
            )?)),
            loan_actor_idle: Duration::from_secs(u64::from(parse_positive(
                "LOAN_ACTOR_IDLE_SECS",
                get("LOAN_ACTOR_IDLE_SECS"),
                600,
            )?)),
            actor_call_timeout: Duration::from_millis(u64::from(parse_positive(
                "ACTOR_CALL_TIMEOUT_MS",
                get("ACTOR_CALL_TIMEOUT_MS"),
                5_000,
            )?)),
            actor_restart_limit: parse_positive(
                "ACTOR_RESTART_LIMIT",
                get("ACTOR_RESTART_LIMIT"),
                3,
            )?,
            ops_metrics_interval: Duration::from_secs(u64::from(parse_positive(
                "OPS_METRICS_INTERVAL_SECS",
                get("OPS_METRICS_INTERVAL_SECS"),
                60,
            )?)),
            actor_restart_window: Duration::from_secs(u64::from(parse_positive(
                "ACTOR_RESTART_WINDOW_SECS",
                get("ACTOR_RESTART_WINDOW_SECS"),
                60,
            )?)),
            refresh_token_ttl: Duration::from_secs(
                u64::from(parse_positive(
                    "REFRESH_TOKEN_TTL_DAYS",
                    get("REFRESH_TOKEN_TTL_DAYS"),
                    30,
                )?) * 24
                    * 3600,
            ),
            data_dir,
            database,
            jwt_secret,
        })
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> SettingsError {
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

fn parse_positive(
    name: &'static str,
    raw: Option<String>,
    default: u32,
) -> Result<u32, SettingsError> {
    match parse_or(name, raw, default)? {
        0 => Err(invalid(name, "must be at least 1")),
        value => Ok(value),
    }
}

fn parse_database_url(url: &str) -> Result<DatabaseSettings, SettingsError> {
    let name = "DATABASE_URL";
    let parsed = url::Url::parse(url).map_err(|error| invalid(name, error.to_string()))?;
    match parsed.scheme() {
        "postgres" | "postgresql" => Ok(DatabaseSettings::Postgres {
            url: url.to_owned(),
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

fn parse_scheme(
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

fn parse_nats_namespace(raw: String) -> Result<String, SettingsError> {
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

fn parse_mail_from(raw: Option<String>) -> Result<String, SettingsError> {
    let value = raw.unwrap_or_else(|| "loan-tracker <no-reply@loan-tracker.localhost>".to_owned());
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| value.clone())
        .map_err(|error| invalid("MAIL_FROM", format!("{value:?}: {error}")))
}

fn parse_log_format(raw: Option<String>) -> Result<LogFormat, SettingsError> {
    match raw.as_deref().map(str::trim) {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "LOG_FORMAT",
            format!("{other:?}: use text or json"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_settings_at_all_is_the_embedded_default() {
        let settings = settings(&[]).expect("defaults are valid");
        assert_eq!(settings.http_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            settings.database,
            DatabaseSettings::Sqlite {
                path: PathBuf::from("./data/loan-tracker.db")
            }
        );
        assert!(
            settings.nats_url.is_none()
                && settings.smtp_url.is_none()
                && settings.jwt_secret.is_none()
        );
        assert_eq!(settings.log_format, LogFormat::Text);
    }

    #[test]
    fn postgres_without_jwt_secret_names_the_setting() {
        let error = settings(&[("DATABASE_URL", "postgres://u:p@db/x")]).unwrap_err();
        assert!(error.to_string().contains("JWT_SECRET"), "{error}");
    }

    #[test]
    fn malformed_settings_name_the_variable() {
        for (name, value) in [
            ("HTTP_ADDR", "nowhere"),
            ("DATABASE_URL", "mysql://x/y"),
            ("NATS_URL", "http://x"),
            ("NATS_NAMESPACE", "a.b"),
            ("SMTP_URL", "smtp://"),
            ("LOG_FORMAT", "yaml"),
            ("DB_MAX_CONNECTIONS", "0"),
            ("RATE_LIMIT_PER_MIN", "0"),
            ("LOAN_ACTOR_IDLE_SECS", "-1"),
            ("ACTOR_CALL_TIMEOUT_MS", "0"),
            ("ACCESS_TOKEN_TTL_SECS", "soon"),
            ("JWT_SECRET", "short"),
            ("MAIL_FROM", "not an address"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn redacted_database_never_shows_the_password() {
        let db = DatabaseSettings::Postgres {
            url: "postgres://user:hunter2@db.example:6543/x".into(),
        };
        let shown = db.redacted();
        assert!(
            shown.contains("db.example:6543") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
