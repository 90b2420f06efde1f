use etl::cli::clap;

#[derive(clap::Args)]
struct Flags {}

#[etl::main]
async fn main(flags: Flags, verbose: bool) -> etl::Result<()> {
    let _ = (flags, verbose);
    Ok(())
}
