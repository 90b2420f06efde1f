use super::*;
use proptest::prelude::*;
use std::sync::atomic::AtomicUsize;

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Delivered), Just(Status::Errored), Just(Status::Rejected)]
}

/// What happens to one share: resolved with a status, or dropped unresolved.
fn fate() -> impl Strategy<Value = Option<Status>> {
    prop_oneof![3 => status().prop_map(Some), 1 => Just(None)]
}

fn counting_ack() -> (Ack, Arc<AtomicUsize>, Arc<Mutex<Vec<Status>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (Arc::clone(&calls), Arc::clone(&seen));
    let ack = Ack::new(move |st| {
        c.fetch_add(1, Ordering::SeqCst);
        s.lock().unwrap().push(st);
    });
    (ack, calls, seen)
}

proptest! {
    #[test]
    fn join_is_a_semilattice(a in status(), b in status(), c in status()) {
        prop_assert_eq!(a.join(b), b.join(a));
        prop_assert_eq!(a.join(b).join(c), a.join(b.join(c)));
        prop_assert_eq!(a.join(a), a);
        prop_assert_eq!(Status::Delivered.join(a), a);
        prop_assert!(a.join(b) >= a && a.join(b) >= b);
    }

    /// However a batch is split and in whatever order the shares resolve, the source hears
    /// exactly one status: the join of the shares, with unresolved shares counted as errored.
    #[test]
    fn exactly_one_final_status(fates in prop::collection::vec(fate(), 1..12), order in any::<prop::sample::Index>()) {
        let (root, calls, seen) = counting_ack();
        let mut shares: Vec<Ack> = (1..fates.len()).map(|_| root.share()).collect();
        shares.insert(0, root);
        // Resolve in a rotated order.
        let start = order.index(fates.len());
        let mut expected = Status::Delivered;
        let mut paired: Vec<(Ack, Option<Status>)> = shares.into_iter().zip(fates.iter().copied()).collect();
        paired.rotate_left(start);
        let last = paired.len() - 1;
        for (i, (share, fate)) in paired.into_iter().enumerate() {
            expected = expected.join(fate.unwrap_or(Status::Errored));
            match fate {
                Some(st) => share.resolve(st),
                None => drop(share),
            }
            let want_calls = usize::from(i == last);
            prop_assert_eq!(calls.load(Ordering::SeqCst), want_calls);
        }
        prop_assert_eq!(seen.lock().unwrap().clone(), vec![expected]);
    }

    /// Shares of shares behave as shares of the root.
    #[test]
    fn nested_shares(depth in 1usize..6, fate_of_leaf in fate()) {
        let (root, calls, seen) = counting_ack();
        let mut chain = vec![root];
        for _ in 0..depth {
            let next = chain.last().unwrap().share();
            chain.push(next);
        }
        let leaf = chain.pop().unwrap();
        for a in chain { a.resolve(Status::Delivered); }
        prop_assert_eq!(calls.load(Ordering::SeqCst), 0);
        match fate_of_leaf { Some(st) => leaf.resolve(st), None => drop(leaf) }
        prop_assert_eq!(calls.load(Ordering::SeqCst), 1);
        prop_assert_eq!(seen.lock().unwrap()[0], fate_of_leaf.unwrap_or(Status::Errored));
    }
}

#[test]
fn dropped_unresolved_counts_as_errored() {
    let (ack, mut rx) = Ack::channel();
    drop(ack);
    assert_eq!(rx.try_recv().unwrap(), Status::Errored);
}

#[test]
fn ack_moves_across_threads() {
    let (ack, rx) = Ack::channel();
    let share = ack.share();
    std::thread::spawn(move || share.resolve(Status::Delivered)).join().unwrap();
    ack.resolve(Status::Delivered);
    assert_eq!(rx.blocking_recv().unwrap(), Status::Delivered);
}
