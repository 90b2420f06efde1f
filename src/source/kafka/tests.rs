use super::decode::*;
use super::partitions::*;
use crate::ack::Status;
use crate::batch::FailureKind;
use crate::record::Position;
use crate::Json;
use bytes::Bytes;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

fn message(payload: Option<&str>) -> Received {
    Received {
        topic: "orders".into(),
        partition: 2,
        offset: 41,
        key: Some(Bytes::from_static(b"k-1")),
        payload: payload.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        headers: vec![("trace".into(), Bytes::from_static(b"abc"))],
        timestamp_millis: Some(1_700_000_000_000),
    }
}

const TOKEN: Token = Token { slot: 0, epoch: 0, offset: 41 };

#[test]
fn a_message_becomes_a_record_with_its_metadata_beside_it() {
    let inc = decode::<Json>(message(Some(r#"{"id":1,"_offset":"mine"}"#)), TOKEN);
    assert_eq!(inc.token, TOKEN);
    let (record, meta) = inc.item.unwrap();
    assert_eq!(serde_json::to_value(&record).unwrap(), serde_json::json!({"id": 1, "_offset": "mine"}));
    assert_eq!(meta.position, Position::Offset { partition: 2, offset: 41 });
    assert_eq!(meta.raw.as_deref(), Some(&br#"{"id":1,"_offset":"mine"}"#[..]));
    let extra = meta.extra.unwrap();
    assert_eq!(extra.key.as_deref(), Some(&b"k-1"[..]));
    assert_eq!(extra.headers, vec![("trace".to_string(), Bytes::from_static(b"abc"))]);
    assert_eq!(extra.event_type.as_deref(), Some("orders"));
    assert_eq!(extra.timestamp, Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)));
}

#[test]
fn a_bad_value_or_a_tombstone_is_a_decode_failure_with_its_bytes_and_position() {
    let failure = decode::<Json>(message(Some("{oops")), TOKEN).item.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Decode);
    assert_eq!(&failure.payload[..], b"{oops");
    assert_eq!(failure.meta.position, Position::Offset { partition: 2, offset: 41 });
    assert!(failure.error.contains("orders partition 2 offset 41"), "{}", failure.error);
    let tombstone = decode::<Json>(message(None), TOKEN).item.unwrap_err();
    assert!(tombstone.payload.is_empty() && tombstone.error.contains("tombstone"), "{}", tombstone.error);
}

fn table() -> Partitions<&'static str> {
    let mut p = Partitions::new();
    p.assign("t", 0);
    p
}

fn admit(p: &mut Partitions<&'static str>, offsets: std::ops::Range<i64>) -> Vec<Token> {
    offsets.map(|o| p.admit("t", 0, o).expect("admitted")).collect()
}

#[test]
fn commits_only_the_contiguous_prefix_and_releases_what_waited_once_committed() {
    let mut p = table();
    let a = {
        let t = admit(&mut p, 10..15);
        p.issue(&t)
    };
    let b = {
        let t = admit(&mut p, 15..20);
        p.issue(&t)
    };
    assert_eq!(p.resolve(b[0], Status::Delivered, "b"), Vec::<&str>::new());
    assert!(p.to_commit(None).is_empty(), "nothing done yet: b waits for a");
    assert!(p.resolve(a[0], Status::Rejected, "a").is_empty());
    let commits = p.to_commit(None);
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].offset, 20, "the offset after b's last record");
    let mut released = p.committed(&commits[0]);
    released.sort();
    assert_eq!(released, ["a", "b"]);
    assert!(p.to_commit(None).is_empty(), "nothing new");
}

