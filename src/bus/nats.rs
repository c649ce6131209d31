//! The NATS JetStream adapter: streams and consumers from `nats/`, publishes
//! with `Nats-Msg-Id` that wait for the server's ack, pull consumers whose
//! deliveries stay leased to this process (renewed with in-progress acks)
//! until they are settled, so a crashed holder's work moves on after one
//! short `ack_wait` while a slow handler keeps its message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actors::bus::{
    Acker, BusError, ConsumerSpec, Delivery, OutgoingMessage, Settlement, Subscription,
};
use actors::store::BoxFuture;
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::definitions::{self, Discard, Storage, StreamDefinition};

/// Longest wait for the server's ack of one publish.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Most deliveries pulled ahead of the handler (the pump's buffer; one
/// pull request asks for the room left in it), whatever a consumer's
/// `max_ack_pending` allows. A batch handler drains the buffer at once.
const MAX_PULL_BUFFER: usize = 256;
/// How long one pull request waits for messages on an idle stream.
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// Client-side bound on one pull wait, beyond `PULL_EXPIRES`, when the server is gone.
const PULL_GRACE: Duration = Duration::from_secs(5);
/// In-progress acks sent per `ack_wait` for each held delivery: a live
/// holder keeps its deliveries, a dead one loses them after one `ack_wait`.
const RENEWALS_PER_ACK_WAIT: u32 = 3;
/// Fastest renewal, whatever `ack_wait` says.
const MIN_RENEWAL_INTERVAL: Duration = Duration::from_millis(100);

/// Names on the server: the logical names with the namespace in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(Option<String>);

impl Namespace {
    /// `None` or an empty string: the names of SPEC §5 as they are.
    pub fn new(prefix: Option<&str>) -> Self {
        Self(prefix.filter(|p| !p.is_empty()).map(str::to_owned))
    }

    /// Stream or durable name on the server (`<ns>_LOAN_EVENTS`).
    pub fn name(&self, logical: &str) -> String {
        match &self.0 {
            Some(prefix) => format!("{prefix}_{logical}"),
            None => logical.to_owned(),
        }
    }

    /// Subject on the server (`<ns>.loans.events.…`).
    pub fn subject(&self, logical: &str) -> String {
        match &self.0 {
            Some(prefix) => format!("{prefix}.{logical}"),
            None => logical.to_owned(),
        }
    }

    /// The logical subject of a subject seen on the server.
    pub fn logical_subject<'a>(&self, subject: &'a str) -> &'a str {
        match &self.0 {
            Some(prefix) => subject
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(subject),
            None => subject,
        }
    }
}

/// The JetStream bus.
#[derive(Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    namespace: Namespace,
    /// True once every stream exists with its current definition; reset
    /// when a publish fails, so a server that lost its state gets them back.
    streams_ready: Mutex<bool>,
}

impl NatsBus {
    /// Wraps a connected (or still connecting) client.
    pub fn new(client: async_nats::Client, namespace: Namespace) -> Self {
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(PUBLISH_ACK_TIMEOUT);
        Self {
            client,
            jetstream,
            namespace,
            streams_ready: Mutex::new(false),
        }
    }

    /// The client, for flushing on shutdown and for readiness.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes on core NATS (no stream, no ack): for telemetry that may be
    /// lost, like the periodic `ops.metrics` summary.
    pub async fn publish_core(
        &self,
        logical_subject: &str,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        self.client
            .publish(self.namespace.subject(logical_subject), payload.into())
            .await
            .map_err(|error| BusError::Unavailable(error.to_string()))
    }

