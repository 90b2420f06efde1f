//! Pure helpers of the RabbitMQ sink: how a record becomes a message (its routing key and
//! its JSON body). No I/O.

use serde::Serialize;
use std::marker::PhantomData;

/// What a record becomes: the routing key and the JSON body.
pub type Message = (String, Vec<u8>);

/// AMQP's longest routing key, in bytes.
pub const MAX_ROUTING_KEY_BYTES: usize = 255;

/// How the sink routes a record: a fixed routing key ([`FixedKey`]) or one computed from the
/// record ([`FnKey`]); [`RabbitmqSink::routing_key`](super::RabbitmqSink::routing_key) picks
/// one.
///
/// ```
/// use etl::sink::rabbitmq::{FixedKey, RoutingKey};
/// let (key, body) = FixedKey::new("orders").message(&serde_json::json!({"id": 7})).unwrap();
/// assert_eq!((key.as_str(), body.as_slice()), ("orders", &br#"{"id":7}"#[..]));
/// ```
pub trait RoutingKey<T>: Send + Sync {
    /// Resolve what can be resolved once, when the sink opens (`${VAR}` in a fixed key).
    fn resolve(&mut self) -> Result<(), crate::ConfigError> {
        Ok(())
    }

    /// The message for `record`, or why it cannot be published (it is dead-lettered).
    fn message(&self, record: &T) -> Result<Message, String>;

    /// The key for logs and `describe` (a fixed key's text, `|record| ..` for a function).
    fn describe(&self) -> String;
}

fn body<T: Serialize>(record: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))
}

fn checked(key: String) -> Result<String, String> {
    if key.len() > MAX_ROUTING_KEY_BYTES {
        return Err(format!("the routing key is {} bytes long, more than AMQP's {MAX_ROUTING_KEY_BYTES}", key.len()));
    }
    Ok(key)
}

/// Every message gets the same routing key (`${VAR}` resolved when the sink opens). With the
/// default exchange, the key is the name of the queue to deliver to.
///
/// ```
/// use etl::sink::rabbitmq::{FixedKey, RoutingKey};
/// assert_eq!(RoutingKey::<serde_json::Value>::describe(&FixedKey::new("orders")), "orders");
/// ```
#[derive(Debug, Clone)]
pub struct FixedKey {
    template: String,
    resolved: Option<String>,
}

impl FixedKey {
    /// The key `key` (a template: `${VAR}` resolved at open).
    pub fn new(key: impl Into<String>) -> FixedKey {
        FixedKey { template: key.into(), resolved: None }
    }
}

impl<T: Serialize> RoutingKey<T> for FixedKey {
    fn resolve(&mut self) -> Result<(), crate::ConfigError> {
        self.resolved = Some(crate::config::interpolate(&self.template)?);
        Ok(())
    }

    fn message(&self, record: &T) -> Result<Message, String> {
        let key = match &self.resolved {
            Some(key) => key.clone(),
            None => crate::config::interpolate(&self.template).map_err(|e| e.to_string())?,
        };
        Ok((checked(key)?, body(record)?))
    }

    fn describe(&self) -> String {
        crate::config::display(&self.template)
    }
}

/// The routing key is what a function of the record returns.
///
/// ```
/// use etl::sink::rabbitmq::{FnKey, RoutingKey};
/// let key = FnKey::new(|n: &i64| format!("n.{n}"));
/// assert_eq!(key.message(&3).unwrap(), ("n.3".to_string(), b"3".to_vec()));
/// ```
pub struct FnKey<F>(F);

impl<F> FnKey<F> {
    /// Route by `f(record)`.
    pub fn new(f: F) -> FnKey<F> {
        FnKey(f)
    }
}

impl<F> std::fmt::Debug for FnKey<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnKey(..)")
    }
}

impl<T, F, B> RoutingKey<T> for FnKey<F>
where
    T: Serialize,
    F: Fn(&T) -> B + Send + Sync,
    B: Into<String>,
{
    fn message(&self, record: &T) -> Result<Message, String> {
        Ok((checked((self.0)(record).into())?, body(record)?))
    }

    fn describe(&self) -> String {
        "|record| ..".into()
    }
}

/// What [`RabbitmqSink::routing_key`](super::RabbitmqSink::routing_key) accepts: a fixed key
/// (`&str`, `String`) or a function of the record returning a string. `M` tells the two
/// apart ([`Fixed`], [`ByFn`]); it is inferred.
///
/// ```
/// use etl::sink::rabbitmq::IntoRoutingKey;
/// fn key_of<M, K: IntoRoutingKey<M>>(k: K) -> K::Key { k.into_key() }
/// let fixed = key_of("orders");
/// let by_fn = key_of(|n: &i64| n.to_string());
/// ```
pub trait IntoRoutingKey<M> {
    /// The [`RoutingKey`] it becomes.
    type Key;
    /// Convert.
    fn into_key(self) -> Self::Key;
}

/// [`IntoRoutingKey`]'s marker for a fixed key.
#[derive(Debug)]
pub struct Fixed;

/// [`IntoRoutingKey`]'s marker for a function of a record of type `T` returning `B`.
#[derive(Debug)]
pub struct ByFn<T, B>(PhantomData<fn(&T) -> B>);

impl IntoRoutingKey<Fixed> for &str {
    type Key = FixedKey;
    fn into_key(self) -> FixedKey {
        FixedKey::new(self)
    }
}

impl IntoRoutingKey<Fixed> for String {
    type Key = FixedKey;
    fn into_key(self) -> FixedKey {
        FixedKey::new(self)
    }
}

impl<T, F, B> IntoRoutingKey<ByFn<T, B>> for F
where
    F: Fn(&T) -> B + Send + Sync,
    B: Into<String>,
{
    type Key = FnKey<F>;
    fn into_key(self) -> FnKey<F> {
        FnKey::new(self)
    }
}
