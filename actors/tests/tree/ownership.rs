//! Several instances: the tree runs actors only for the loans it owns.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actors::core::LoanId;
use actors::tree::{LoanOwnership, TreeError};

use crate::support::*;

/// Owns the loans in its set; the set changes as a lease manager's would.
#[derive(Default)]
struct OwnedSet(Mutex<HashSet<LoanId>>);

impl OwnedSet {
    fn give(&self, loan_id: LoanId) {
        self.0.lock().unwrap().insert(loan_id);
    }
    fn take_away(&self, loan_id: LoanId) {
        self.0.lock().unwrap().remove(&loan_id);
    }
}

impl LoanOwnership for OwnedSet {
    fn owns(&self, loan_id: LoanId) -> bool {
        self.0.lock().unwrap().contains(&loan_id)
    }
}

#[tokio::test]
async fn a_loan_owned_elsewhere_gets_no_actor_and_is_created_straight_in_the_store() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let owned = Arc::new(OwnedSet::default());
    tree.set_ownership(owned.clone());
    let (mine, theirs) = (loan_id(1), loan_id(2));
    owned.give(mine);

    approved_loan(&tree, mine).await;
    // Created by this instance for another's partition: stored, no actor.
    let created = tree
        .create(pending_loan(theirs), now(), None)
        .await
        .expect("stored")
        .expect("accepted");
    assert_eq!(created.version, 1);
    assert_eq!(store.version(theirs), 1);
    assert_eq!(tree.counts().spawned, 1, "only the owned loan has an actor");
    // Its commands are refused for forwarding, and nothing is written.
    match tree.execute(theirs, payment(7, "1.00")).await {
        Err(TreeError::NotOwner(loan)) => assert_eq!(loan, theirs),
        other => panic!("expected NotOwner, got {other:?}"),
    }
    assert!(TreeError::NotOwner(theirs).is_transient());
    assert_eq!(store.version(theirs), 1);
    // A read that needs the live actor says "not here" instead of loading it.
    assert_eq!(
        tree.inspect_if_live(theirs, |loan| loan.loan_id())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tree.inspect_if_live(mine, |loan| loan.loan_id())
            .await
            .unwrap(),
        Some(mine)
    );
}

#[tokio::test]
async fn giving_a_loan_up_passivates_its_actor_after_its_queue_before_the_handoff_returns() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let owned = Arc::new(OwnedSet::default());
    tree.set_ownership(owned.clone());
    let loan = loan_id(3);
    owned.give(loan);
    approved_loan(&tree, loan).await;
    // A command is queued behind a commit held in the store.
    let hold = store.hold(loan);
    let queued = {
        let tree = tree.clone();
        tokio::spawn(async move { tree.execute(loan, payment(1, "5.00")).await })
    };
    hold.entered.notified().await;
    owned.take_away(loan);
    let handoff = {
        let tree = tree.clone();
        tokio::spawn(async move { tree.passivate_unowned().await })
    };
    tokio::task::yield_now().await;
    assert!(
        !handoff.is_finished(),
        "the handoff waits for the actor to finish"
    );
    store.unhold(loan);
    hold.gate.add_permits(1);
    handoff.await.unwrap().expect("handed off");
    // The command accepted before the handoff was committed and answered.
    accepted(queued.await.unwrap());
    assert_eq!(store.version(loan), 3);
    let snapshot = tree.snapshot().await.unwrap();
    assert_eq!(snapshot.live_count, 0);
    assert_eq!(snapshot.stopping, 0);
    assert!(matches!(
        tree.execute(loan, payment(2, "5.00")).await,
        Err(TreeError::NotOwner(_))
    ));
}
