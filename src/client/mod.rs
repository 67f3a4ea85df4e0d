//! The Kafka clients: librdkafka underneath, frames on top.
//!
//! - [`settings`]: librdkafka's dotted properties, tskafka's defaults under
//!   them, secrets kept out of every message; config.ini files.
//! - [`context`]: what every client runs with: its errors kept for the call
//!   that waits, and a consumer group's rebalance.
//! - [`producer`]: frames encoded into messages, queued in batches; delivery
//!   reports counted per send ([`producer::Tally`]) and reported as a
//!   `SendReport` or a `ProduceError`.
//! - [`consumer`]: messages decoded into frames; the positions of the rows
//!   handed out (what auto-commit and `commit()` commit); seek; a close that
//!   never blocks its caller for long. [`consumer::background`] reads on a
//!   native thread into a buffer and/or a callback.
//! - [`scan`]: a snapshot of a topic read as a table: offset ranges from
//!   watermarks and time lookups, partitions read in parallel, fetch statistics.
//!   [`fetch`]: the Kafka requests a scan sends itself when it can (plaintext),
//!   reading fetched batches in place rather than message by message.
//! - [`admin`]: topics created, deleted, listed and described.
//! - [`mock_cluster`]: librdkafka's in-process mock cluster, for fault tests.
//!
//! Here: creating a client from settings, and the metadata questions every
//! client asks (can the cluster be reached, does the topic exist, how many
//! partitions, what retention). Every call that waits takes a `check` (see
//! [`crate::wait`]) and runs it at least every slice.

pub mod admin;
pub mod consumer;
pub mod context;
pub mod fetch;
pub mod mock_cluster;
pub mod producer;
pub mod registry;
pub mod scan;
pub mod settings;

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

pub use context::Context;
pub use settings::Settings;

use crate::error::{Error, Result};
use crate::wait::Check;

/// Creates any librdkafka client, turning a bad property into a ConfigError.
pub fn create<T, C>(settings: &Settings, context: C) -> Result<T>
where
    T: FromClientConfigAndContext<C>,
    C: ClientContext,
{
    settings.bootstrap_servers()?;
    let mut settings = settings.clone();
    // A client reaches the brokers named in the cluster's metadata only
    // reconnect.backoff.ms / 2 after its bootstrap connection: librdkafka's
    // 100 ms default added 50 ms to every new client's first request.
    if settings.get("reconnect.backoff.max.ms").is_none() {
        settings.default("reconnect.backoff.ms", "20");
    }
    // With sparse connections (the default) that wait is at least 11 ms;
    // against this process's embedded broker, a cluster of one, they spare
    // no connection.
    if crate::in_process::serves_every(settings.bootstrap_servers()?) {
        settings.default("enable.sparse.connections", "false");
    }
    // librdkafka's message names the property (and value) at fault; the
    // others are listed by name only, so that a secret under a misspelt key
    // is not shown.
    T::from_config_and_context(&settings.client_config(), context).map_err(|e| {
        Error::Config(format!(
            "invalid client config: {} (properties: {})",
            settings.scrub(&e.to_string()),
            settings
                .iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Cluster metadata for `topic` (every topic if None). The wait runs in
/// growing slices so that a security failure (wrong password, untrusted
/// certificate) ends it at once instead of after `timeout`; `pump` serves
/// the client's events between slices so those failures are seen (a
/// producer's own thread already does).
pub fn fetch_metadata(
    client: &Client<Context>,
    settings: &Settings,
    topic: Option<&str>,
    timeout: Duration,
    pump: Check<'_>,
) -> Result<Metadata> {
    let bootstrap = settings.bootstrap_servers()?.to_owned();
    let started = Instant::now();
    let deadline = started + timeout;
    // Short slices keep Ctrl+C prompt while no broker answers; they grow, for
    // a distant cluster that answers slowly, only while librdkafka reports no error.
    let short = crate::wait::SLICE;
    let mut slice = short;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let call = Instant::now();
        let result = client.fetch_metadata(topic, slice.min(left).max(Duration::from_millis(1)));
        if result.is_err() && call.elapsed() < Duration::from_millis(20) {
            // Failed without waiting: do not spin.
            std::thread::sleep(Duration::from_millis(50));
        }
        pump()?;
        if let Some(e) = client.context().errors.security_error(started, settings) {
            return Err(e);
        }
        match result {
            Ok(md) => return Ok(md),
            Err(e) if Instant::now() >= deadline => {
                return Err(unreachable(&bootstrap, timeout, &e, settings))
            }
            Err(_) if client.context().errors.since(started).is_some() => slice = short,
            Err(_) => slice = (slice * 2).min(Duration::from_secs(2)),
        }
    }
}

/// Partition counts of `topics`, or a clear error if the cluster cannot be
/// reached or a topic does not exist; `pump` as for [`fetch_metadata`].
pub fn partition_counts(
    client: &Client<Context>,
    settings: &Settings,
    topics: &[&str],
    timeout: Duration,
    pump: Check<'_>,
) -> Result<Vec<usize>> {
    let bootstrap = settings.bootstrap_servers()?.to_owned();
    topics
        .iter()
        .map(|topic| {
            let md = fetch_metadata(client, settings, Some(topic), timeout, pump)?;
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
/// then assumes no limit). `check` runs between slices and can end the wait.
pub fn retention_ms(
    settings: &Settings,
    topic: &str,
    timeout: Duration,
    check: Check<'_>,
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
    let answered = crate::wait::until(Some(Instant::now() + timeout), check, |slice| {
        let answer = runtime.block_on(async { tokio::time::timeout(slice, &mut asked).await });
        Ok(answer.ok())
    })?;
    let Some(Ok(results)) = answered else {
        return Ok(None);
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