#[test]
fn an_errored_batch_seeks_back_and_makes_everything_fetched_after_it_stale() {
    let mut p = table();
    let t1 = admit(&mut p, 0..5);
    let a = p.issue(&t1);
    let b = {
        let t = admit(&mut p, 5..10);
        p.issue(&t)
    };
    let later = p.admit("t", 0, 10).unwrap();
    let generation = p.generation();
    assert!(p.resolve(b[0], Status::Delivered, "b").is_empty(), "b waits for a");
    let released = p.resolve(a[0], Status::Errored, "a");
    assert_eq!(released.len(), 2, "b's wait is over (it is read again) and a owes nothing: {released:?}");
    assert_ne!(p.generation(), generation);
    assert!(!p.is_current(&later) && !p.is_current(&t1[0]), "fetched before the seek: stale");
    let seeks = p.seeks();
    assert_eq!(seeks.len(), 1);
    assert_eq!(seeks[0].offset, 0, "back to the first unfinished offset");
    assert_eq!(p.admit("t", 0, 10), None, "nothing admitted until the seek is made");
    assert!(p.issue(&[later]).is_empty(), "stale tokens are never issued");
    p.seeked(&seeks[0], seeks[0].offset);
    let again = {
        let t = admit(&mut p, 0..5);
        p.issue(&t)
    };
    assert!(p.resolve(again[0], Status::Delivered, "again").is_empty());
    assert_eq!(p.to_commit(None)[0].offset, 5);
}

#[test]
fn revoked_partitions_forget_their_batches() {
    let mut p = table();
    let a = {
        let t = admit(&mut p, 0..3);
        p.issue(&t)
    };
    assert_eq!(p.in_flight("t", 0), 1);
    assert!(p.resolve(a[0], Status::Delivered, "a").is_empty());
    assert_eq!(p.to_commit(Some(&[("t".into(), 0)]))[0].offset, 3);
    assert!(p.to_commit(Some(&[("other".into(), 0)])).is_empty());
    assert_eq!(p.revoke("t", 0), ["a"]);
    assert_eq!(p.admit("t", 0, 3), None);
    assert_eq!(p.resolve(a[0], Status::Delivered, "late"), ["late"], "a late acknowledgement changes nothing");
    assert_eq!(p.in_flight("t", 0), 0);
}

/// The ranges a sink that stores positions sees: consecutive batches of a partition meet,
/// across gaps in the offsets, from where the partition was placed.
#[test]
fn ranges_start_where_the_partition_was_placed_and_meet() {
    let mut p: Partitions<&'static str> = Partitions::new();
    p.assign_at("t", 0, Some(100));
    // Offsets 100..103 are transaction markers or compacted away: the first read is 103.
    let first = {
        let t: Vec<Token> = [103, 104, 107].iter().map(|o| p.admit("t", 0, *o).unwrap()).collect();
        p.issue(&t)
    };
    let range = p.range(&first[0]).unwrap();
    assert_eq!((range.from, range.to), (100, 108), "from the stored position, to the offset after the last read");
    let second = {
        let t = admit(&mut p, 110..112);
        p.issue(&t)
    };
    assert_eq!((second[0].from, second[0].end), (108, 112), "the next range starts where the last ended");
    // Placed at the group's offset (nothing stored): the first range starts at the first read.
    p.assign_at("t", 1, None);
    let t: Vec<Token> = [7, 8].iter().map(|o| p.admit("t", 1, *o).unwrap()).collect();
    let issued = p.issue(&t);
    assert_eq!((issued[0].from, issued[0].end), (7, 9));
}

/// After an errored batch the next range starts at the seek; when the store says the
/// partition is elsewhere (another writer moved it: the batch was fenced off), reading and the
/// group's next commit go there.
#[test]
fn a_seek_to_a_stored_position_moves_the_ranges_and_the_commit_point() {
    let mut p: Partitions<&'static str> = Partitions::new();
    p.assign_at("t", 0, Some(0));
    let a = {
        let t = admit(&mut p, 0..5);
        p.issue(&t)
    };
    let b = {
        let t = admit(&mut p, 5..10);
        p.issue(&t)
    };
    assert_eq!((b[0].from, b[0].end), (5, 10));
    p.resolve(a[0], Status::Delivered, "a");
    p.resolve(b[0], Status::Errored, "b");
    let seeks = p.seeks();
    assert_eq!(seeks[0].offset, 5, "back to the first unfinished offset");
    // The store holds 8: another member wrote 5..8 after this one read them.
    p.seeked(&seeks[0], 8);
    assert_eq!(p.to_commit(None)[0].offset, 8, "the group commits the stored position");
    let c = {
        let t = admit(&mut p, 8..12);
        p.issue(&t)
    };
    assert_eq!((c[0].from, c[0].end), (8, 12));
}

