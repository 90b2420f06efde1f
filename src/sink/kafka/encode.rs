//! Pure helpers of the Kafka sink: how a record becomes a message (its key and its JSON
//! value), and the fingerprint of a value the broker refused as too large. No I/O.

use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// What a record becomes: the message key (if any) and the JSON value.
pub type Message = (Option<Vec<u8>>, Vec<u8>);

/// How the sink turns a record into a message (key and value). Implemented by [`NoKey`],
/// [`FieldKey`] and [`FnKey`]; [`KafkaSink::key`](super::KafkaSink::key) picks one.
///
/// ```
/// use etl::sink::kafka::{FieldKey, MessageKey};
/// let (key, value) = FieldKey::new("id").message(&serde_json::json!({"id": 7, "name": "a"})).unwrap();
/// assert_eq!(key.as_deref(), Some(&b"7"[..]));
/// assert_eq!(value, br#"{"id":7,"name":"a"}"#);
/// ```
pub trait MessageKey<T>: Send + Sync {
    /// The message for `record`, or why it cannot be written (it is dead-lettered).
    fn message(&self, record: &T) -> Result<Message, String>;
}

/// Messages without a key (librdkafka's partitioner spreads them). The default.
///
/// ```
/// use etl::sink::kafka::{MessageKey, NoKey};
/// assert_eq!(NoKey.message(&1).unwrap(), (None, b"1".to_vec()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKey;

impl<T: Serialize> MessageKey<T> for NoKey {
    fn message(&self, record: &T) -> Result<Message, String> {
        Ok((None, serde_json::to_vec(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))?))
    }
}

/// The key is a field of the record, by its serde name: a string field's text, any other
/// value's JSON (`42`, `true`); a `null` field gives no key; a record without the field is
/// dead-lettered.
///
/// ```
/// use etl::sink::kafka::{FieldKey, MessageKey};
/// let key = FieldKey::new("customer");
/// assert_eq!(key.message(&serde_json::json!({"customer": "ada"})).unwrap().0.as_deref(), Some(&b"ada"[..]));
/// assert!(key.message(&serde_json::json!({"id": 1})).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FieldKey(String);

impl FieldKey {
    /// Key by the field named `field` (its serde name).
    pub fn new(field: impl Into<String>) -> FieldKey {
        FieldKey(field.into())
    }

    /// The field's name.
    pub fn field(&self) -> &str {
        &self.0
    }
}

impl<T: Serialize> MessageKey<T> for FieldKey {
    fn message(&self, record: &T) -> Result<Message, String> {
        let value = serde_json::to_value(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))?;
        let key = match value.get(&self.0) {
            None => return Err(format!("the record has no field `{}` to key the message with", self.0)),
            Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.as_bytes().to_vec()),
            Some(other) => Some(other.to_string().into_bytes()),
        };
        let payload = serde_json::to_vec(&value).map_err(|e| format!("cannot encode the record as JSON: {e}"))?;
        Ok((key, payload))
    }
}

/// The key is what a function of the record returns (any bytes).
///
/// ```
/// use etl::sink::kafka::{FnKey, MessageKey};
/// let key = FnKey::new(|n: &i64| format!("n-{n}"));
/// assert_eq!(key.message(&3).unwrap(), (Some(b"n-3".to_vec()), b"3".to_vec()));
/// ```
pub struct FnKey<F>(F);

impl<F> FnKey<F> {
    /// Key by `f(record)`.
    pub fn new(f: F) -> FnKey<F> {
        FnKey(f)
    }
}

impl<F> std::fmt::Debug for FnKey<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnKey(..)")
    }
}

impl<T, F, B> MessageKey<T> for FnKey<F>
where
    T: Serialize,
    F: Fn(&T) -> B + Send + Sync,
    B: AsRef<[u8]>,
{
    fn message(&self, record: &T) -> Result<Message, String> {
        let key = (self.0)(record).as_ref().to_vec();
        Ok((Some(key), serde_json::to_vec(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))?))
    }
}

/// What [`KafkaSink::key`](super::KafkaSink::key) accepts: a field name (`&str`, `String`)
/// or a function of the record. `M` tells the two apart ([`ByField`], [`ByFn`]); it is
/// inferred.
///
/// ```
/// use etl::sink::kafka::IntoKey;
/// fn key_of<M, K: IntoKey<M>>(k: K) -> K::Key { k.into_key() }
/// let by_field = key_of("id");
/// let by_fn = key_of(|n: &i64| n.to_string());
/// ```
pub trait IntoKey<M> {
    /// The [`MessageKey`] it becomes.
    type Key;
    /// Convert.
    fn into_key(self) -> Self::Key;
}

/// [`IntoKey`]'s marker for a field name.
#[derive(Debug)]
pub struct ByField;

/// [`IntoKey`]'s marker for a function of a record of type `T` returning `B`.
#[derive(Debug)]
pub struct ByFn<T, B>(PhantomData<fn(&T) -> B>);

impl IntoKey<ByField> for &str {
    type Key = FieldKey;
    fn into_key(self) -> FieldKey {
        FieldKey::new(self)
    }
}

impl IntoKey<ByField> for String {
    type Key = FieldKey;
    fn into_key(self) -> FieldKey {
        FieldKey::new(self)
    }
}

impl<T, F, B> IntoKey<ByFn<T, B>> for F
where
    F: Fn(&T) -> B + Send + Sync,
    B: AsRef<[u8]>,
{
    type Key = FnKey<F>;
    fn into_key(self) -> FnKey<F> {
        FnKey::new(self)
    }
}

/// A fingerprint of a message value: how a rewrite recognises a record the broker refused
/// as too large (the driver writes the same records again after a failed commit).
pub(crate) fn fingerprint(payload: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}