    /// `Ok` while the client is connected.
    pub fn check_ready(&self) -> Result<(), BusError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(BusError::Unavailable(format!(
                "NATS connection state {state:?}"
            ))),
        }
    }

    /// Creates or updates every stream of `nats/streams`, once per connection life.
    async fn ensure_streams(&self) -> Result<(), BusError> {
        let mut ready = self.streams_ready.lock().await;
        if *ready {
            return Ok(());
        }
        for definition in definitions::streams() {
            let config = self.stream_config(&definition);
            self.jetstream
                .create_or_update_stream(config)
                .await
                .map_err(|error| {
                    unavailable(format!("creating stream {}: {error}", definition.name))
                })?;
        }
        *ready = true;
        tracing::info!("NATS streams created or updated from nats/streams");
        Ok(())
    }

    fn stream_config(&self, definition: &StreamDefinition) -> stream::Config {
        stream::Config {
            name: self.namespace.name(&definition.name),
            description: Some(definition.description.clone()),
            subjects: definition
                .subjects
                .iter()
                .map(|subject| self.namespace.subject(subject))
                .collect(),
            storage: match definition.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            retention: stream::RetentionPolicy::Limits,
            discard: match definition.discard {
                Discard::New => stream::DiscardPolicy::New,
                Discard::Old => stream::DiscardPolicy::Old,
            },
            max_age: Duration::from_secs(definition.max_age_secs),
            max_messages: definition.max_msgs,
            max_message_size: definition.max_msg_size_bytes,
            duplicate_window: Duration::from_secs(definition.duplicate_window_secs),
            num_replicas: definition.num_replicas,
            ..Default::default()
        }
    }

    /// Publishes and waits for the stream's ack (a duplicate ack counts: the
    /// message is stored, once).
    pub async fn publish(&self, message: OutgoingMessage) -> Result<(), BusError> {
        self.ensure_streams().await?;
        let result = self.publish_acked(message).await;
        if result.is_err() {
            *self.streams_ready.lock().await = false;
        }
        result
    }

    /// Publishes `messages` with all of them in flight at once (sent in
    /// order on the one connection, so the stream stores them in order),
    /// then collects the acks in order; returns how many from the front
    /// were stored, and the first failure.
    pub async fn publish_all(&self, messages: Vec<OutgoingMessage>) -> (usize, Option<BusError>) {
        if let Err(error) = self.ensure_streams().await {
            return (0, Some(error));
        }
        let mut in_flight = Vec::with_capacity(messages.len());
        let mut failure = None;
        for message in messages {
            let sent = self
                .jetstream
                .send_publish(
                    self.namespace.subject(&message.subject),
                    PublishMessage::build()
                        .payload(message.payload.into())
                        .message_id(message.message_id),
                )
                .await;
            match sent {
                Ok(ack) => in_flight.push(ack),
                Err(error) => {
                    failure = Some(unavailable(format!("publishing: {error}")));
                    break;
                }
            }
        }
        let mut stored = 0;
        for ack in in_flight {
            match tokio::time::timeout(PUBLISH_ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => stored += 1,
                Ok(Err(error)) => {
                    failure = Some(unavailable(format!("JetStream ack: {error}")));
                    break;
                }
                Err(_) => {
                    failure = Some(unavailable("no JetStream ack in time".into()));
                    break;
                }
            }
        }
        if failure.is_some() {
            *self.streams_ready.lock().await = false;
        }
        (stored, failure)
    }

    async fn publish_acked(&self, message: OutgoingMessage) -> Result<(), BusError> {
        let subject = self.namespace.subject(&message.subject);
        let ack = self
            .jetstream
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(message.payload.into())
                    .message_id(message.message_id),
            )
            .await
            .map_err(|error| unavailable(format!("publishing: {error}")))?;
        // The first await only queued the message; this one is the server's ack.
        tokio::time::timeout(PUBLISH_ACK_TIMEOUT, ack)
            .await
            .map_err(|_| unavailable("no JetStream ack in time".into()))?
            .map_err(|error| unavailable(format!("JetStream ack: {error}")))?;
        Ok(())
    }

    /// Creates or updates the durable pull consumer and returns its subscription.
    pub async fn subscribe(&self, spec: ConsumerSpec) -> Result<Box<dyn Subscription>, BusError> {
        self.ensure_streams().await?;
        let config = consumer::pull::Config {
            durable_name: Some(self.namespace.name(&spec.name)),
            filter_subject: self.namespace.subject(&spec.filter_subject),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: spec.max_deliver.map_or(-1, i64::from),
            max_ack_pending: i64::from(spec.max_ack_pending),
            ..Default::default()
        };
        let consumer = self
            .jetstream
            .create_consumer_on_stream(config, self.namespace.name(&spec.stream))
            .await
            .map_err(|error| unavailable(format!("creating consumer {}: {error}", spec.name)))?;
        let buffer = usize::try_from(spec.max_ack_pending)
            .unwrap_or(MAX_PULL_BUFFER)
            .clamp(1, MAX_PULL_BUFFER);
        Ok(Box::new(NatsSubscription::start(
            consumer,
            self.namespace.clone(),
            spec.ack_wait,
            buffer,
        )))
    }
}

impl NatsBus {
    /// The durable consumer's pending plus unacknowledged messages.
    pub async fn backlog(&self, spec: &ConsumerSpec) -> Result<Option<u64>, BusError> {
        let stream = self
            .jetstream
            .get_stream_no_info(self.namespace.name(&spec.stream))
            .await
            .map_err(|error| unavailable(format!("stream {}: {error}", spec.stream)))?;
        let info = stream
            .consumer_info(self.namespace.name(&spec.name))
            .await
            .map_err(|error| unavailable(format!("consumer {}: {error}", spec.name)))?;
        let unsettled = u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX);
        Ok(Some(info.num_pending.saturating_add(unsettled)))
    }
}

fn unavailable(reason: String) -> BusError {
    BusError::Unavailable(reason)
}

/// A pull consumer read in bounded batches by a background pump, whose
/// deliveries stay leased to this process until they are settled.
struct NatsSubscription {
    deliveries: mpsc::Receiver<Result<jetstream::Message, BusError>>,
    leases: Arc<Leases>,
    namespace: Namespace,
    pump: JoinHandle<()>,
    renewal: JoinHandle<()>,
}

