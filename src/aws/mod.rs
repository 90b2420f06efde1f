//! What the AWS connectors (`sqs`, `s3`) share: the client configuration (region, a custom
//! endpoint, credentials from the standard chain, the HTTPS client), loaded once per pipeline
//! run for each distinct set of options ([`Resources`]) so that a source and a sink resolve
//! credentials once and share one connection pool; and the mapping of SDK errors to [`ConnectorError`]s with the
//! right [`Retry`] class. What the SQS source and sink share lives in [`sqs`].
//!
//! Credentials and region come from the SDK's standard chain (`AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and `~/.aws/config`, web identity, container and
//! instance metadata), so no secret passes through etl's options. An explicit `region` option
//! wins over the chain; with a custom endpoint (moto, MinIO, LocalStack) and no region anywhere,
//! `us-east-1` is used since such servers ignore it.
//!
//! Retries: the SDK's own "standard" retry is kept, with its default of 3 attempts, because the
//! source's calls (receive, delete, change visibility) have no pipeline retry around them and the
//! SDK's retry knows each service's throttling codes. Sinks are also retried by the pipeline's
//! [`RetryPolicy`](crate::retry::RetryPolicy); a failing write can thus be attempted up to
//! 3 × (1 + `max_retries`) times, each SDK attempt with a short backoff.

#[cfg(feature = "sqs")]
pub(crate) mod sqs;

use crate::config::{interpolate, ConfigError};
use crate::error::{ConnectorError, Retry};
use crate::resources::Resources;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::time::Duration;

#[cfg(all(feature = "s3", not(feature = "sqs")))]
use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};
#[cfg(feature = "sqs")]
use aws_sdk_sqs::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};

/// Longest wait for a TCP (and TLS) connection to an AWS endpoint. There is no read timeout:
/// a long poll lasts up to 20 s and an upload as long as it takes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The region used with a custom endpoint when none is configured anywhere.
const ENDPOINT_DEFAULT_REGION: &str = "us-east-1";

/// The options every AWS connector takes; `${VAR}` is resolved at open.
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsOptions {
    /// The region; default: the standard chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// A custom endpoint (`http://127.0.0.1:5000` for moto); default: AWS's own, or
    /// `AWS_ENDPOINT_URL` when set.
    pub endpoint_url: Option<String>,
}

/// The loaded configuration, and whether requests go to a custom endpoint.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub config: SdkConfig,
    /// A custom endpoint is in use (an option or `AWS_ENDPOINT_URL`): S3 uses path-style
    /// addressing (`http://host/bucket/key`), which moto and MinIO need.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    pub custom_endpoint: bool,
}

/// Resolve the options and load the SDK configuration from the standard chain, once per run
/// (`resources`) for each resolved `(region, endpoint)`: the connectors of a run with the same
/// options share the credentials provider (and its cache) and the HTTPS client's connection
/// pool.
pub(crate) async fn load(options: &AwsOptions, resources: &Resources) -> Result<Loaded, ConfigError> {
    let region = options.region.as_deref().map(interpolate).transpose()?.filter(|r| !r.is_empty());
    let endpoint = options.endpoint_url.as_deref().map(interpolate).transpose()?.filter(|e| !e.is_empty());
    let key = format!("aws region={region:?} endpoint={endpoint:?}");
    resources.get_or_try_init(&key, || load_uncached(region, endpoint)).await
}

async fn load_uncached(region: Option<String>, endpoint: Option<String>) -> Result<Loaded, ConfigError> {
    if let Some(url) = &endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid { option: "endpoint_url", message: format!("`{url}` is not an http:// or https:// URL") });
        }
    }
    // rustls with ring: the TLS stack reqwest already brings, rather than the SDK's default
    // aws-lc-rs (a C build) or its legacy hyper 0.14 client.
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).build());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let custom_endpoint = config.endpoint_url().is_some();
    let config = match (config.region().is_some(), custom_endpoint) {
        (true, _) => config,
        (false, true) => config.into_builder().region(Region::new(ENDPOINT_DEFAULT_REGION)).build(),
        (false, false) => {
            return Err(ConfigError::Invalid {
                option: "region",
                message: "no AWS region configured: set AWS_REGION, a region in the AWS profile, or the `region` option".into(),
            })
        }
    };
    Ok(Loaded { config, custom_endpoint })
}

/// Error codes that mean "slow down" or "try again": retryable whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMS.ThrottlingException",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Whether a service's answer is worth retrying: throttling and transient codes, 5xx, 408 and
/// 429 are; any other answer (access denied, no such bucket or queue, invalid request) is not.
pub(crate) fn classify_answer(status: Option<u16>, code: Option<&str>) -> Retry {
    if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return Retry::Retryable;
    }
    match status {
        Some(408 | 429 | 500..=599) => Retry::Retryable,
        Some(_) => Retry::Permanent,
        // No status: the answer could not even be read.
        None => Retry::Retryable,
    }
}

/// Whether a failed SDK call is worth retrying.
pub(crate) fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Retry {
    match error {
        // Built wrong (an invalid option): the same call fails the same way.
        SdkError::ConstructionFailure(_) => Retry::Permanent,
        SdkError::DispatchFailure(failure) if failure.is_user() => Retry::Permanent,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Retry::Retryable,
        SdkError::ServiceError(service) => classify_answer(Some(service.raw().status().as_u16()), service.err().code()),
        _ => Retry::Retryable,
    }
}

