//! What the producer, consumer and admin clients share: creating a librdkafka
//! client from settings, remembering its errors, and checking topics exist.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::Settings;
use crate::error::{Error, Result};

/// Client-level errors librdkafka reports outside any call (broker down, auth failed...).
#[derive(Default)]
pub struct ErrorLog {
    last: Mutex<Option<(Instant, RDKafkaErrorCode, String)>>,
}

impl ErrorLog {
    pub fn record(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        *self.last.lock().unwrap() = Some((Instant::now(), code, reason.to_owned()));
    }

    /// The latest error reported at or after `since`.
    pub fn since(&self, since: Instant) -> Option<(RDKafkaErrorCode, String)> {
        self.last
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(at, _, _)| *at >= since)
            .map(|(_, code, reason)| (*code, reason.clone()))
    }
}

/// A client context that keeps errors instead of logging them.
#[derive(Default)]
pub struct Context {
    pub errors: ErrorLog,
}

impl ClientContext for Context {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Context {}

/// Creates any librdkafka client, turning a bad property into a ConfigError.
pub fn create<T, C>(settings: &Settings, context: C) -> Result<T>
where
    T: FromClientConfigAndContext<C>,
    C: ClientContext,
{
    settings.bootstrap_servers()?;
    // librdkafka's message names the property (and value) at fault; the
    // others are listed by name only, so that a secret under a misspelt key
    // is not shown.
    T::from_config_and_context(&settings.client_config(), context).map_err(|e| {
        Error::Config(format!(
            "invalid client config: {} (properties: {})",
            settings.scrub(&e.to_string()),
            settings.iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Partition counts of `topics`, or a clear error if the cluster cannot be
/// reached or a topic does not exist.
pub fn partition_counts<C: ClientContext>(
    client: &Client<C>,
    settings: &Settings,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<usize>> {
    let bootstrap = settings.bootstrap_servers()?.to_owned();
    topics
        .iter()
        .map(|topic| {
            let md = client
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| unreachable(&bootstrap, timeout, &e, settings))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == *topic)
                .ok_or_else(|| unknown_topic(topic, &bootstrap))?;
            match t.error() {
                Some(code) if t.partitions().is_empty() => {
                    let code: RDKafkaErrorCode = code.into();
                    if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        Err(unknown_topic(topic, &bootstrap))
                    } else {
                        Err(Error::kafka_code(format!("topic {topic:?}"), code))
                    }
                }
                _ if t.partitions().is_empty() => Err(unknown_topic(topic, &bootstrap)),
                _ => Ok(t.partitions().len()),
            }
        })
        .collect()
}

pub fn unknown_topic(topic: &str, bootstrap: &str) -> Error {
    Error::Kafka {
        message: format!(
            "topic {topic:?} does not exist on {bootstrap}: create it first, e.g. \
             tskafka.Admin({bootstrap:?}).create_topic({topic:?}, partitions=3)"
        ),
        code: "UnknownTopicOrPartition".into(),
        retriable: false,
        fatal: false,
    }
}

pub fn unreachable(
    bootstrap: &str,
    timeout: Duration,
    err: &KafkaError,
    settings: &Settings,
) -> Error {
    let code = err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
    Error::Kafka {
        message: format!(
            "could not reach the Kafka cluster at {bootstrap} within {:.1}s ({}): \
             check bootstrap_servers, that the broker is running, and the security settings",
            timeout.as_secs_f64(),
            settings.scrub(&err.to_string())
        ),
        code: format!("{code:?}"),
        retriable: true,
        fatal: false,
    }
}

/// The topic's `retention.ms` as the cluster reports it; None when it is not
/// reported, unlimited, or cannot be read (the caller then assumes no limit).
pub fn retention_ms(settings: &Settings, topic: &str, timeout: Duration) -> Option<i64> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<Context> = create(settings, Context::default()).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok()?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let results = runtime
        .block_on(async {
            tokio::time::timeout(
                timeout,
                admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options),
            )
            .await
        })
        .ok()?
        .ok()?;
    let resource = results.into_iter().next()?.ok()?;
    let value = resource.get("retention.ms")?.value.as_deref()?.parse::<i64>().ok()?;
    (value >= 0).then_some(value)
}
