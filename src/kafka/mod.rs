//! What the Kafka source and sink share: the client options (brokers, security, extra
//! librdkafka properties) resolved into an `rdkafka::ClientConfig`, librdkafka's log lines
//! forwarded to `tracing`, and the classes of librdkafka's errors (may a retry help?).

use crate::config::{interpolate, ConfigError, Secret};
use crate::error::ConnectorError;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

/// The default bootstrap brokers of the Kafka source and sink: `KAFKA_BROKERS`, or
/// `localhost:9092` when it is unset (resolved when the connector opens).
///
/// ```
/// assert_eq!(etl::source::kafka::DEFAULT_BROKERS, "${KAFKA_BROKERS:-localhost:9092}");
/// ```
pub const DEFAULT_BROKERS: &str = "${KAFKA_BROKERS:-localhost:9092}";

/// A password for a Kafka connector: a `&str`, a `String` (both may hold `${VAR}`) or a
/// [`Secret`].
///
/// ```
/// use etl::source::kafka::IntoSecret;
/// assert_eq!("${PASSWORD}".into_secret().expose(), "${PASSWORD}");
/// assert_eq!(format!("{:?}", etl::config::Secret::new("x").into_secret()), "Secret(***)");
/// ```
pub trait IntoSecret {
    /// The value as a [`Secret`].
    fn into_secret(self) -> Secret;
}

impl IntoSecret for Secret {
    fn into_secret(self) -> Secret {
        self
    }
}

impl IntoSecret for &str {
    fn into_secret(self) -> Secret {
        Secret::new(self)
    }
}

impl IntoSecret for String {
    fn into_secret(self) -> Secret {
        Secret::new(self)
    }
}

/// Options of a librdkafka client that the source and the sink take alike.
#[derive(Clone)]
pub(crate) struct ClientOptions {
    pub brokers: String,
    pub security_protocol: Option<String>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub ssl_ca_location: Option<String>,
    /// librdkafka properties set last (they override the connector's own settings).
    pub properties: Vec<(String, String)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            brokers: DEFAULT_BROKERS.to_owned(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            properties: Vec::new(),
        }
    }
}

/// The builder methods of the client options, for the source and the sink alike (inherent
/// methods, so that neither a user nor `pipeline!` needs a trait in scope). `$ctor` is a
/// constructor expression for the doc examples.
macro_rules! client_option_methods {
    ($ctor:literal) => {
        /// The bootstrap brokers, `host:port[,host:port...]` (`${VAR}` resolved when the
        /// connector opens). Default [`DEFAULT_BROKERS`]: `KAFKA_BROKERS`, else `localhost:9092`.
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".brokers(\"kafka-1:9092,kafka-2:9092\");\n```")]
        pub fn brokers(mut self, brokers: impl Into<String>) -> Self {
            self.client.brokers = brokers.into();
            self
        }

        /// librdkafka's `security.protocol`: `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
        /// Default: librdkafka's (`plaintext`). See "Security" in the
        /// [source's docs](crate::source::kafka).
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".security_protocol(\"sasl_plaintext\");\n```")]
        pub fn security_protocol(mut self, protocol: impl Into<String>) -> Self {
            self.client.security_protocol = Some(protocol.into());
            self
        }

        /// The SASL mechanism (librdkafka's `sasl.mechanisms`): `PLAIN`, `SCRAM-SHA-256`, ...
        /// Default: librdkafka's (`GSSAPI`).
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".sasl_mechanism(\"PLAIN\");\n```")]
        pub fn sasl_mechanism(mut self, mechanism: impl Into<String>) -> Self {
            self.client.sasl_mechanism = Some(mechanism.into());
            self
        }

        /// The SASL user name (`${VAR}` resolved when the connector opens). Default: none.
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".sasl_username(\"${KAFKA_USER}\");\n```")]
        pub fn sasl_username(mut self, username: impl Into<String>) -> Self {
            self.client.sasl_username = Some(username.into());
            self
        }

        /// The SASL password (`${VAR}` resolved when the connector opens); never logged nor
        /// shown by `Debug`. Default: none.
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".sasl_password(\"${KAFKA_PASSWORD}\");\nassert!(!format!(\"{step:?}\").contains(\"KAFKA_PASSWORD\"));\n```")]
        pub fn sasl_password(mut self, password: impl $crate::kafka::IntoSecret) -> Self {
            self.client.sasl_password = Some($crate::kafka::IntoSecret::into_secret(password));
            self
        }

        /// The CA certificate file to verify the brokers with (librdkafka's
        /// `ssl.ca.location`). Default: none (the system's).
        ///
        #[doc = concat!("```\nlet step = ", $ctor, ".ssl_ca_location(\"/etc/kafka/ca.pem\");\n```")]
        pub fn ssl_ca_location(mut self, path: impl Into<String>) -> Self {
            self.client.ssl_ca_location = Some(path.into());
            self
        }
    };
}
pub(crate) use client_option_methods;

