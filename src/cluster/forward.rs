//! Forwarding a command to the instance that owns its loan, over NATS
//! request-reply on one subject per partition (`<ns>.cluster.partition.NNN`).
//!
//! The owner subscribes to the subjects of the partitions it holds (and only
//! while it holds them); any instance sends a request there. Nobody
//! subscribed — the partition is moving — is a "no responders" answer at
//! once, which the caller answers like a local call that found the loan
//! unavailable (503). A request carries its kind (`Lt-Kind`) and
//! kind-specific headers; the owner hands it to the [`ForwardHandler`]
//! registered for that kind (the HTTP edge, the inbound payments, the overdue
//! job), which does exactly what it would have done for a local caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::store::BoxFuture;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use thiserror::Error;

use super::partition::Partition;
use crate::bus::Namespace;
use crate::metrics::Metrics;

/// Header naming what a forwarded request is.
pub const KIND_HEADER: &str = "Lt-Kind";

/// What a forwarded request or its answer carries.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// Kind-specific metadata.
    pub headers: HeaderMap,
    /// The payload.
    pub body: Bytes,
}

/// Why a forwarded request got no answer from an owner.
#[derive(Debug, Error)]
pub enum ForwardError {
    /// Nobody holds the partition right now (it is moving).
    #[error("no instance serves partition {0} right now")]
    NoOwner(u16),
    /// The owner did not answer within the deadline; the command may still
    /// be applied there, as after a local timeout.
    #[error("the owner of partition {partition} did not answer within {after:?}")]
    Timeout {
        /// The partition.
        partition: u16,
        /// The deadline that passed.
        after: Duration,
    },
    /// The request could not be sent.
    #[error("forwarding to partition {partition}: {cause}")]
    Transport {
        /// The partition.
        partition: u16,
        /// What the client said.
        cause: String,
    },
}

/// Sends forwarded requests; cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    client: async_nats::Client,
    namespace: Namespace,
    metrics: Metrics,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

/// The subject of `partition`'s owner.
pub fn partition_subject(namespace: &Namespace, partition: Partition) -> String {
    namespace.subject(&format!("cluster.partition.{:03}", partition.number()))
}

impl Forwarder {
    /// A forwarder over `client`, recording each request's kind, outcome and
    /// latency in `metrics`.
    pub fn new(client: async_nats::Client, namespace: Namespace, metrics: Metrics) -> Self {
        Self {
            client,
            namespace,
            metrics,
        }
    }

    /// Sends `request` of `kind` to `partition`'s owner and waits for its
    /// answer up to `deadline`.
    pub async fn send(
        &self,
        partition: Partition,
        kind: &'static str,
        mut request: Forwarded,
        deadline: Duration,
    ) -> Result<Forwarded, ForwardError> {
        let number = partition.number();
        request.headers.insert(KIND_HEADER, kind);
        let subject = partition_subject(&self.namespace, partition);
        let started = Instant::now();
        let sent = self
            .client
            .request_with_headers(subject, request.headers, request.body);
        let outcome = match tokio::time::timeout(deadline, sent).await {
            Err(_) => Err(ForwardError::Timeout {
                partition: number,
                after: deadline,
            }),
            Ok(Ok(message)) => Ok(Forwarded {
                headers: message.headers.unwrap_or_default(),
                body: message.payload,
            }),
            Ok(Err(error)) => Err(match error.kind() {
                async_nats::client::RequestErrorKind::NoResponders => ForwardError::NoOwner(number),
                async_nats::client::RequestErrorKind::TimedOut => ForwardError::Timeout {
                    partition: number,
                    after: deadline,
                },
                _ => ForwardError::Transport {
                    partition: number,
                    cause: error.to_string(),
                },
            }),
        };
        let label = match &outcome {
            Ok(_) => "answered",
            Err(ForwardError::NoOwner(_)) => "no_owner",
            Err(ForwardError::Timeout { .. }) => "timeout",
            Err(ForwardError::Transport { .. }) => "failed",
        };
        self.metrics.forwarded(kind, label, started.elapsed());
        outcome
    }
}

/// Does, on the owner, what a forwarded request of one kind asks.
pub trait ForwardHandler: Send + Sync + 'static {
    /// Handles `request` and returns the answer to send back.
    fn handle(&self, request: Forwarded) -> BoxFuture<'_, Forwarded>;
}

/// The handlers by kind, and the subscriptions of the partitions held.
pub struct PartitionServer {
    client: async_nats::Client,
    namespace: Namespace,
    handlers: HashMap<&'static str, Arc<dyn ForwardHandler>>,
    serving: Mutex<HashMap<Partition, tokio::task::JoinHandle<()>>>,
}

impl PartitionServer {
    /// A server answering the kinds in `handlers` (nothing subscribed yet).
    pub fn new(
        client: async_nats::Client,
        namespace: Namespace,
        handlers: HashMap<&'static str, Arc<dyn ForwardHandler>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            namespace,
            handlers,
            serving: Mutex::default(),
        })
    }

    fn serving(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Partition, tokio::task::JoinHandle<()>>> {
        self.serving
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Starts answering `partitions` (those not answered yet). Returns once
    /// each subscription is registered on the server, so a request sent
    /// after this reaches this instance.
    pub async fn serve(self: &Arc<Self>, partitions: &[Partition]) {
        for &partition in partitions {
            if self.serving().contains_key(&partition) {
                continue;
            }
            let subject = partition_subject(&self.namespace, partition);
            let subscription = match self.client.subscribe(subject.clone()).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    tracing::error!(%subject, %error, "cannot serve a partition's forwarded commands");
                    continue;
                }
            };
            let server = Arc::clone(self);
            let task = tokio::spawn(async move { server.answer(subscription).await });
            if let Some(previous) = self.serving().insert(partition, task) {
                previous.abort();
            }
        }
        // A flush makes the subscriptions known to the server before anyone relies on them.
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "flushing partition subscriptions");
        }
    }

    /// Stops answering `partitions`: requests for them find no responder
    /// (requests already received are still answered).
    pub async fn stop_serving(&self, partitions: &[Partition]) {
        let tasks: Vec<_> = {
            let mut serving = self.serving();
            partitions
                .iter()
                .filter_map(|partition| serving.remove(partition))
                .collect()
        };
        for task in tasks {
            task.abort();
        }
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "flushing partition unsubscriptions");
        }
    }

    async fn answer(self: Arc<Self>, mut subscription: async_nats::Subscriber) {
        while let Some(message) = subscription.next().await {
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let server = Arc::clone(&self);
            // Each request on its own task: a slow command holds up no other.
            tokio::spawn(async move {
                let headers = message.headers.unwrap_or_default();
                let kind = headers
                    .get(KIND_HEADER)
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default();
                let answer = match server.handlers.get(kind.as_str()) {
                    Some(handler) => {
                        handler
                            .handle(Forwarded {
                                headers,
                                body: message.payload,
                            })
                            .await
                    }
                    None => {
                        tracing::warn!(%kind, "forwarded request of an unknown kind");
                        Forwarded::default()
                    }
                };
                if let Err(error) = server
                    .client
                    .publish_with_headers(reply_to, answer.headers, answer.body)
                    .await
                {
                    tracing::warn!(%error, "answering a forwarded request");
                }
            });
        }
    }
}

impl Drop for PartitionServer {
    fn drop(&mut self) {
        for (_, task) in self.serving().drain() {
            task.abort();
        }
    }
}
