#[etl::main]
fn main() -> etl::Result<()> {
    Ok(())
}
