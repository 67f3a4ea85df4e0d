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
    T::from_config_and_context(&settings.client_config(), context).map_err(|e| {
        Error::Config(format!(
            "invalid client config {}: {}",
            settings.redacted(),
            settings.scrub(&e.to_string())
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

/// The topic's `retention.ms` as the cluster reports it; Ok(None) when it is
/// not reported, unlimited, or cannot be read within `timeout` (the caller
/// then assumes no limit). `check` runs every `slice` and can end the wait.
pub fn retention_ms(
    settings: &Settings,
    topic: &str,
    timeout: Duration,
    slice: Duration,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<Option<i64>> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let Ok(admin) = create::<AdminClient<Context>, _>(settings, Context::default()) else {
        return Ok(None);
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return Ok(None);
    };
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let resources = [ResourceSpecifier::Topic(topic)];
    let mut asked = std::pin::pin!(admin.describe_configs(&resources, &options));
    let deadline = std::time::Instant::now() + timeout;
    let results = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let answer =
            runtime.block_on(async { tokio::time::timeout(left.min(slice), &mut asked).await });
        match answer {
            Ok(Ok(results)) => break results,
            Ok(Err(_)) => return Ok(None),
            Err(_) => check()?,
        }
    };
    let Some(Ok(resource)) = results.into_iter().next() else {
        return Ok(None);
    };
    let value = resource
        .get("retention.ms")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse::<i64>().ok());
    Ok(value.filter(|v| *v >= 0))
}
