//! One typed settings value, read once from environment variables (and `.env`).
//!
//! Everything the process can be told lives here; the value is passed
//! explicitly to whatever needs it, never read from a global.

pub mod events;
pub mod jobs;
mod parse;
mod secret;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use self::secret::Secret;

pub(crate) use self::parse::invalid;
use self::parse::{
    Vars, parse_database_url, parse_log_format, parse_mail_from, parse_nats_namespace, parse_scheme,
};

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
        /// The full connection URL (may hold a password: redacted in `Debug`).
        url: Secret,
    },
}

impl DatabaseSettings {
    /// A description that is safe to log: the backend and host, never a password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite file {}", path.display()),
            Self::Postgres { url } => match url::Url::parse(url.expose()) {
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
    /// This instance's id among several sharing one database and NATS
    /// (`CLUSTER_INSTANCE_ID`, 1–64 of `A-Z a-z 0-9 _ -`, or `auto` for a
    /// random one); when set, loans are owned per partition over NATS KV
    /// leases and commands are forwarded to their owner (SPEC §8). Needs
    /// `NATS_URL` and `DATABASE_URL`. `None`: a single instance owns every loan.
    pub cluster_instance_id: Option<String>,
    /// SMTP server URL (`SMTP_URL`); `None` writes `.eml` files under `DATA_DIR/mail`.
    pub smtp_url: Option<Secret>,
    /// Sender address of every e-mail (`MAIL_FROM`).
    pub mail_from: String,
    /// HS256 key for access tokens (`JWT_SECRET`); `None` means "generate and keep one under `DATA_DIR`".
    pub jwt_secret: Option<Secret>,
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
    /// How often each instance reads the session change log, so a role change,
    /// deactivation or logout anywhere ends the affected access tokens here
    /// within a second (`SESSION_POLL_MS`, 1–500).
    pub session_poll_interval: Duration,
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
    pub jobs: jobs::JobSettings,
    /// The event flow: outbox retention, inbound retries.
    pub events: events::EventSettings,
}

/// Longest accepted `SESSION_POLL_MS`: it must leave slack under the
/// standing cache's freshness limit (`accounts::standing::FRESHNESS`, 750 ms),
/// which keeps its one-second guarantee.
pub const MAX_SESSION_POLL: Duration = Duration::from_millis(500);

/// `SESSION_POLL_MS`: at most [`MAX_SESSION_POLL`].
fn parse_session_poll(vars: &Vars<'_>) -> Result<Duration, SettingsError> {
    let interval = vars.millis("SESSION_POLL_MS", 250)?;
    let max = MAX_SESSION_POLL;
    if interval > max {
        return Err(invalid(
            "SESSION_POLL_MS",
            format!("must be at most {} (ms)", max.as_millis()),
        ));
    }
    Ok(interval)
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
        let jwt_secret = get("JWT_SECRET").map(Secret::from);
        if let Some(secret) = &jwt_secret
            && secret.expose().len() < MIN_JWT_SECRET_BYTES
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
        let cluster_instance_id = get("CLUSTER_INSTANCE_ID").map(|id| id.trim().to_owned());
        if cluster_instance_id.is_some() {
            if get("NATS_URL").is_none() {
                return Err(SettingsError::Missing {
                    name: "NATS_URL",
                    why: "with CLUSTER_INSTANCE_ID set, instances lease loans and forward commands over NATS",
                });
            }
            if !matches!(database, DatabaseSettings::Postgres { .. }) {
                return Err(SettingsError::Missing {
                    name: "DATABASE_URL",
                    why: "with CLUSTER_INSTANCE_ID set, instances share one PostgreSQL database",
                });
            }
        }
        let jobs = jobs::JobSettings::from_lookup(&lookup)?;
        let vars = Vars(&get);
        Ok(Self {
            jobs,
            events: events::EventSettings::from_vars(&vars)?,
            http_addr: vars.parsed(
                "HTTP_ADDR",
                "127.0.0.1:8080".parse().expect("valid literal"),
            )?,
            db_connect_timeout: Duration::from_secs(vars.parsed("DB_CONNECT_TIMEOUT_SECS", 30)?),
            db_max_connections: vars.positive("DB_MAX_CONNECTIONS", 10)?,
            nats_url: get("NATS_URL")
                .map(|url| parse_scheme("NATS_URL", url, &["nats", "tls"]))
                .transpose()?,
            nats_namespace: get("NATS_NAMESPACE")
                .map(parse_nats_namespace)
                .transpose()?,
            cluster_instance_id,
            smtp_url: get("SMTP_URL")
                .map(|url| parse_scheme("SMTP_URL", url, &["smtp", "smtps"]).map(Secret::from))
                .transpose()?,
            mail_from: parse_mail_from(get("MAIL_FROM"))?,
            log_format: parse_log_format(get("LOG_FORMAT"))?,
            rate_limit_per_min: vars.parsed(
                "RATE_LIMIT_PER_MIN",
                NonZeroU32::new(100).expect("non-zero"),
            )?,
            login_rate_limit_per_min: vars.parsed(
                "LOGIN_RATE_LIMIT_PER_MIN",
                NonZeroU32::new(10).expect("non-zero"),
            )?,
            access_token_ttl: vars.seconds("ACCESS_TOKEN_TTL_SECS", 15 * 60)?,
            refresh_token_ttl: vars.seconds("REFRESH_TOKEN_TTL_DAYS", 30)? * 24 * 3600,
            session_poll_interval: parse_session_poll(&vars)?,
            loan_actor_idle: vars.seconds("LOAN_ACTOR_IDLE_SECS", 600)?,
            actor_call_timeout: vars.millis("ACTOR_CALL_TIMEOUT_MS", 5_000)?,
            actor_restart_limit: vars.positive("ACTOR_RESTART_LIMIT", 3)?,
            actor_restart_window: vars.seconds("ACTOR_RESTART_WINDOW_SECS", 60)?,
            ops_metrics_interval: vars.seconds("OPS_METRICS_INTERVAL_SECS", 60)?,
            data_dir,
            database,
            jwt_secret,
        })
    }
}
