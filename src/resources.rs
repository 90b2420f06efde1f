//! Resources the connectors of one pipeline run share: a client, a connection or a loaded
//! configuration made once for the source and the sink (the AWS SDK configuration with its
//! credentials and connection pool, a NATS connection). A leaf: it depends on nothing of the
//! crate.
//!
//! Scoped to a run rather than to the process on purpose: clients bind their connections to
//! the tokio runtime that made them, and a test suite (or a program) may run pipelines on
//! several runtimes.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

type Slot = Arc<dyn Any + Send + Sync>;

/// A map from `(type, key)` to a value made once, on first use, and shared by every connector
/// of the run. Cheap to clone; clones share the map. The driver gives the same one to the
/// source ([`SourceContext`](crate::source::SourceContext)) and the sink
/// ([`SinkContext`](crate::sink::SinkContext)).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let resources = etl::resources::Resources::default();
/// let a: String = resources.get_or_try_init("client", || async { Ok::<_, ()>("made once".to_string()) }).await.unwrap();
/// let b: String = resources.get_or_try_init("client", || async { Ok::<_, ()>("made twice".to_string()) }).await.unwrap();
/// assert_eq!(a, b);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Resources {
    slots: Arc<Mutex<HashMap<(TypeId, String), Slot>>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.slots.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Resources").field("count", &count).finish()
    }
}

impl Resources {
    /// The value of type `T` under `key`, made by `init` if no connector of the run made it
    /// yet. Concurrent callers wait for one `init`; a failed `init` is not remembered (the
    /// next caller tries again).
    pub async fn get_or_try_init<T, E, F, Fut>(&self, key: &str, init: F) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = self.cell::<T>(key);
        cell.get_or_try_init(init).await.cloned()
    }

    /// Put `value` under `key` for the other connectors of the run, unless a value of type `T`
    /// is already there (then nothing changes and the answer is false).
    ///
    /// ```
    /// let resources = etl::resources::Resources::default();
    /// assert!(resources.offer("store", 1u32));
    /// assert!(!resources.offer("store", 2u32));
    /// assert_eq!(resources.get::<u32>("store"), Some(1));
    /// ```
    pub fn offer<T: Clone + Send + Sync + 'static>(&self, key: &str, value: T) -> bool {
        self.cell::<T>(key).set(value).is_ok()
    }

    /// The value of type `T` under `key`, if a connector of the run made or offered one.
    ///
    /// ```
    /// let resources = etl::resources::Resources::default();
    /// assert_eq!(resources.get::<String>("client"), None);
    /// ```
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        self.cell::<T>(key).get().cloned()
    }

    fn cell<T: Send + Sync + 'static>(&self, key: &str) -> Arc<OnceCell<T>> {
        // The map is never left half-updated by a panic.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry((TypeId::of::<T>(), key.to_owned())).or_insert_with(|| Arc::new(OnceCell::<T>::new()) as Slot);
        match Arc::clone(slot).downcast::<OnceCell<T>>() {
            Ok(cell) => cell,
            // Unreachable: the slot's type is part of its key.
            Err(_) => Arc::new(OnceCell::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_value_per_type_and_key_and_failures_are_retried() {
        let r = Resources::default();
        let first: u32 = r.get_or_try_init("a", || async { Err::<u32, &str>("down") }).await.unwrap_err().len() as u32;
        assert_eq!(first, 4);
        assert_eq!(r.get_or_try_init("a", || async { Ok::<u32, ()>(1) }).await, Ok(1));
        assert_eq!(r.get_or_try_init("a", || async { Ok::<u32, ()>(2) }).await, Ok(1));
        assert_eq!(r.get_or_try_init("b", || async { Ok::<u32, ()>(3) }).await, Ok(3));
        let text: Result<String, ()> = r.get_or_try_init("a", || async { Ok("other type".to_string()) }).await;
        assert_eq!(text.as_deref(), Ok("other type"));
        let clone = r.clone();
        assert_eq!(clone.get_or_try_init("b", || async { Ok::<u32, ()>(9) }).await, Ok(3));
        assert_eq!(clone.get::<u32>("b"), Some(3));
        assert!(!clone.offer("b", 4u32));
        assert!(clone.offer("c", 5u32));
        assert_eq!(r.get::<u32>("c"), Some(5));
    }
}
