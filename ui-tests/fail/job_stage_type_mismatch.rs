use etl::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Raw { records: Vec<String> }
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Clean { transformed: Vec<String> }

#[stage]
async fn extract(url: String) -> Result<Raw, etl::stage::Error> {
    Ok(Raw { records: vec![url] })
}

#[stage]
async fn load(clean: Clean) -> Result<usize, etl::stage::Error> {
    Ok(clean.transformed.len())
}

fn main() {
    // `load` takes `Clean`, but `extract` outputs `Raw`: the transform stage is missing.
    let _job = pipeline! { extract | load };
}