/// The error code of a service's answer (`NoSuchBucket`, `InvalidParameterValue`), if any.
#[cfg_attr(not(feature = "sqs"), allow(dead_code))]
pub(crate) fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// A failed SDK call as a [`ConnectorError`] of `component`: what was called, the SDK's whole
/// error chain (the service's code and message), and whether a retry can help.
pub(crate) fn connector_error<E>(component: impl Into<String>, call: &str, error: &SdkError<E, HttpResponse>) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("{call} failed: {}", DisplayErrorContext(error));
    match classify(error) {
        Retry::Retryable => ConnectorError::retryable(component.into(), message),
        Retry::Permanent => ConnectorError::permanent(component.into(), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        assert_eq!(classify_answer(Some(503), Some("SlowDown")), Retry::Retryable);
        assert_eq!(classify_answer(Some(400), Some("ThrottlingException")), Retry::Retryable);
        assert_eq!(classify_answer(Some(400), Some("RequestTimeout")), Retry::Retryable);
        assert_eq!(classify_answer(Some(500), None), Retry::Retryable);
        assert_eq!(classify_answer(Some(429), None), Retry::Retryable);
        assert_eq!(classify_answer(None, None), Retry::Retryable);
    }

    #[test]
    fn refusals_are_permanent() {
        assert_eq!(classify_answer(Some(403), Some("AccessDenied")), Retry::Permanent);
        assert_eq!(classify_answer(Some(404), Some("NoSuchBucket")), Retry::Permanent);
        assert_eq!(classify_answer(Some(400), Some("AWS.SimpleQueueService.NonExistentQueue")), Retry::Permanent);
        assert_eq!(classify_answer(Some(400), Some("InvalidParameterValue")), Retry::Permanent);
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_refused() {
        let options = AwsOptions { region: None, endpoint_url: Some("ftp://x".into()) };
        let Err(e) = load(&options, &Resources::default()).await else { panic!("ftp:// accepted") };
        assert!(e.to_string().contains("endpoint_url"), "{e}");
    }

    #[tokio::test]
    async fn an_explicit_region_wins_over_the_chain() {
        let options = AwsOptions { region: Some("eu-west-3".into()), endpoint_url: Some("http://127.0.0.1:1".into()) };
        let loaded = load(&options, &Resources::default()).await.unwrap();
        assert!(loaded.custom_endpoint);
        assert_eq!(loaded.config.region().map(|r| r.as_ref()), Some("eu-west-3"));
    }

    /// Set in the child process of [`without_a_region_anywhere`]: the region the child's
    /// environment holds (`-` for none), and what `load` must make of each case.
    const CHILD: &str = "ETL_AWS_TEST_CHILD_REGION";

    /// Runs `load` in a child process (this test binary, filtered to this test) whose
    /// environment holds no AWS region, profile, config file or instance metadata, and no
    /// endpoint: the only sound way to know the standard chain finds no region, since this
    /// process's environment is shared with the other tests (and `std::env::set_var` is not
    /// safe while they run). The child also checks that `AWS_REGION` is honoured when set.
    #[tokio::test]
    async fn a_custom_endpoint_needs_no_region_and_no_endpoint_needs_one() {
        if let Ok(region) = std::env::var(CHILD) {
            return child_checks(&region).await;
        }
        for region in ["-", "ap-south-1"] {
            let home = std::env::temp_dir().join(format!("etl-aws-test-home-{}", std::process::id()));
            std::fs::create_dir_all(&home).unwrap();
            let mut command = std::process::Command::new(std::env::current_exe().unwrap());
            command.args(["--exact", "aws::tests::a_custom_endpoint_needs_no_region_and_no_endpoint_needs_one", "--nocapture"]);
            for var in [
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE",
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_SQS",
                "AWS_ENDPOINT_URL_S3",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN",
            ] {
                command.env_remove(var);
            }
            command
                .env("HOME", &home)
                .env("AWS_CONFIG_FILE", home.join("no-config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env(CHILD, region);
            if region != "-" {
                command.env("AWS_REGION", region);
            }
            let out = command.output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "child with region {region}: {text}");
            assert!(text.contains("1 passed"), "the child ran the checks (region {region}): {text}");
            std::fs::remove_dir_all(&home).ok();
        }
    }

    async fn child_checks(region: &str) {
        let with_endpoint = AwsOptions { region: None, endpoint_url: Some("http://127.0.0.1:1".into()) };
        let loaded = load(&with_endpoint, &Resources::default()).await.unwrap();
        assert!(loaded.custom_endpoint);
        let without = AwsOptions::default();
        if region == "-" {
            // Nothing anywhere: the endpoint's default; and without an endpoint, an error.
            assert_eq!(loaded.config.region().map(|r| r.as_ref()), Some(ENDPOINT_DEFAULT_REGION));
            let Err(e) = load(&without, &Resources::default()).await else { panic!("a configuration without any region was accepted") };
            assert!(e.to_string().contains("no AWS region configured"), "{e}");
        } else {
            // The chain's region is used, with or without an endpoint.
            assert_eq!(loaded.config.region().map(|r| r.as_ref()), Some(region));
            let Ok(plain) = load(&without, &Resources::default()).await else { panic!("AWS_REGION={region} not found") };
            assert!(!plain.custom_endpoint);
            assert_eq!(plain.config.region().map(|r| r.as_ref()), Some(region));
        }
    }
}
