use super::*;
use crate::checkpoint::MemoryStore;

async fn grow_fn(n: usize) -> Result<Vec<u8>, String> {
    Ok(vec![7; n])
}

async fn measure_fn(v: Vec<u8>) -> Result<usize, String> {
    Ok(v.len())
}

/// `grow | measure`, each one attempt.
fn grow_measure() -> Job<usize, usize> {
    Job::new_with(grow_fn, StageOptions::new("grow").retries(0)).stage_with(measure_fn, StageOptions::new("measure").retries(0))
}

#[tokio::test]
async fn state_over_the_store_limit_goes_in_chunks_and_comes_back() {
    let store = MemoryStore::new().with_max_value_bytes(64 * 1024);
    let job = grow_measure().checkpoints(store.clone());
    let n = 300 * 1024; // JSON: about 2 bytes per element
    let at = state::save(&store, "r", &job.stage_names(), 0, &serde_json::to_vec(&vec![7u8; n]).unwrap(), state::Position::default())
        .await
        .unwrap();
    assert!(store.keys().len() > 5, "{:?}", store.keys());
    assert!(store.largest_value() <= 64 * 1024);
    // A second checkpoint replaces the chunks of the first.
    let before = store.keys();
    let at = state::save(&store, "r", &job.stage_names(), 0, &serde_json::to_vec(&vec![7u8; n]).unwrap(), at).await.unwrap();
    assert_eq!(store.keys().len(), before.len());
    assert!(store.keys().iter().all(|k| !before.contains(k) || k == "r"));
    drop(at);
    let done = job.run_with_report(0, "r").await.unwrap();
    assert_eq!(done.output, n);
    assert_eq!(done.report.resumed(), ["grow"]);
    assert!(store.keys().is_empty(), "{:?}", store.keys());
}

#[tokio::test]
async fn a_missing_chunk_is_an_error() {
    let store = MemoryStore::new().with_max_value_bytes(8 * 1024);
    let job = grow_measure().checkpoints(store.clone());
    state::save(&store, "r", &job.stage_names(), 0, &serde_json::to_vec(&vec![7u8; 20_000]).unwrap(), state::Position::default())
        .await
        .unwrap();
    let chunk = store.keys().into_iter().find(|k| k.contains(CHUNK_MARKER)).unwrap();
    store.delete(&chunk, None).await.unwrap();
    let e = job.run(0, "r").await.unwrap_err();
    assert!(e.to_string().contains("is missing"), "{e}");
}

#[tokio::test]
async fn two_stages_with_one_name_are_refused() {
    let e =
        grow_measure().stage_with(|n: usize| async move { Ok::<_, String>(n) }, StageOptions::new("grow")).run(1, "r").await.unwrap_err();
    assert!(matches!(e, JobError::DuplicateStage { position: 3, .. }), "{e}");
}
