use super::*;
use proptest::prelude::*;
use std::sync::atomic::AtomicUsize;

/// A Fisher-Yates shuffle driven by `seed` (a splitmix64 sequence): every order can come out.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        items.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

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
        prop_assert_eq!(Status::Errored.join(a), Status::Errored, "errored wins");
    }

    /// However a batch is split and in whatever order the shares resolve, the source hears
    /// exactly one status: the join of the shares, with unresolved shares counted as errored.
    #[test]
    fn exactly_one_final_status(fates in prop::collection::vec(fate(), 1..12), seed in any::<u64>()) {
        let (root, calls, seen) = counting_ack();
        let mut shares: Vec<Ack> = (1..fates.len()).map(|_| root.share()).collect();
        shares.insert(0, root);
        let mut paired: Vec<(Ack, Option<Status>)> = shares.into_iter().zip(fates.iter().copied()).collect();
        shuffle(&mut paired, seed);
        let expected = fates.iter().fold(Status::Delivered, |acc, f| acc.join(f.unwrap_or(Status::Errored)));
        let last = paired.len() - 1;
        for (i, (share, fate)) in paired.into_iter().enumerate() {
            match fate {
                Some(st) => share.resolve(st),
                None => drop(share),
            }
            let want_calls = usize::from(i == last);
            prop_assert_eq!(calls.load(Ordering::SeqCst), want_calls);
        }
        prop_assert_eq!(seen.lock().unwrap().clone(), vec![expected]);
    }

    /// One errored (or forgotten) share makes the source redeliver the whole batch, whatever the
    /// other shares did and in whatever order they resolve: a share that had records
    /// dead-lettered (rejected) never lets the source commit past a share that failed.
    #[test]
    fn any_errored_share_redelivers(
        others in prop::collection::vec(prop_oneof![Just(Status::Delivered), Just(Status::Rejected)], 0..10),
        forgotten in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (root, _calls, seen) = counting_ack();
        let mut paired: Vec<(Ack, Option<Status>)> = others.iter().map(|s| (root.share(), Some(*s))).collect();
        paired.push((root, if forgotten { None } else { Some(Status::Errored) }));
        shuffle(&mut paired, seed);
        for (share, fate) in paired {
            match fate {
                Some(st) => share.resolve(st),
                None => drop(share),
            }
        }
        let seen = seen.lock().unwrap().clone();
        prop_assert_eq!(&seen, &vec![Status::Errored]);
        prop_assert!(!seen[0].is_done(), "the source must redeliver");
    }

    /// A batch whose shares were all delivered or rejected is done; it is rejected as soon as
    /// one share had records dead-lettered.
    #[test]
    fn delivered_and_rejected_shares_are_done(shares in prop::collection::vec(prop_oneof![Just(Status::Delivered), Just(Status::Rejected)], 1..10), seed in any::<u64>()) {
        let (root, _calls, seen) = counting_ack();
        let mut paired: Vec<(Ack, Status)> = shares[1..].iter().map(|s| (root.share(), *s)).collect();
        paired.push((root, shares[0]));
        shuffle(&mut paired, seed);
        for (share, st) in paired {
            share.resolve(st);
        }
        let want = if shares.contains(&Status::Rejected) { Status::Rejected } else { Status::Delivered };
        prop_assert_eq!(seen.lock().unwrap().clone(), vec![want]);
        prop_assert!(want.is_done());
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

#[test]
fn the_order_is_delivered_rejected_errored() {
    assert!(Status::Delivered < Status::Rejected && Status::Rejected < Status::Errored);
    assert_eq!(Status::Rejected.join(Status::Errored), Status::Errored);
    assert_eq!(Status::Errored.join(Status::Rejected), Status::Errored);
    assert_eq!(Status::Delivered.join(Status::Rejected), Status::Rejected);
    assert!(Status::Rejected.is_done() && Status::Delivered.is_done() && !Status::Errored.is_done());
}
