//! The event bus connection: NATS JetStream when `NATS_URL` is set, else in-process.

use std::time::Duration;

use thiserror::Error;

/// How long start-up waits for a first NATS connection before carrying on
/// (the client keeps reconnecting in the background; `/ready` reports it).
const NATS_FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Failure of the bus adapter.
#[derive(Debug, Error)]
pub enum BusError {
    /// The NATS URL could not be used.
    #[error("connecting to NATS at {target}: {cause}")]
    Connect {
        /// Host and port (never credentials).
        target: String,
        /// What the client said.
        cause: String,
    },
    /// The bus is not connected right now.
    #[error("{0}")]
    NotConnected(String),
}

/// A live connection to the bus.
#[derive(Debug, Clone)]
pub enum BusConnection {
    /// Events stay inside this process.
    InProcess,
    /// A NATS client (JetStream is reached through it).
    Nats(async_nats::Client),
}

impl BusConnection {
    /// Connects as the settings say; NATS keeps retrying in the background.
    pub async fn connect(nats_url: Option<&str>) -> Result<Self, BusError> {
        let Some(url) = nats_url else {
            return Ok(Self::InProcess);
        };
        let target = redact(url);
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .name("loan-tracker")
            .connect(url)
            .await
            .map_err(|error| BusError::Connect {
                target: target.clone(),
                cause: error.to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + NATS_FIRST_CONNECT_WAIT;
        while client.connection_state() != async_nats::connection::State::Connected
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if client.connection_state() != async_nats::connection::State::Connected {
            tracing::warn!(%target, "NATS not reachable yet; continuing, the client keeps retrying");
        }
        Ok(Self::Nats(client))
    }

    /// Name of the bus, for logs and `/ready`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Nats(_) => "nats",
        }
    }

    /// `Ok` when events can be published right now.
    pub fn check_ready(&self) -> Result<(), BusError> {
        match self {
            Self::InProcess => Ok(()),
            Self::Nats(client) => match client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(BusError::NotConnected(format!(
                    "connection state {state:?}"
                ))),
            },
        }
    }

    /// Flushes pending publishes before the process exits.
    pub async fn close(&self) {
        if let Self::Nats(client) = self
            && let Err(error) = client.flush().await
        {
            tracing::warn!(%error, "flushing NATS on shutdown failed");
        }
    }
}

/// Host and port of a NATS URL, without credentials.
fn redact(url: &str) -> String {
    url::Url::parse(url)
        .map(|parsed| {
            format!(
                "{}:{}",
                parsed.host_str().unwrap_or("?"),
                parsed.port().unwrap_or(4222)
            )
        })
        .unwrap_or_else(|_| "an unparseable URL".to_owned())
}
