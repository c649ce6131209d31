//! Restarts from the store, the restart budget, and call timeouts.

use std::time::Duration;

use actors::tree::{TreeConfig, TreeError};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_panicking_actor_is_restarted_from_the_store_and_the_next_command_succeeds() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    // The payment is queued in the actor when it panics: both callers get an error.
    let (paid, panicked) = tokio::join!(
        tree.execute(loan, payment(1, "5.00")),
        tree.inject_panic(loan)
    );
    assert!(matches!(paid, Err(TreeError::ActorFailed(_))), "{paid:?}");
    assert!(
        matches!(panicked, Err(TreeError::ActorFailed(_))),
        "{panicked:?}"
    );
    assert_eq!(store.version(loan), 2, "nothing was written");

    let applied = accepted(tree.execute(loan, payment(2, "5.00")).await);
    assert_eq!(applied.version, 3);
    assert_eq!(applied.loan.payments().len(), 1);
    let counts = tree.counts();
    assert_eq!(counts.failed, 1);
    assert_eq!(counts.restarted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_loan_past_its_restart_budget_is_unavailable_until_the_window_passes() {
    let store = FakeStore::new();
    let tree = start(&store).await; // two restarts per 60 s
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    for _ in 0..3 {
        assert!(tree.inject_panic(loan).await.is_err());
    }
    let refused = tree.execute(loan, payment(1, "5.00")).await;
    assert!(
        matches!(refused, Err(TreeError::Unavailable { .. })),
        "{refused:?}"
    );
    let snapshot = tree.snapshot().await.unwrap();
    assert_eq!(snapshot.blocked.len(), 1);
    assert_eq!(snapshot.counts.budget_exhausted, 1);
    assert_eq!(snapshot.counts.restarted, 2);

    tokio::time::advance(Duration::from_secs(61)).await;
    let applied = accepted(tree.execute(loan, payment(1, "5.00")).await);
    assert_eq!(applied.version, 3);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_leaves_nothing_half_written() {
    let store = FakeStore::new();
    let config = TreeConfig {
        call_timeout: Duration::from_secs(5),
        store_timeout: Duration::from_secs(3_600),
        ..test_config()
    };
    let tree = start_with(&store, config).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    let hold = store.hold(loan);
    let held = tokio::spawn({
        let tree = tree.clone();
        async move { tree.execute(loan, payment(1, "5.00")).await }
    });
    hold.entered.notified().await;
    let queued = tree.execute(loan, payment(2, "6.00")).await;
    let held = held.await.unwrap();
    assert!(matches!(held, Err(TreeError::Timeout { .. })), "{held:?}");
    assert!(
        matches!(queued, Err(TreeError::Timeout { .. })),
        "{queued:?}"
    );
    let row = store.row(loan).unwrap();
    assert_eq!(row.version, 2, "nothing written while the callers waited");
    assert!(row.loan.payments().is_empty());

    // The held commit then lands whole; the queued one, whose caller left, is dropped.
    store.unhold(loan);
    hold.gate.add_permits(1);
    let store_for_poll = store.clone();
    eventually(100, || {
        let store = store_for_poll.clone();
        async move { store.version(loan) == 3 }
    })
    .await;
    let row = store.row(loan).unwrap();
    assert_eq!(row.loan.payments().len(), 1);
    assert_eq!(row.loan.figures(today()).total_paid, usd("5.00"));
    let applied = accepted(tree.execute(loan, payment(3, "1.00")).await);
    assert_eq!(applied.version, 4, "the actor's memory matches the store");
    assert_eq!(tree.counts().abandoned, 1);
    assert_eq!(tree.counts().timeouts, 2);
}
