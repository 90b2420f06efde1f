//! The I/O of exactly-once delivery in the PostgreSQL sink: the offsets table made ready at
//! open, and the [`PositionStore`] the sink offers its run's source (reads of committed
//! positions, on a connection of the pool apart from the open transaction).

use super::offsets;
use super::write::{connection, timed};
use crate::error::ConnectorError;
use crate::positions::{Partition, PositionStore, StoredFuture};
use deadpool_postgres::{Object, Pool};
use std::time::Duration;

/// Create the offsets table `target` when it is missing, and check that it is one: the
/// compare-and-set prepares (its columns exist, `ON CONFLICT` finds the primary key).
pub(super) async fn prepare_table(client: &Object, target: &str, component: &str, limit: Duration) -> Result<(), ConnectorError> {
    let created = timed(component, "creating the offsets table", limit, client.batch_execute(&offsets::create_sql(target))).await;
    if let Err(e) = created {
        // Two pipelines starting together: PostgreSQL may fail the second `CREATE TABLE IF
        // NOT EXISTS` (a unique violation in its catalog) while the first commits. The
        // statement below says whether the table is there.
        tracing::debug!(table = %target, error = %e, "creating the offsets table failed; checking whether another session made it");
    }
    timed(component, "checking the offsets table", limit, client.prepare(&offsets::fence_sql(target))).await.map_err(|e| {
        ConnectorError::permanent(
            component.to_owned(),
            format!(
                "the offsets table {target} cannot hold positions ({e}); it needs the columns group_id text, topic text, \
                 \"partition\" integer, next_offset bigint, with the primary key (group_id, topic, \"partition\") \
                 (drop it to let the sink create it, or name another with `offsets_table`)"
            ),
        )
    })?;
    Ok(())
}

/// The positions a PostgreSQL sink stored, as its run's source reads them.
pub(super) struct Stored {
    pub pool: Pool,
    /// `"schema"."table"` of the offsets table.
    pub target: String,
    pub component: String,
    pub timeout: Duration,
}

impl PositionStore for Stored {
    fn describe(&self) -> String {
        format!("postgres table {}", self.target)
    }

    fn stored<'a>(&'a self, consumer: &'a str, partitions: &'a [Partition]) -> StoredFuture<'a> {
        Box::pin(async move {
            let client = connection(&self.pool, &self.component).await?;
            let sql = offsets::stored_sql(&self.target);
            let topics = offsets::topics_of(partitions);
            let rows =
                timed(&self.component, "reading the stored positions", self.timeout, client.query(&sql, &[&consumer, &topics])).await?;
            let rows = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1), r.get::<_, i64>(2)));
            Ok(offsets::asked_for(rows, partitions))
        })
    }
}
