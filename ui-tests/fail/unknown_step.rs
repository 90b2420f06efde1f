use etl::prelude::*;

async fn run() -> etl::Result<()> {
    let report = pipeline! { iter(vec![1i64, -2]) | fliter(|n| *n > 0) | stdout() }.name("x").run().await?;
    println!("{report}");
    Ok(())
}

fn main() {
    let _ = run;
}
