//! Partition leases over real NATS JetStream KV (issue 14, SPEC §8): several
//! lease managers, each on its own connection as separate instances would
//! be, share the 256 partitions fairly with one owner each, take a crashed
//! one's partitions within 10 s only after it stopped counting them, take a
//! stopped one's at once, make room for a joining one without a partition
//! ever having two owners, and shrug off malformed values. Skipped without
//! `TEST_NATS_URL`.

mod members;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use loan_tracker::cluster::{LeaseTimings, PARTITION_COUNT, Partition};
use tokio::time::Instant;

use crate::helpers::{eventually, test_namespace};
use members::{
    Member, balanced, bucket, claims, named_instance, nats_url, partition_key, recorded_owners,
};

/// Timings that keep the tests short: TTL 3 s, renewed every 750 ms.
fn fast() -> LeaseTimings {
    LeaseTimings::new(
        Duration::from_secs(3),
        Duration::from_millis(750),
        Duration::from_millis(200),
    )
    .expect("consistent test timings")
}

/// A partition key and the instance its new value names (`None`: released).
type KeyChange = (String, Option<String>);

/// SPEC §8: a dead instance's loans move within 10 s.
const CRASH_TAKEOVER: Duration = Duration::from_secs(10);
/// How soon a gracefully stopped instance's partitions must be taken.
const HANDOFF_WITHIN: Duration = Duration::from_secs(2);
/// Longest a test waits for the members to settle on their shares.
const SETTLE: Duration = Duration::from_secs(20);

