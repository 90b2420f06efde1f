use etl::prelude::*;

async fn run(records: Vec<Json>, limit: u64) -> etl::Result<()> {
    pipeline! { iter(records.clone()) | file(dir = "lake/orders/{date}/{hour}", prefix = "orders", max_file_bytes = 64MB) }
        .run()
        .await?;
    pipeline! { iter(records.clone()) | file(dir = "lake/dt={date}", format = "csv", max_file_bytes = 512KiB, sync = false) }
        .run()
        .await?;
    pipeline! { iter(records) | file(dir = "lake", max_file_bytes = limit * 2) }.run().await?;
    Ok(())
}

fn main() {
    let _ = run;
}
