use super::*;
use crate::ack::Status;

#[test]
fn filter_keeps_meta_aligned() {
    let meta: Vec<Meta> = (0..6).map(|i| Meta::at(crate::record::Position::Index(i))).collect();
    let b = Batch::new((0..6).collect::<Vec<i64>>(), meta, vec![], Ack::none(), Arc::from("t"));
    let b = b.filter(|n| n % 2 == 1);
    let positions: Vec<_> = b.meta().iter().map(|m| m.position.clone()).collect();
    assert_eq!(b.records(), &[1, 3, 5]);
    assert_eq!(positions, [1, 3, 5].map(crate::record::Position::Index));
}

#[test]
fn try_map_keeps_raw_bytes_of_failures() {
    let meta = vec![Meta::default().with_raw(Bytes::from_static(b"raw-a")), Meta::default()];
    let b = Batch::new(vec!["a".to_string(), "7".to_string()], meta, vec![], Ack::none(), Arc::from("t"));
    let b = b.try_map(|s| s.parse::<i64>());
    assert_eq!(b.records(), &[7]);
    assert_eq!(&b.failures()[0].payload[..], b"raw-a");
    assert_eq!(b.failures()[0].kind, FailureKind::Transform);
}

#[test]
fn try_for_each_moves_failed_records_out() {
    let b = Batch::from_records(vec![1i64, -2, 3, -4]);
    let b = b.try_for_each(|n| if *n < 0 { Err(format!("{n} is negative")) } else { Ok(()) });
    assert_eq!(b.records(), &[1, 3]);
    assert_eq!(b.meta().len(), 2);
    let payloads: Vec<_> = b.failures().iter().map(|f| f.payload.clone()).collect();
    assert_eq!(payloads, [Bytes::from_static(b"-2"), Bytes::from_static(b"-4")]);
}

#[test]
fn flat_map_copies_meta_to_each_output() {
    let b = Batch::new(vec![2usize], vec![Meta::at(crate::record::Position::Line(9))], vec![], Ack::none(), Arc::from("t"));
    let b = b.flat_map(|n| 0..n);
    assert_eq!(b.records(), &[0, 1]);
    assert!(b.meta().iter().all(|m| m.position == crate::record::Position::Line(9)));
}

#[test]
fn the_ack_travels_with_the_batch() {
    let (ack, mut rx) = Ack::channel();
    let b = Batch::new(vec![1], vec![Meta::default()], vec![], ack, Arc::from("t")).map(|n| n + 1);
    b.into_parts().ack.resolve(Status::Delivered);
    assert_eq!(rx.try_recv().unwrap(), Status::Delivered);
}

#[test]
fn an_edit_that_fails_half_way_dead_letters_the_record_as_it_came_in() {
    let b = Batch::from_records(vec![(1i64, 2i64)]);
    let b = b.try_for_each(|pair| {
        pair.0 = 100; // the first step of the edit succeeds...
        Err::<(), _>("second step failed") // ...and the second fails
    });
    assert!(b.is_empty());
    assert_eq!(&b.failures()[0].payload[..], b"[1,2]");
}