/// Whether a librdkafka property holds a secret (its value is never printed).
pub(crate) fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.ends_with(".key") || key.contains("token")
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<(&str, &str)> =
            self.properties.iter().map(|(k, v)| (k.as_str(), if is_secret_property(k) { "***" } else { v.as_str() })).collect();
        f.debug_struct("ClientOptions")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("properties", &properties)
            .finish()
    }
}

impl ClientOptions {
    /// The client configuration: `base` (the connector's own settings) and then these options,
    /// every value's `${VAR}` resolved. The properties come last and win.
    pub(crate) fn config(&self, base: &[(&str, String)]) -> Result<ClientConfig, ConfigError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", interpolate(&self.brokers)?);
        config.set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in base {
            config.set(*key, value.as_str());
        }
        let optional = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanisms", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, interpolate(value)?);
            }
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", Secret::resolve(password.expose())?.expose());
        }
        for (key, value) in &self.properties {
            config.set(key.as_str(), interpolate(value)?);
        }
        Ok(config)
    }
}

/// The librdkafka error code of `error`, if it has one.
pub(crate) fn error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// Whether a retry cannot help: bad configuration, refused credentials or authorisation,
/// a fatal error of the client, a message the broker will never take.
pub(crate) fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error {
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_)
        | KafkaError::Nul(_)
        | KafkaError::MessageConsumptionFatal(_) => true,
        _ => matches!(
            error_code(error),
            Some(
                C::Fatal
                    | C::InvalidArgument
                    | C::Authentication
                    | C::SaslAuthenticationFailed
                    | C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::TransactionalIdAuthorizationFailed
                    | C::UnsupportedFeature
                    | C::UnsupportedVersion
                    | C::InvalidConfig
                    | C::InvalidRecord
                    | C::InvalidTopic
                    | C::MessageSizeTooLarge
            )
        ),
    }
}

/// A connector error of `component` from librdkafka's `error` while doing `what`.
pub(crate) fn connector_error(component: &str, what: &str, error: &KafkaError) -> ConnectorError {
    let message = format!("{what}: {error}");
    if is_permanent(error) {
        ConnectorError::permanent(component.to_owned(), message)
    } else {
        ConnectorError::retryable(component.to_owned(), message)
    }
}

/// librdkafka's log lines, as `tracing` events of target `librdkafka`.
pub(crate) fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    use RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => tracing::error!(target: "librdkafka", facility, "{message}"),
        L::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let options = ClientOptions {
            sasl_password: Some(Secret::new("hunter2")),
            properties: vec![("ssl.key.password".into(), "s3cret".into()), ("linger.ms".into(), "5".into())],
            ..ClientOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("linger.ms") && shown.contains('5'), "{shown}");
    }

    #[test]
    fn properties_win_and_variables_resolve() {
        let options = ClientOptions {
            brokers: "${ETL_KAFKA_TEST_SURELY_UNSET:-broker:9092}".into(),
            properties: vec![("client.id".into(), "mine".into())],
            ..ClientOptions::default()
        };
        let config = options.config(&[("client.id", "etl".into())]).unwrap();
        assert_eq!(config.get("bootstrap.servers"), Some("broker:9092"));
        assert_eq!(config.get("client.id"), Some("mine"));
        let unset = ClientOptions { brokers: "${ETL_KAFKA_TEST_SURELY_UNSET}".into(), ..ClientOptions::default() };
        assert!(matches!(unset.config(&[]), Err(ConfigError::UnsetVariable { .. })));
    }

    #[test]
    fn errors_are_classed() {
        assert!(is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(is_permanent(&KafkaError::ClientCreation("bad".into())));
        assert!(!is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)));
        assert!(!is_permanent(&KafkaError::ConsumerCommit(RDKafkaErrorCode::RequestTimedOut)));
        let e = connector_error("kafka sink t", "delivery", &KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(e.is_retryable());
        assert!(e.to_string().starts_with("kafka sink t: delivery"), "{e}");
    }
}
