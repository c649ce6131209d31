//! Services under the root: a panic restarts them with their work intact,
//! past the budget they stay down, a stop lets them finish, backlogs show.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::store::BoxFuture;
use actors::tree::{
    LoanTree, RestartBudget, Service, ServiceContext, ServiceError, ServiceSnapshot, ServiceState,
};
use tokio::sync::Notify;

use crate::support::*;

/// Works a queue of numbers: looks at the first, passes the fault point,
/// records it done, and only then removes it (a panic leaves it queued).
#[derive(Default)]
struct Worker {
    queue: Mutex<VecDeque<u32>>,
    done: Mutex<Vec<u32>>,
    runs: Mutex<u32>,
    /// Whether the last run saw its stop.
    stopped_cleanly: Mutex<bool>,
    more: Notify,
    /// The backlog probe hangs when set.
    hang_probe: bool,
}

impl Worker {
    fn push(&self, items: impl IntoIterator<Item = u32>) {
        self.queue.lock().unwrap().extend(items);
        self.more.notify_one();
    }

    fn done(&self) -> Vec<u32> {
        self.done.lock().unwrap().clone()
    }
}

impl Service for Worker {
    fn name(&self) -> &str {
        "worker"
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            *self.runs.lock().unwrap() += 1;
            let mut stopping = context.stopping();
            loop {
                let next = self.queue.lock().unwrap().front().copied();
                match next {
                    Some(item) => {
                        context.fault_point();
                        self.done.lock().unwrap().push(item);
                        self.queue.lock().unwrap().pop_front();
                    }
                    None => {
                        tokio::select! {
                            _ = stopping.changed() => break,
                            () = self.more.notified() => {}
                        }
                    }
                }
            }
            *self.stopped_cleanly.lock().unwrap() = true;
        })
    }

    fn backlog(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            if self.hang_probe {
                std::future::pending::<()>().await;
            }
            Some(self.queue.lock().unwrap().len() as u64)
        })
    }
}

fn budget(max_restarts: u32) -> RestartBudget {
    RestartBudget {
        max_restarts,
        window: Duration::from_secs(60),
        first_pause: Duration::from_millis(10),
        max_pause: Duration::from_millis(40),
    }
}

async fn worker_snapshot(tree: &LoanTree) -> ServiceSnapshot {
    tree.supervision()
        .await
        .services
        .into_iter()
        .find(|service| service.name == "worker")
        .expect("the worker is listed")
}

/// Polls the worker's snapshot until `done` holds (paused time: advances it).
async fn until(tree: &LoanTree, what: &str, done: impl Fn(&ServiceSnapshot) -> bool) {
    for _ in 0..10_000 {
        if done(&worker_snapshot(tree).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "timed out waiting for {what}: {:?}",
        worker_snapshot(tree).await
    );
}

async fn until_done(worker: &Worker, count: usize) {
    for _ in 0..10_000 {
        if worker.done().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("only {:?} done", worker.done());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_service_is_restarted_and_finishes_its_work_once_each() {
    let tree = start(&FakeStore::new()).await;
    let worker = Arc::new(Worker::default());
    tree.supervise(worker.clone(), budget(3)).await.unwrap();
    worker.push([1, 2]);
    until_done(&worker, 2).await;

    tree.inject_service_panic("worker").unwrap();
    worker.push([3, 4]);
    until(&tree, "the restart", |s| {
        s.restarts == 1 && s.state == ServiceState::Running
    })
    .await;
    until_done(&worker, 4).await;

    assert_eq!(
        worker.done(),
        vec![1, 2, 3, 4],
        "nothing lost, nothing twice"
    );
    assert_eq!(*worker.runs.lock().unwrap(), 2);
    let snapshot = worker_snapshot(&tree).await;
    assert_eq!(snapshot.failures_in_window, 1);
    assert!(
        snapshot
            .last_failure
            .as_deref()
            .is_some_and(|text| text.contains("injected panic")),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.backlog, Some(0));
    assert!(tree.failed_services().is_empty());
    tree.stop().await.unwrap();
    assert!(
        *worker.stopped_cleanly.lock().unwrap(),
        "stop lets the run end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_failing_past_its_budget_stays_down_and_is_reported_failed() {
    let tree = start(&FakeStore::new()).await;
    let worker = Arc::new(Worker::default());
    tree.supervise(worker.clone(), budget(2)).await.unwrap();
    for restarts in 1..=2 {
        tree.inject_service_panic("worker").unwrap();
        worker.push([restarts]);
        until(&tree, "a restart", |s| {
            s.restarts == u64::from(restarts) && s.state == ServiceState::Running
        })
        .await;
    }
    tree.inject_service_panic("worker").unwrap();
    worker.push([9]);
    until(&tree, "the failure", |s| s.state == ServiceState::Failed).await;
    // Down for good: time passes, nothing runs the queue.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let snapshot = worker_snapshot(&tree).await;
    assert_eq!(snapshot.state, ServiceState::Failed);
    assert_eq!(snapshot.restarts, 2);
    assert_eq!(snapshot.backlog, Some(1), "item 9 waits");
    assert_eq!(tree.failed_services(), vec!["worker".to_owned()]);
    assert_eq!(*worker.runs.lock().unwrap(), 3);
    tree.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stopped_service_is_not_restarted_and_a_hanging_probe_reads_as_unknown() {
    let tree = start(&FakeStore::new()).await;
    let worker = Arc::new(Worker {
        hang_probe: true,
        ..Worker::default()
    });
    tree.supervise(worker.clone(), budget(3)).await.unwrap();
    assert_eq!(
        tree.supervise(worker.clone(), budget(3)).await,
        Err(ServiceError::NameTaken("worker".into()))
    );
    assert_eq!(worker_snapshot(&tree).await.backlog, None);
    tree.stop_service("worker").await.unwrap();
    assert!(*worker.stopped_cleanly.lock().unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let snapshot = worker_snapshot(&tree).await;
    assert_eq!(snapshot.state, ServiceState::Stopped);
    assert_eq!(snapshot.restarts, 0);
    assert_eq!(*worker.runs.lock().unwrap(), 1);
    tree.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_loan_tree_keeps_serving_while_a_service_restarts() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let worker = Arc::new(Worker::default());
    tree.supervise(worker.clone(), budget(3)).await.unwrap();
    tree.inject_service_panic("worker").unwrap();
    worker.push([1]);
    let loan = loan_id(7);
    approved_loan(&tree, loan).await;
    accepted(tree.execute(loan, payment(1, "5.00")).await);
    until(&tree, "the restart", |s| s.restarts == 1).await;
    until_done(&worker, 1).await;
    assert_eq!(tree.supervision().await.loan_supervisor_restarts, 0);
    assert_eq!(
        tree.counts().failed,
        0,
        "a service's failure is not a loan's"
    );
    tree.stop().await.unwrap();
}
