//! The event bus: NATS JetStream when `NATS_URL` is set, else in-process;
//! the outbox relay that feeds it and the runner of durable consumers.

pub mod asyncapi;
pub mod backoff;
pub mod consumer;
pub mod definitions;
mod in_process;
pub mod metered;
pub mod nats;
pub mod relay;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

/// Longest a stop waits for NATS to take what the client still buffers.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

use actors::bus::{Bus, BusError, ConsumerSpec, OutgoingMessage, Subscription};
use actors::store::BoxFuture;
use thiserror::Error;

pub use in_process::InProcessBus;
pub use nats::{Namespace, NatsBus};

/// How long start-up waits for a first NATS connection before carrying on
/// (the client keeps reconnecting in the background; `/ready` reports it).
const NATS_FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Failure to set the bus up at start.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The NATS URL could not be used.
    #[error("connecting to NATS at {target}: {cause}")]
    Connect {
        /// Host and port (never credentials).
        target: String,
        /// What the client said.
        cause: String,
    },
}

/// The bus this process uses; cheap to clone.
#[derive(Debug, Clone)]
pub enum BusConnection {
    /// Events stay inside this process.
    InProcess(Arc<InProcessBus>),
    /// NATS JetStream.
    Nats(Arc<NatsBus>),
}

impl BusConnection {
    /// Connects as the settings say; NATS keeps retrying in the background,
    /// and streams are created once the server answers.
    pub async fn connect(
        nats_url: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let Some(url) = nats_url else {
            return Ok(Self::InProcess(Arc::default()));
        };
        let target = redact(url);
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .name("loan-tracker")
            .connect(url)
            .await
            .map_err(|error| ConnectError::Connect {
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
        Ok(Self::Nats(Arc::new(NatsBus::new(
            client,
            Namespace::new(namespace),
        ))))
    }

    /// The bus as the trait the relay and the consumers use.
    pub fn as_bus(&self) -> Arc<dyn Bus> {
        Arc::new(self.clone())
    }

    /// Flushes pending publishes and acks before the process exits.
    /// Bounded by [`CLOSE_TIMEOUT`]: with the server gone a flush would wait
    /// for a reconnection forever, and a stop must end.
    pub async fn close(&self) {
        let Self::Nats(nats) = self else {
            return;
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, nats.client().flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "flushing NATS on shutdown failed"),
            Err(_) => tracing::warn!(
                after = ?CLOSE_TIMEOUT,
                "flushing NATS on shutdown timed out (server unreachable); stopping anyway"
            ),
        }
    }
}

impl Bus for BusConnection {
    fn kind(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in-process",
            Self::Nats(_) => "nats",
        }
    }

    fn check_ready(&self) -> Result<(), BusError> {
        match self {
            Self::InProcess(_) => Ok(()),
            Self::Nats(nats) => nats.check_ready(),
        }
    }

    fn publish(&self, message: OutgoingMessage) -> BoxFuture<'_, Result<(), BusError>> {
        match self {
            Self::InProcess(bus) => Box::pin(bus.publish(message)),
            Self::Nats(nats) => Box::pin(nats.publish(message)),
        }
    }

    fn publish_all(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> BoxFuture<'_, (usize, Option<BusError>)> {
        match self {
            Self::InProcess(bus) => Box::pin(bus.publish_all(messages)),
            Self::Nats(nats) => Box::pin(nats.publish_all(messages)),
        }
    }

    fn subscribe(
        &self,
        spec: ConsumerSpec,
    ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BusError>> {
        match self {
            Self::InProcess(bus) => {
                let subscription = bus.subscribe(spec);
                Box::pin(async move { Ok(subscription) })
            }
            Self::Nats(nats) => Box::pin(nats.subscribe(spec)),
        }
    }

    fn backlog<'a>(
        &'a self,
        consumer: &'a ConsumerSpec,
    ) -> BoxFuture<'a, Result<Option<u64>, BusError>> {
        match self {
            Self::InProcess(bus) => {
                let backlog = bus.backlog(&consumer.name);
                Box::pin(async move { Ok(backlog) })
            }
            Self::Nats(nats) => Box::pin(nats.backlog(consumer)),
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
