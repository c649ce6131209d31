//! The outbox relay and the bus: every outbox row reaches the bus exactly
//! once, with its event id as `Nats-Msg-Id`, across restarts, a second relay,
//! and an unreachable NATS. Runs on the in-process bus, or on NATS JetStream
//! when `TEST_NATS_URL` is set.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use loan_tracker::store::Db;
use tempfile::TempDir;
use uuid::Uuid;

use crate::helpers::{TestApp, approved_loans, fresh_postgres_url, spawn_app_with, test_namespace};

/// Longest a test waits for the relay and the consumers.
const DEADLINE: Duration = Duration::from_secs(20);
/// `OUTBOX_POLL_MS` of the wake-up test: 10 minutes, longer than the test.
const LONG_POLL_MS: &str = "600000";
/// How soon a committed event must be on the bus and stamped when commits
/// wake the relay: far below [`LONG_POLL_MS`].
const WAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Polls `check` until it returns `Some`, or panics naming `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::helpers::eventually(what, DEADLINE, check).await
}

/// Settles nothing: for deliveries a test hands to a handler itself.
struct Unsettled;

impl actors::bus::Acker for Unsettled {
    fn settle(
        self: Box<Self>,
        _: actors::bus::Settlement,
    ) -> actors::store::BoxFuture<'static, Result<(), actors::bus::BusError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A delivery of `payload`, seen `delivery_count` times, for a test to hand to a handler.
pub fn delivery(payload: &[u8], delivery_count: u64) -> actors::bus::Delivery {
    actors::bus::Delivery::new(
        "loans.events.test".into(),
        None,
        payload.to_vec(),
        delivery_count,
        Box::new(Unsettled),
    )
}

/// An event envelope (SPEC §5) of type `kind` about `user_id`'s loan
/// `loan_id`, with a fresh event id: the id and the JSON bytes.
pub fn event(kind: &str, user_id: Uuid, loan_id: Uuid, data: serde_json::Value) -> (Uuid, Vec<u8>) {
    let event_id = Uuid::now_v7();
    let envelope = serde_json::json!({
        "event_id": event_id, "type": kind, "loan_id": loan_id, "user_id": user_id,
        "occurred_at": chrono::Utc::now(), "data": data,
    });
    (event_id, serde_json::to_vec(&envelope).unwrap())
}

/// Event ids of every outbox row.
pub async fn outbox_event_ids(db: &Db) -> BTreeSet<Uuid> {
    let ids: Vec<Uuid> =
        with_read_pool!(db, |pool| sqlx::query_scalar("select event_id from outbox")
            .fetch_all(pool)
            .await)
        .unwrap();
    ids.into_iter().collect()
}

/// Rows the relay has not stamped yet.
pub async fn unpublished(db: &Db) -> i64 {
    loan_tracker::store::outbox::unpublished_count(db)
        .await
        .unwrap()
}

/// Number of audit entries.
pub async fn audit_entries(db: &Db) -> i64 {
    with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from audit_log"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

/// Waits until every outbox row is published and audited.
pub async fn settled(app: &TestApp) {
    let rows = outbox_event_ids(&app.db).await.len() as i64;
    eventually("every outbox row published and audited", || async {
        (unpublished(&app.db).await == 0 && audit_entries(&app.db).await == rows).then_some(())
    })
    .await;
}

/// The messages of `<namespace>_LOAN_EVENTS` on the test NATS: their `Nats-Msg-Id`s, in stream order.
async fn stream_message_ids(namespace: &str) -> Option<Vec<String>> {
    let url = std::env::var("TEST_NATS_URL").ok()?;
    Some(stream_message_ids_at(&url, namespace).await)
}

/// The `Nats-Msg-Id`s of `<namespace>_LOAN_EVENTS` on the NATS at `url`, in stream order.
pub async fn stream_message_ids_at(url: &str, namespace: &str) -> Vec<String> {
    let client = async_nats::connect(url).await.expect("test NATS reachable");
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream
        .get_stream(format!("{namespace}_LOAN_EVENTS"))
        .await
        .expect("stream exists");
    let count = stream.info().await.unwrap().state.messages;
    let mut ids = Vec::new();
    for seq in 1..=count {
        let message = stream.get_raw_message(seq).await.expect("message by seq");
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|value| value.as_str().to_owned())
            .expect("every message carries Nats-Msg-Id");
        ids.push(id);
    }
    ids
}

/// Asserts each outbox row is in the stream exactly once under its event id.
pub async fn assert_stream_matches_outbox(namespace: &str, db: &Db) {
    let Some(ids) = stream_message_ids(namespace).await else {
        return; // In-process bus: nothing outside to count.
    };
    let expected: Vec<String> = outbox_event_ids(db)
        .await
        .iter()
        .map(Uuid::to_string)
        .collect();
    let seen: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), seen.len(), "a message was published twice");
    assert_eq!(
        seen,
        expected.into_iter().collect::<BTreeSet<_>>(),
        "stream differs from outbox"
    );
}

/// A bus that holds its first publish until the test lets it go, and
/// records the message ids it stored.
struct GatedBus {
    /// Raised when the first publish has begun (its round has read the outbox).
    entered: tokio::sync::Notify,
    /// Lets the first publish finish.
    release: tokio::sync::Semaphore,
    stored: std::sync::Mutex<Vec<String>>,
}

impl GatedBus {
    fn new() -> Self {
        Self {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
            stored: std::sync::Mutex::default(),
        }
    }

    fn stored(&self) -> Vec<String> {
        self.stored.lock().unwrap().clone()
    }
}

impl actors::bus::Bus for GatedBus {
    fn kind(&self) -> &'static str {
        "gated"
    }

    fn check_ready(&self) -> Result<(), actors::bus::BusError> {
        Ok(())
    }

    fn publish(
        &self,
        message: actors::bus::OutgoingMessage,
    ) -> actors::store::BoxFuture<'_, Result<(), actors::bus::BusError>> {
        Box::pin(async move {
            if self.stored().is_empty() {
                self.entered.notify_one();
                self.release.acquire().await.unwrap().forget();
            }
            self.stored.lock().unwrap().push(message.message_id);
            Ok(())
        })
    }

    fn subscribe(
        &self,
        _: actors::bus::ConsumerSpec,
    ) -> actors::store::BoxFuture<
        '_,
        Result<Box<dyn actors::bus::Subscription>, actors::bus::BusError>,
    > {
        Box::pin(async { Err(actors::bus::BusError::Closed) })
    }
}

/// Writes one outbox row in a transaction of its own; returns its event id.
async fn commit_event(db: &Db) -> Uuid {
    let event = loan_tracker::store::outbox::OutboxEvent {
        event_id: Uuid::now_v7(),
        subject: "loans.events.test.wake".into(),
        aggregate_id: Uuid::now_v7(),
        payload: serde_json::json!({"test": true}),
        created_at: chrono::Utc::now(),
    };
    let mut tx = db.begin().await.unwrap();
    loan_tracker::store::outbox::insert(&mut tx, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    event.event_id
}

/// A row committed after a round read the outbox, while it is still
/// publishing, is published when that round ends, not at the next poll: the
/// relay arms its wake-up before each read.
async fn a_commit_during_a_round_starts_the_next_one_at_once(db: Db) {
    let first = commit_event(&db).await;
    let bus = std::sync::Arc::new(GatedBus::new());
    let relay = loan_tracker::bus::relay::Relay::start(
        db.clone(),
        bus.clone(),
        Duration::from_millis(LONG_POLL_MS.parse().unwrap()),
    );
    tokio::time::timeout(WAKE_DEADLINE, bus.entered.notified())
        .await
        .expect("the relay's first round publishes");
    let second = commit_event(&db).await;
    bus.release.add_permits(1);
    let committed = tokio::time::Instant::now();
    crate::helpers::eventually(
        "the row committed during the round published",
        WAKE_DEADLINE,
        || async { (unpublished(&db).await == 0).then_some(()) },
    )
    .await;
    assert!(committed.elapsed() < WAKE_DEADLINE);
    assert_eq!(bus.stored(), [first.to_string(), second.to_string()]);
    relay.stop().await;
}

crate::helpers::conformance!(a_commit_during_a_round_starts_the_next_one_at_once);

/// A database URL two app instances can share: a fresh PostgreSQL database,
/// or a SQLite file in `dir`.
pub async fn shared_database(dir: &TempDir) -> String {
    match fresh_postgres_url().await {
        Some(url) => url,
        None => format!("sqlite://{}", dir.path().join("shared.db").display()),
    }
}

#[tokio::test]
async fn the_relay_publishes_every_outbox_row_once_with_its_event_id() {
    let namespace = test_namespace();
    let app = spawn_app_with(&[("NATS_NAMESPACE", &namespace)]).await;
    for name in ["ada", "bob", "cyd"] {
        app.register(name).await;
    }
    let wrong =
        serde_json::json!({"email": "ada@example.com", "password": "not the password at all"});
    assert_eq!(
        app.post_json("/api/v1/auth/login", None, &wrong)
            .await
            .status(),
        401
    );
    settled(&app).await;
    assert_eq!(outbox_event_ids(&app.db).await.len(), 4);
    assert_stream_matches_outbox(&namespace, &app.db).await;
}

/// The outbox row of the one `payment.received` event: its id and whether it is stamped.
async fn payment_row(db: &Db) -> (Uuid, bool) {
    with_read_pool!(db, |pool| sqlx::query_as(
        "select event_id, published_at is not null from outbox \
         where subject = 'loans.events.payment.received'"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_committed_payment_reaches_a_subscriber_long_before_the_relay_would_poll() {
    let app = spawn_app_with(&[("OUTBOX_POLL_MS", LONG_POLL_MS)]).await;
    let mut subscription = app
        .bus
        .subscribe(actors::bus::ConsumerSpec {
            name: "relay-wake-test".into(),
            stream: "LOAN_EVENTS".into(),
            filter_subject: "loans.events.payment.received".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: None,
            max_ack_pending: 16,
        })
        .await
        .expect("subscribed");
    let owner = app.register("ivy").await;
    let loan_id = approved_loans(&app, &owner, 1, "1000.00").await[0];
    let paid = app
        .post_json(
            &format!("/api/v1/loans/{loan_id}/payments"),
            Some(&owner.access_token),
            &serde_json::json!({"amount": "125.50"}),
        )
        .await;
    assert_eq!(paid.status(), 201);
    let committed = tokio::time::Instant::now();

    let delivery = tokio::time::timeout(WAKE_DEADLINE, subscription.next())
        .await
        .expect("the payment's event on the bus before the deadline (was the relay woken?)")
        .expect("a delivery");
    let (event_id, _) = payment_row(&app.db).await;
    assert_eq!(delivery.message_id, Some(event_id.to_string()));
    delivery
        .settle(actors::bus::Settlement::Ack)
        .await
        .expect("acked");
    crate::helpers::eventually(
        "the payment's row stamped published",
        WAKE_DEADLINE.saturating_sub(committed.elapsed()),
        || async { payment_row(&app.db).await.1.then_some(()) },
    )
    .await;
    assert!(committed.elapsed() < WAKE_DEADLINE);
}

#[tokio::test]
async fn a_restarted_relay_republishing_stamped_rows_does_not_duplicate_them() {
    let dir = TempDir::new().unwrap();
    let database = shared_database(&dir).await;
    let namespace = test_namespace();
    let settings = [
        ("DATABASE_URL", database.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ];
    let first = spawn_app_with(&settings).await;
    for name in ["dee", "eve"] {
        first.register(name).await;
    }
    settled(&first).await;
    first.stop().await.unwrap();

    let second = spawn_app_with(&settings).await;
    // As if the process died after the acks, before stamping published_at.
    with_pool!(&second.db, |pool| sqlx::query(
        "update outbox set published_at = null"
    )
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    second.register("fay").await;
    settled(&second).await;
    assert_eq!(audit_entries(&second.db).await, 3);
    assert_stream_matches_outbox(&namespace, &second.db).await;
}

#[tokio::test]
async fn two_relays_on_one_postgres_database_publish_each_row_once() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return; // SQLite runs one relay per database by design.
    }
    let dir = TempDir::new().unwrap();
    let database = shared_database(&dir).await;
    let namespace = test_namespace();
    let settings = [
        ("DATABASE_URL", database.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ];
    let (one, two) = tokio::join!(spawn_app_with(&settings), spawn_app_with(&settings));
    let registrations = (0..30).map(|index| {
        let app = if index % 2 == 0 { &one } else { &two };
        async move { app.register(&format!("user{index}")).await }
    });
    futures::future::join_all(registrations).await;
    settled(&one).await;
    assert_eq!(audit_entries(&one.db).await, 30);
    assert_stream_matches_outbox(&namespace, &one.db).await;
    let verify: serde_json::Value = {
        let admin = one
            .user_with_role("boss", loan_tracker::accounts::Role::Admin)
            .await;
        one.get("/api/v1/audit-logs/verify", Some(&admin.access_token))
            .await
            .json()
            .await
            .unwrap()
    };
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn with_nats_unreachable_rows_wait_and_ready_names_the_bus() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{closed_port}");
    let app = spawn_app_with(&[("NATS_URL", &url), ("NATS_NAMESPACE", "unreachable")]).await;
    app.register("gil").await;
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("bus (nats)"), "{body}");
    // Give the relay a few rounds: the row must still be waiting.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        assert_eq!(unpublished(&app.db).await, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(audit_entries(&app.db).await, 0);
}

#[tokio::test]
async fn stopping_the_app_flushes_the_outbox() {
    let dir = TempDir::new().unwrap();
    let database = shared_database(&dir).await;
    let app = spawn_app_with(&[("DATABASE_URL", &database)]).await;
    app.register("hal").await;
    app.stop().await.unwrap();
    let db = open(&database).await;
    assert_eq!(unpublished(&db).await, 0, "outbox left unpublished at stop");
}

/// A new connection to `database_url` (the app's own closes when it stops).
async fn open(database_url: &str) -> Db {
    let settings = loan_tracker::settings::Settings::from_lookup(|name| match name {
        "DATABASE_URL" => Some(database_url.to_owned()),
        "JWT_SECRET" => Some(crate::helpers::TEST_JWT_SECRET.to_owned()),
        _ => None,
    })
    .unwrap();
    loan_tracker::store::connect(&settings).await.unwrap()
}