impl NatsSubscription {
    /// Pulls ahead at most `buffer` deliveries (the consumer's `max_ack_pending`, bounded).
    fn start(
        consumer: consumer::PullConsumer,
        namespace: Namespace,
        ack_wait: Duration,
        buffer: usize,
    ) -> Self {
        let (sender, deliveries) = mpsc::channel(buffer);
        let leases = Arc::new(Leases::default());
        let pump = tokio::spawn(pump(consumer, Arc::clone(&leases), sender));
        let renewal = tokio::spawn(renew(Arc::clone(&leases), ack_wait / RENEWALS_PER_ACK_WAIT));
        Self {
            deliveries,
            leases,
            namespace,
            pump,
            renewal,
        }
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        // Nobody renews what this process still holds: the server redelivers
        // it once `ack_wait` has passed, as it would after a crash.
        self.pump.abort();
        self.renewal.abort();
    }
}

impl NatsSubscription {
    /// The delivery of a message the pump handed over (an error it reported passes through).
    fn delivery(&self, pulled: Result<jetstream::Message, BusError>) -> Result<Delivery, BusError> {
        let message = pulled?;
        let delivery_count = message
            .info()
            .map(|info| info.delivered)
            .unwrap_or(1)
            .max(1);
        let message_id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|value| value.as_str().to_owned());
        Ok(Delivery::new(
            self.namespace
                .logical_subject(message.subject.as_str())
                .to_owned(),
            message_id,
            message.payload.to_vec(),
            u64::try_from(delivery_count).unwrap_or(1),
            Box::new(NatsAcker {
                message,
                leases: Arc::clone(&self.leases),
            }),
        ))
    }
}

impl Subscription for NatsSubscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        Box::pin(async move {
            let pulled = self
                .deliveries
                .recv()
                .await
                .unwrap_or_else(|| Err(unavailable("the pull pump stopped".into())));
            self.delivery(pulled)
        })
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        match self.deliveries.try_recv() {
            Ok(pulled) => Some(self.delivery(pulled)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Some(Err(unavailable("the pull pump stopped".into())))
            }
        }
    }
}

/// Pulls batches no larger than the room left for them, so every message the
/// server delivered is leased (and renewed) at once, not left to lapse in a
/// buffer while earlier ones are handled. Ends after the first error, which
/// the subscriber sees and answers by subscribing again.
async fn pump(
    consumer: consumer::PullConsumer,
    leases: Arc<Leases>,
    sender: mpsc::Sender<Result<jetstream::Message, BusError>>,
) {
    loop {
        let Ok(permit) = sender.reserve().await else {
            return; // The subscription is gone.
        };
        drop(permit);
        let room = sender.capacity().max(1);
        let mut batch = match consumer
            .batch()
            .max_messages(room)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                let _ = sender
                    .send(Err(unavailable(format!("pull request: {error}"))))
                    .await;
                return;
            }
        };
        loop {
            let failure = match tokio::time::timeout(PULL_EXPIRES + PULL_GRACE, batch.next()).await
            {
                Ok(Some(Ok(message))) => {
                    leases.hold(&message);
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // The pull request ended (full or expired): ask again.
                Ok(None) => break,
                Ok(Some(Err(error))) => format!("pulling: {error}"),
                Err(_) => "pull request got no answer".to_owned(),
            };
            let _ = sender.send(Err(unavailable(failure))).await;
            return;
        }
    }
}

/// Tells the server, every `every`, that each held delivery is still being
/// worked on (`+WPI`), which restarts its `ack_wait`.
async fn renew(leases: Arc<Leases>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(MIN_RENEWAL_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        for message in leases.held() {
            if let Err(error) = message.ack_with(jetstream::AckKind::Progress).await {
                tracing::debug!(%error, "renewing a held delivery failed");
            }
        }
    }
}

/// The deliveries this process holds: pulled and not yet settled, by reply subject.
#[derive(Default)]
struct Leases(std::sync::Mutex<HashMap<String, jetstream::Message>>);

impl Leases {
    fn hold(&self, message: &jetstream::Message) {
        if let Some(reply) = &message.reply {
            self.lock().insert(reply.to_string(), message.clone());
        }
    }

    fn release(&self, message: &jetstream::Message) {
        if let Some(reply) = &message.reply {
            self.lock().remove(reply.as_str());
        }
    }

    fn held(&self) -> Vec<jetstream::Message> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, jetstream::Message>> {
        // A poisoned map is still a valid map of leases.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Settles one delivery; settled or dropped, it is no longer renewed.
struct NatsAcker {
    message: jetstream::Message,
    leases: Arc<Leases>,
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        self.leases.release(&self.message);
    }
}

impl Acker for NatsAcker {
    fn settle(self: Box<Self>, settlement: Settlement) -> BoxFuture<'static, Result<(), BusError>> {
        Box::pin(async move {
            let kind = match settlement {
                Settlement::Ack => jetstream::AckKind::Ack,
                Settlement::Retry { after } => jetstream::AckKind::Nak(Some(after)),
                Settlement::Reject => jetstream::AckKind::Term,
            };
            self.message
                .ack_with(kind)
                .await
                .map_err(|error| unavailable(format!("acking: {error}")))
        })
    }
}
