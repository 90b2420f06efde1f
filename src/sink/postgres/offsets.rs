//! Pure: the SQL of the offsets table of exactly-once delivery, and what its answers mean.
//! No I/O (the statements run in `write.rs` and `positions.rs`).
//!
//! The table holds, per (consumer group, topic, partition), the next offset to read: the `to`
//! of the last range stored. Each batch's ranges are stored in the batch's own transaction by
//! one statement, [`fence_sql`], a compare-and-set per partition:
//!
//! * a row whose `next_offset` is the range's `from` moves to its `to`;
//! * a partition without a row gets one (its first batch under exactly-once);
//! * a row with another `next_offset` is left alone: another member of the group wrote past
//!   this batch (or is writing: the update waits for its transaction, then sees its row).
//!
//! The statement returns the partitions it stored; any other is **fenced** ([`fenced`]), and
//! the whole batch is rolled back to its savepoint and dropped.

use crate::positions::{OffsetRange, Partition, Positions};

/// `CREATE TABLE IF NOT EXISTS` the offsets table `target` (`"schema"."table"`).
pub(super) fn create_sql(target: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {target} (\
         group_id text NOT NULL, \
         topic text NOT NULL, \
         \"partition\" integer NOT NULL, \
         next_offset bigint NOT NULL, \
         updated_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (group_id, topic, \"partition\"))"
    )
}

/// The compare-and-set of a batch's ranges. Parameters: `$1` the group (text), then one array
/// each of the ranges' topics (text[]), partitions (int4[]), `from`s and `to`s (int8[]).
/// Returns `(topic, partition)` of every range stored.
///
/// The two data-modifying parts see the same snapshot: the update handles the partitions that
/// have a row, the insert (`NOT EXISTS`) those that have none. Under concurrency (`READ
/// COMMITTED`), an update of a row another transaction holds waits for it and then checks
/// `next_offset` against the committed row; an insert racing another insert of the same
/// partition waits, then does nothing: in both cases the partition is not returned.
pub(super) fn fence_sql(target: &str) -> String {
    format!(
        "WITH input AS (\
           SELECT * FROM unnest($2::text[], $3::int4[], $4::int8[], $5::int8[]) AS i(topic, \"partition\", from_offset, to_offset)), \
         moved AS (\
           UPDATE {target} o SET next_offset = i.to_offset, updated_at = now() FROM input i \
           WHERE o.group_id = $1 AND o.topic = i.topic AND o.\"partition\" = i.\"partition\" AND o.next_offset = i.from_offset \
           RETURNING o.topic, o.\"partition\"), \
         created AS (\
           INSERT INTO {target} (group_id, topic, \"partition\", next_offset) \
           SELECT $1, i.topic, i.\"partition\", i.to_offset FROM input i \
           WHERE NOT EXISTS (SELECT 1 FROM {target} o WHERE o.group_id = $1 AND o.topic = i.topic AND o.\"partition\" = i.\"partition\") \
           ON CONFLICT (group_id, topic, \"partition\") DO NOTHING \
           RETURNING topic, \"partition\") \
         SELECT topic, \"partition\" FROM moved UNION ALL SELECT topic, \"partition\" FROM created"
    )
}

/// The stored positions of a group on some topics: `$1` the group, `$2` the topics (text[]).
/// Returns `(topic, partition, next_offset)`.
pub(super) fn stored_sql(target: &str) -> String {
    format!("SELECT topic, \"partition\", next_offset FROM {target} WHERE group_id = $1 AND topic = ANY($2)")
}

/// The parameters of [`fence_sql`] for `positions`, `$2` to `$5` (`$1` is the group).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct FenceArgs {
    pub topics: Vec<String>,
    pub partitions: Vec<i32>,
    pub from: Vec<i64>,
    pub to: Vec<i64>,
}

impl FenceArgs {
    pub(super) fn of(positions: &Positions) -> FenceArgs {
        let mut args = FenceArgs::default();
        for r in &positions.ranges {
            args.topics.push(r.topic.to_string());
            args.partitions.push(r.partition);
            args.from.push(r.from);
            args.to.push(r.to);
        }
        args
    }
}

/// The ranges of `positions` the fence statement did not store (`stored` is what it
/// returned): their partitions were moved by another writer.
pub(super) fn fenced<'a>(positions: &'a Positions, stored: &[(String, i32)]) -> Vec<&'a OffsetRange> {
    positions.ranges.iter().filter(|r| !stored.iter().any(|(t, p)| *p == r.partition && **t == *r.topic)).collect()
}

/// The rows of [`stored_sql`] restricted to the partitions asked for.
pub(super) fn asked_for(rows: impl IntoIterator<Item = (String, i32, i64)>, asked: &[Partition]) -> Vec<(Partition, i64)> {
    rows.into_iter()
        .filter_map(|(topic, partition, offset)| {
            asked.iter().find(|a| a.partition == partition && *a.topic == *topic).map(|a| (a.clone(), offset))
        })
        .collect()
}

/// The distinct topics of `asked`, for `$2` of [`stored_sql`].
pub(super) fn topics_of(asked: &[Partition]) -> Vec<String> {
    let mut topics: Vec<String> = asked.iter().map(|p| p.topic.to_string()).collect();
    topics.sort();
    topics.dedup();
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_name_the_quoted_table_and_quote_partition() {
        let t = "\"sales\".\"etl_offsets\"";
        let create = create_sql(t);
        assert!(create.starts_with("CREATE TABLE IF NOT EXISTS \"sales\".\"etl_offsets\" ("), "{create}");
        assert!(create.contains("PRIMARY KEY (group_id, topic, \"partition\")"), "{create}");
        let fence = fence_sql(t);
        assert_eq!(fence.matches(t).count(), 3, "update, insert and its NOT EXISTS: {fence}");
        assert!(fence.contains("o.next_offset = i.from_offset"), "the compare of the compare-and-set: {fence}");
        assert!(fence.contains("ON CONFLICT (group_id, topic, \"partition\") DO NOTHING"), "{fence}");
        assert!(stored_sql(t).contains("FROM \"sales\".\"etl_offsets\" WHERE group_id = $1"));
    }

    #[test]
    fn arguments_and_fenced_ranges() {
        let positions =
            Positions::new("g", vec![OffsetRange::new("a", 0, 10, 20), OffsetRange::new("a", 1, 0, 5), OffsetRange::new("b", 0, 7, 8)]);
        let args = FenceArgs::of(&positions);
        assert_eq!(args.topics, ["a", "a", "b"]);
        assert_eq!((args.partitions, args.from, args.to), (vec![0, 1, 0], vec![10, 0, 7], vec![20, 5, 8]));
        let stored = vec![("a".to_owned(), 1), ("b".to_owned(), 0)];
        let f = fenced(&positions, &stored);
        assert_eq!(f.len(), 1);
        assert_eq!((&*f[0].topic, f[0].partition), ("a", 0));
        let all: Vec<(String, i32)> = vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 0)];
        assert!(fenced(&positions, &all).is_empty());
    }

    #[test]
    fn stored_rows_are_restricted_to_the_partitions_asked_for() {
        let asked = [Partition::new("a", 0), Partition::new("b", 2)];
        assert_eq!(topics_of(&[Partition::new("b", 0), Partition::new("a", 1), Partition::new("b", 1)]), ["a", "b"]);
        let rows = vec![("a".to_owned(), 0, 42), ("a".to_owned(), 1, 7), ("b".to_owned(), 2, 9)];
        assert_eq!(asked_for(rows, &asked), vec![(Partition::new("a", 0), 42), (Partition::new("b", 2), 9)]);
    }
}
