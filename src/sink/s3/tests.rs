use super::encode::KeyTemplate;
use super::*;
use crate::record::Position;

#[test]
fn a_retry_of_the_same_batch_keeps_its_key_and_the_next_batch_gets_a_new_one() {
    let mut sink = s3("b").key("{run}/{first_position}-{seq}.{ext}");
    let template = KeyTemplate::parse(&sink.key).unwrap();
    let first = [Meta::at(Position::Id("m-1".into())), Meta::at(Position::Id("m-2".into()))];
    let key = sink.key_for(&template, 2, &first);
    assert!(key.ends_with("/m-1-000000.jsonl"), "{key}");
    // The write failed; the pipeline retries the same batch.
    assert_eq!(sink.key_for(&template, 2, &first), key);
    // A different batch (the write gave up and a new one came) is not given the old key.
    let other = [Meta::at(Position::Id("m-9".into()))];
    assert!(sink.key_for(&template, 1, &other).ends_with("/m-9-000000.jsonl"));
}