proptest! {
    /// Batches of one partition resolved in any order, one of them possibly errored: the offset
    /// to commit is always the end of the longest prefix of done batches (never past an
    /// unfinished or failed one), and a failure asks for a seek to exactly that offset.
    #[test]
    fn the_commit_point_never_passes_an_unfinished_batch(
        sizes in prop::collection::vec(1i64..5, 1..12),
        failing in prop::option::of(0usize..12),
        seed in any::<u64>(),
    ) {
        let mut p: Partitions<usize> = Partitions::new();
        p.assign("t", 0);
        let mut start = 100;
        let mut batches = Vec::new();
        for &size in &sizes {
            let tokens: Vec<Token> = (start..start + size).map(|o| p.admit("t", 0, o).unwrap()).collect();
            batches.push((start, start + size, p.issue(&tokens)[0]));
            start += size;
        }
        let mut order: Vec<usize> = (0..batches.len()).collect();
        let mut state = seed | 1;
        for i in (1..order.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut resolved = vec![false; batches.len()];
        let mut failed = None;
        for &i in &order {
            let status = if failing == Some(i) { Status::Errored } else { Status::Delivered };
            p.resolve(batches[i].2, status, i);
            resolved[i] = true;
            if status == Status::Errored && failed.is_none() {
                failed = Some(i);
            }
            let prefix = if failed.is_some() {
                // The rewind forgot everything after the prefix done at the time of the failure.
                continue;
            } else {
                resolved.iter().take_while(|r| **r).count()
            };
            let want = if prefix == 0 { None } else { Some(batches[prefix - 1].1) };
            let got = p.to_commit(None).first().map(|c| c.offset);
            prop_assert_eq!(got, want, "after resolving {:?}", &order);
        }
        if let Some(f) = failed {
            let seeks = p.seeks();
            prop_assert_eq!(seeks.len(), 1);
            prop_assert!(seeks[0].offset <= batches[f].0, "the seek goes back at least to the failed batch's first offset");
            let committed = p.to_commit(None).first().map_or(100, |c| c.offset);
            prop_assert_eq!(committed, seeks[0].offset, "the commit point (or the start) is where the seek goes");
        }
    }
}

/// Exactly-once keeps the last copy of each offset inside the batch's ranges: copies fetched
/// before a seek back (read again after it, in the same batch) and records outside every range
/// (stale, of a revoked partition) are not written.
#[test]
fn an_exactly_once_batch_keeps_each_offset_of_its_ranges_once() {
    use super::read::read_once;
    use crate::positions::{OffsetRange, Positions};
    use crate::record::{Extra, Meta};
    let at = |topic: &str, partition: i32, offset: i64| {
        Meta::at(Position::Offset { partition, offset }).with_extra(Extra { event_type: Some(topic.into()), ..Extra::default() })
    };
    let positions = Positions::new("g", vec![OffsetRange::new("t", 0, 5, 8), OffsetRange::new("u", 1, 0, 2)]);
    // Stale 5, 6 and 9 of t/0 (fetched before a seek back to 5), then 5, 6, 7 read again, and u/1.
    let metas = [at("t", 0, 5), at("t", 0, 6), at("t", 0, 9), at("t", 0, 5), at("t", 0, 6), at("t", 0, 7), at("u", 1, 0), at("u", 1, 1)];
    assert_eq!(read_once(&positions, metas.iter()), [false, false, false, true, true, true, true, true]);
    assert_eq!(read_once(&positions, [at("t", 1, 5)].iter()), [false], "another partition");
    assert_eq!(read_once(&positions, [Meta::default()].iter()), [true], "no Kafka position: kept");
}