async fn settle(members: &[&Member]) {
    eventually(
        "every partition owned once, fair shares",
        SETTLE,
        || async { balanced(members).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_partitions_85_or_86_each_with_one_owner_each() {
    let Some(url) = nats_url() else { return };
    let namespace = test_namespace();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(Member::join(&url, &namespace, name, fast()).await);
    }
    let refs: Vec<&Member> = members.iter().collect();
    settle(&refs).await;

    let mut sizes: Vec<usize> = members.iter().map(|m| m.ownership.owned().len()).collect();
    sizes.sort();
    assert_eq!(sizes, [85, 85, 86]);
    // The bucket agrees with what each one believes it owns.
    let recorded = recorded_owners(&bucket(&url, &namespace).await).await;
    for (partition, owners) in claims(&refs) {
        assert_eq!(owners.len(), 1, "partition {partition}: {owners:?}");
        assert_eq!(
            recorded[&partition].as_ref(),
            Some(&owners[0]),
            "partition {partition}"
        );
    }
    for member in &members {
        assert!(member.ownership.has_share() && member.ownership.knows_owners());
        let owner = member
            .ownership
            .owner_of(Partition::new(0).unwrap())
            .unwrap();
        assert_eq!(
            Some(&owner.instance.to_string()),
            recorded[&Partition::new(0).unwrap()].as_ref()
        );
        assert_eq!(member.ownership.live_instances().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_s_partitions_move_within_10_s_after_it_stopped_counting_them() {
    let Some(url) = nats_url() else { return };
    let namespace = test_namespace();
    let production = LeaseTimings::default();
    let a = Member::join(&url, &namespace, "a", production).await;
    let b = Member::join(&url, &namespace, "b", production).await;
    let c = Member::join(&url, &namespace, "c", production).await;
    settle(&[&a, &b, &c]).await;

    // The deadlines c stops at: fixed once it no longer renews.
    let deadlines: BTreeMap<Partition, Instant> = c
        .ownership
        .owned()
        .into_iter()
        .filter_map(|p| c.ownership.owned_until(p).map(|until| (p, until)))
        .collect();
    assert!(deadlines.len() >= 85);
    c.crash();
    let crashed_at = Instant::now();

    let mut taken_at: BTreeMap<Partition, Instant> = BTreeMap::new();
    while taken_at.len() < deadlines.len() {
        assert!(
            crashed_at.elapsed() <= CRASH_TAKEOVER,
            "after {CRASH_TAKEOVER:?} only {} of the crashed instance's {} partitions were taken",
            taken_at.len(),
            deadlines.len()
        );
        for &partition in deadlines.keys() {
            if !taken_at.contains_key(&partition)
                && (a.ownership.is_owned(partition) || b.ownership.is_owned(partition))
            {
                taken_at.insert(partition, Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (partition, deadline) in &deadlines {
        assert!(
            *deadline < taken_at[partition],
            "partition {partition} taken before the crashed owner stopped counting it"
        );
        assert!(!c.ownership.is_owned(*partition));
    }
    let slowest = taken_at.values().max().unwrap().duration_since(crashed_at);
    eprintln!("crashed instance's partitions all taken {slowest:?} after the crash");
    settle(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_hands_its_partitions_over_within_2_s_after_its_release_callback() {
    let Some(url) = nats_url() else { return };
    let namespace = test_namespace();
    // A TTL far above the handoff bound: only a real release meets it.
    let timings = LeaseTimings::new(
        Duration::from_secs(8),
        Duration::from_secs(2),
        Duration::from_millis(250),
    )
    .unwrap();
    let a = Member::join(&url, &namespace, "a", timings).await;
    let b = Member::join(&url, &namespace, "b", timings).await;
    let c = Member::join(&url, &namespace, "c", timings).await;
    settle(&[&a, &b, &c]).await;
    let handed_over: BTreeSet<Partition> = b.ownership.owned().into_iter().collect();
    let releases_before = b.recorder.releases().len();
    let released_before = b.ownership.counts().released;

    let stopping = Instant::now();
    b.ownership.shutdown().await.expect("a graceful stop");
    eventually(
        "the stopped instance's partitions taken",
        HANDOFF_WITHIN,
        || async { balanced(&[&a, &c]).then_some(()) },
    )
    .await;
    eprintln!("handed over in {:?}", stopping.elapsed());

    let release = b.recorder.releases()[releases_before..].to_vec();
    let told: BTreeSet<Partition> = release.iter().flat_map(|r| r.partitions.clone()).collect();
    assert_eq!(
        told, handed_over,
        "the callback named every partition it held"
    );
    assert!(
        release.iter().all(|r| r.still_held),
        "the callback ran while the bucket still named the instance"
    );
    assert!(b.ownership.owned().is_empty());
    let store = bucket(&url, &namespace).await;
    let instance_key = store.entry("instance.b").await.unwrap();
    assert!(instance_key.is_none_or(|entry| entry.operation != kv::Operation::Put));
    let released = b.ownership.counts().released - released_before;
    assert_eq!(released, handed_over.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_instance_gets_its_share_and_no_partition_ever_has_two_owners() {
    let Some(url) = nats_url() else { return };
    let namespace = test_namespace();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(Member::join(&url, &namespace, name, fast()).await);
    }
    settle(&members.iter().collect::<Vec<_>>()).await;

    // Every change to a partition key from now on, in the bucket's order.
    let store = bucket(&url, &namespace).await;
    let mut watch = store.watch("partition.*").await.expect("a watch");
    let history: Arc<Mutex<Vec<KeyChange>>> = Arc::default();
    let recording = {
        let history = Arc::clone(&history);
        tokio::spawn(async move {
            while let Some(Ok(entry)) = watch.next().await {
                let owner = (entry.operation == kv::Operation::Put)
                    .then(|| named_instance(&entry.value).unwrap_or_default());
                history.lock().unwrap().push((entry.key, owner));
            }
        })
    };

    let d = Member::join(&url, &namespace, "d", fast()).await;
    members.push(d);
    let refs: Vec<&Member> = members.iter().collect();
    let deadline = Instant::now() + SETTLE;
    let mut samples = 0_u64;
    while !balanced(&refs) {
        assert!(
            Instant::now() < deadline,
            "the fourth instance never got its share"
        );
        for (partition, owners) in claims(&refs) {
            assert!(
                owners.len() <= 1,
                "partition {partition} owned by {owners:?} at once"
            );
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for member in &members {
        assert_eq!(
            member.ownership.owned().len(),
            64,
            "{} holds its share",
            member.name
        );
    }
    recording.abort();

    // In the bucket, a partition passed from one owner to another only
    // through a release (a delete), never by one write over another's.
    let history = history.lock().unwrap().clone();
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut moves = 0;
    for (key, owner) in history {
        if let (Some(Some(before)), Some(now)) = (last.get(&key), &owner) {
            assert!(
                before == now,
                "{key} went from {before} to {now} without a release"
            );
        }
        if owner.is_none() {
            moves += 1;
        }
        last.insert(key, owner);
    }
    eprintln!("{moves} releases seen, {samples} ownership samples");
    assert!(
        moves >= 64,
        "the fourth instance's share came through releases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_value_in_the_bucket_is_treated_as_no_owner() {
    let Some(url) = nats_url() else { return };
    let namespace = test_namespace();
    let (manager, recorder) = Member::manager(&url, &namespace, "a", fast()).await;
    let store = bucket(&url, &namespace).await;
    let garbage = [
        &b"not json"[..],
        b"",
        br#"{"instance":"no.dots"}"#,
        b"[1,2]",
    ];
    for (number, value) in garbage.iter().enumerate() {
        let partition = Partition::new(number as u16).unwrap();
        store
            .put(
                partition_key(partition),
                bytes::Bytes::copy_from_slice(value),
            )
            .await
            .expect("planted");
    }
    store
        .put("instance.ghost", "{oops".into())
        .await
        .expect("planted");
    store.put("nonsense", "x".into()).await.expect("planted");

    let a = Member::running("a", manager, recorder);
    eventually(
        "every partition owned despite the garbage",
        SETTLE,
        || async { (a.ownership.owned().len() == usize::from(PARTITION_COUNT)).then_some(()) },
    )
    .await;
    assert_eq!(
        a.ownership.live_instances().len(),
        1,
        "a malformed instance key is not live"
    );

    // Garbage written over a held lease: the renewal is refused, the lease
    // lost at once, and the partition taken back over the garbage.
    let partition = Partition::new(200).unwrap();
    store
        .put(partition_key(partition), "garbage".into())
        .await
        .expect("planted");
    eventually("the overwritten lease lost", SETTLE, || async {
        (!a.recorder.losses().is_empty()).then_some(())
    })
    .await;
    assert_eq!(a.recorder.losses()[0].1, vec![partition]);
    eventually("the partition taken back", SETTLE, || async {
        a.ownership.is_owned(partition).then_some(())
    })
    .await;
    let recorded = recorded_owners(&store).await;
    assert!(recorded.values().all(|owner| owner.as_deref() == Some("a")));
    assert!(a.ownership.counts().lost >= 1);
}
