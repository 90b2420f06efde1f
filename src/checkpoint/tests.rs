use super::file::file_name;
use super::*;

async fn contract(store: &dyn CheckpointStore) {
    assert!(store.get("a").await.unwrap().is_none());
    let r1 = store.put("a", b"one".to_vec(), None).await.unwrap();
    assert!(matches!(store.put("a", b"x".to_vec(), None).await, Err(CheckpointError::Conflict { found: Some(f), .. }) if f == r1));
    let r2 = store.put("a", b"two".to_vec(), Some(r1)).await.unwrap();
    assert_ne!(r1, r2);
    assert!(matches!(store.put("a", b"x".to_vec(), Some(r1)).await, Err(CheckpointError::Conflict { .. })));
    assert_eq!(store.get("a").await.unwrap(), Some(Versioned { value: b"two".to_vec(), revision: r2 }));
    assert!(matches!(store.delete("a", Some(r1)).await, Err(CheckpointError::Conflict { .. })));
    store.delete("a", Some(r2)).await.unwrap();
    assert!(store.get("a").await.unwrap().is_none());
    store.delete("a", None).await.unwrap();
    // A revision from before a delete never matches again.
    let r3 = store.put("a", b"three".to_vec(), None).await.unwrap();
    assert!(r3 > r2);
    let claim = store.claim("a").await.unwrap();
    assert!(matches!(store.claim("a").await, Err(CheckpointError::Busy { .. })));
    let other = store.claim("b").await.unwrap();
    drop(claim);
    let _again = store.claim("a").await.unwrap();
    drop(other);
    // Binary values survive.
    let bytes: Vec<u8> = (0..=255u8).chain([b'\n', 0, 0xff]).collect();
    store.put("bin", bytes.clone(), None).await.unwrap();
    assert_eq!(store.get("bin").await.unwrap().unwrap().value, bytes);
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn file_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&FileStore::new(dir.path().join("nested"))).await;
}

#[tokio::test]
async fn a_torn_or_foreign_file_is_corrupt_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    store.put("k", b"12345".to_vec(), None).await.unwrap();
    let path = store.path_of("k");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&path, &bytes).unwrap();
    let e = store.get("k").await.unwrap_err();
    assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("3 bytes where its header says 5"), "{e}");
    std::fs::write(&path, b"hello").unwrap();
    assert!(matches!(store.get("k").await, Err(CheckpointError::Corrupt { .. })));
}

#[tokio::test]
async fn a_store_that_cannot_be_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let e = FileStore::new(&not_a_dir).get("k").await.unwrap_err();
    assert!(matches!(e, CheckpointError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("not \"no checkpoint\""), "{e}");
}

#[tokio::test]
async fn memory_store_refuses_values_over_its_limit() {
    let store = MemoryStore::new().with_max_value_bytes(4);
    assert!(matches!(store.put("k", vec![0; 5], None).await, Err(CheckpointError::TooLarge { len: 5, limit: 4, .. })));
    store.put("k", vec![0; 4], None).await.unwrap();
}

#[test]
fn keys_become_safe_file_names() {
    assert_eq!(file_name("batch-2025-03-18"), "batch-2025-03-18");
    assert_eq!(file_name("a/b"), "a%2Fb");
    assert_eq!(file_name(".."), "%2E.");
    assert_eq!(file_name("run.chunk.1"), "run.chunk.1");
    assert_eq!(file_name("é"), "%C3%A9");
}
