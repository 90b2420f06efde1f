use etl::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Raw { records: Vec<String> }

#[stage(retries = 3, backoff = 2s)]
async fn extract(url: String) -> Result<Raw, etl::stage::Error> {
    Ok(Raw { records: vec![url] })
}

#[stage]
async fn load(raw: Raw) -> Result<usize, etl::stage::Error> {
    Ok(raw.records.len())
}

mod stages {
    #[etl::stage]
    pub async fn count(n: usize) -> Result<u64, etl::stage::Error> {
        Ok(n as u64)
    }
}

fn main() {
    let job: etl::job::Job<String, u64> = pipeline! { extract | load | stages::count };
    let _ = job.checkpoints(etl::checkpoint::MemoryStore::new());
}
