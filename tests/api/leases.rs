//! Deliveries are leased to the instance that pulled them (NATS only): a
//! live holder renews them however long its handler takes, a crashed one
//! loses them after the consumer's short `ack_wait`, so a restarted service
//! resumes within seconds (issue 11 item 3).

use std::time::{Duration, Instant};

use actors::bus::{Delivery, OutgoingMessage, Subscription};
use loan_tracker::bus::definitions::consumer;
use loan_tracker::bus::{Namespace, NatsBus};
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

use crate::bus::shared_database;
use crate::helpers::{
    approved_loans, eventually, spawn_app_with, test_namespace, total_paid_if_readable,
};

/// How soon a restarted service must pick up a crashed one's inbound payment.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

/// A bus of its own on the test NATS, as another process would have.
async fn own_bus(namespace: &str) -> Option<NatsBus> {
    let Ok(url) = std::env::var("TEST_NATS_URL") else {
        eprintln!("TEST_NATS_URL not set: the in-process bus has no leases to lose");
        return None;
    };
    let client = async_nats::connect(url).await.expect("test NATS reachable");
    Some(NatsBus::new(client, Namespace::new(Some(namespace))))
}

async fn publish_inbound(bus: &NatsBus, body: serde_json::Value) {
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: Uuid::new_v4().to_string(),
        payload: body.to_string().into_bytes(),
    };
    bus.publish(message).await.expect("published");
}

async fn next_within(subscription: &mut Box<dyn Subscription>, wait: Duration) -> Option<Delivery> {
    tokio::time::timeout(wait, subscription.next())
        .await
        .ok()
        .map(|delivery| delivery.expect("a delivery"))
}

#[tokio::test]
async fn a_restarted_service_applies_the_payment_a_crashed_one_held_within_5_s() {
    let namespace = test_namespace();
    let Some(holder) = own_bus(&namespace).await else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let database_url = shared_database(&dir).await;
    let settings = [
        ("DATABASE_URL", database_url.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ];
    let first = spawn_app_with(&settings).await;
    let owner = first.register("owner").await;
    let loan_id = approved_loans(&first, &owner, 1, "1000.00").await[0];
    first.stop().await.expect("the first instance stops");

    // A process that pulled the payment and died before settling it.
    let mut subscription = holder
        .subscribe(consumer("inbound-payments"))
        .await
        .expect("subscribed");
    publish_inbound(
        &holder,
        json!({"loan_id": loan_id, "amount": "25.00", "currency": "USD", "external_ref": "held-by-the-dead"}),
    )
    .await;
    let held = next_within(&mut subscription, Duration::from_secs(10))
        .await
        .expect("the holder pulls the payment");
    drop((held, subscription, holder));
    let crashed = Instant::now();

    let second = spawn_app_with(&settings).await;
    eventually(
        "the held payment applied",
        Duration::from_secs(20),
        || async {
            (total_paid_if_readable(&second, &owner, loan_id)
                .await
                .as_deref()
                == Some("25.00"))
            .then_some(())
        },
    )
    .await;
    let resumed = crashed.elapsed();
    assert!(
        resumed <= RESUME_WITHIN,
        "the restarted service took {resumed:?} to apply the crashed one's payment"
    );
}

#[tokio::test]
async fn a_delivery_held_past_ack_wait_is_renewed_and_redelivered_once_let_go() {
    let namespace = test_namespace();
    let Some(bus) = own_bus(&namespace).await else {
        return;
    };
    let spec = consumer("inbound-payments");
    let ack_wait = spec.ack_wait;
    let mut subscription = bus.subscribe(spec).await.expect("subscribed");
    publish_inbound(&bus, json!({"note": "any body: nobody handles it here"})).await;
    let held = next_within(&mut subscription, Duration::from_secs(10))
        .await
        .expect("first delivery");
    assert_eq!(held.delivery_count, 1);

    // A slow handler: twice the ack wait and more, and no redelivery.
    let again = next_within(&mut subscription, ack_wait * 2 + Duration::from_secs(1)).await;
    assert!(again.is_none(), "redelivered while held: {again:?}");

    // Let go without settling (a dropped handler): the lease lapses.
    drop(held);
    let redelivered = next_within(&mut subscription, ack_wait + Duration::from_secs(5))
        .await
        .expect("redelivered once the lease lapsed");
    assert_eq!(redelivered.delivery_count, 2);
    redelivered
        .settle(actors::bus::Settlement::Ack)
        .await
        .expect("acked");
}
