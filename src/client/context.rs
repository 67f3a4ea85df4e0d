//! The context every tskafka client runs with: it keeps librdkafka's
//! client-level errors (broker down, authentication failed) where a waiting
//! call can find them, and, for a group consumer, starts partitions without a
//! committed offset at once (the rebalance).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings::{self as rd, rd_kafka_resp_err_t as RDKafkaRespErr};
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::settings::Settings;
use crate::error::Error;

/// Client-level errors librdkafka reports outside any call (broker down, auth failed...).
#[derive(Default)]
pub struct ErrorLog {
    last: Mutex<Option<(Instant, RDKafkaErrorCode, String)>>,
    /// The latest authentication, TLS or security-protocol failure, kept
    /// apart so that the "all brokers down" following it does not hide it.
    security: Mutex<Option<(Instant, RDKafkaErrorCode, String)>>,
}

/// librdkafka reports an identical broker failure again only after 30 s;
/// until then a security failure seen earlier still stands.
const SECURITY_FAILURE_STANDS: Duration = Duration::from_secs(30);

/// Whether a client-level error means the settings cannot work (wrong
/// password, untrusted certificate, TLS against plaintext or the reverse),
/// so waiting longer will not help.
pub fn is_security_failure(code: RDKafkaErrorCode, reason: &str) -> bool {
    match code {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL => true,
        RDKafkaErrorCode::BrokerTransportFailure => {
            reason.contains("security.protocol") || reason.contains("PLAINTEXT broker listener")
        }
        _ => false,
    }
}

impl ErrorLog {
    pub fn record(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let entry = Some((Instant::now(), code, reason.to_owned()));
        if is_security_failure(code, reason) {
            *self.security.lock().unwrap() = entry.clone();
        }
        *self.last.lock().unwrap() = entry;
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

    /// A security failure reported at or after `since`, or recently enough
    /// that librdkafka would not have reported it again.
    pub fn security_failure(&self, since: Instant) -> Option<(RDKafkaErrorCode, String)> {
        self.security
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(at, _, _)| *at >= since || at.elapsed() < SECURITY_FAILURE_STANDS)
            .map(|(_, code, reason)| (*code, reason.clone()))
    }

    /// The error to raise when a security failure has been seen since `since`.
    pub fn security_error(&self, since: Instant, settings: &Settings) -> Option<Error> {
        self.security_failure(since)
            .map(|(code, reason)| security_error(settings, code, &reason))
    }
}

/// A clear error for an authentication, TLS or protocol mismatch, naming
/// the settings to check. The reason is scrubbed of secrets.
pub fn security_error(settings: &Settings, code: RDKafkaErrorCode, reason: &str) -> Error {
    let bootstrap = settings.bootstrap_servers().unwrap_or("?");
    let reason = settings.scrub(reason);
    let protocol = settings.get("security.protocol").unwrap_or("PLAINTEXT");
    let message = match code {
        RDKafkaErrorCode::Authentication => format!(
            "SASL authentication failed for {bootstrap}: {reason}: check sasl.username and \
             sasl.password (and sasl.mechanisms, security.protocol={protocol})"
        ),
        RDKafkaErrorCode::SSL => format!(
            "TLS handshake with {bootstrap} failed: {reason}: check ssl.ca.location (the CA \
             that signed the broker's certificate) and that the broker's certificate names \
             the host you connect to"
        ),
        _ => format!(
            "cannot talk to {bootstrap} with security.protocol={protocol}: {reason}: check \
             security.protocol (SSL/SASL_SSL for a TLS listener, PLAINTEXT/SASL_PLAINTEXT \
             otherwise)"
        ),
    };
    Error::Kafka {
        message,
        code: format!("{code:?}"),
        retriable: false,
        fatal: false,
    }
}

/// Hands the client-level errors waiting on `client`'s main queue to its
/// context. For clients nobody else polls (the admin client); a consumer
/// with a group reads its main queue through `poll` instead.
pub fn drain_main_queue(client: &Client<Context>) {
    use std::ffi::CStr;
    // SAFETY: the queue handle and each event are owned here and destroyed
    // once read; librdkafka's queues are thread-safe.
    unsafe {
        let queue = rd::rd_kafka_queue_get_main(client.native_ptr());
        if queue.is_null() {
            return;
        }
        loop {
            let event = rd::rd_kafka_queue_poll(queue, 0);
            if event.is_null() {
                break;
            }
            if rd::rd_kafka_event_type(event) == rd::RD_KAFKA_EVENT_ERROR {
                let err = rd::rd_kafka_event_error(event);
                let reason = rd::rd_kafka_event_error_string(event);
                let reason = if reason.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(reason).to_string_lossy().into_owned()
                };
                client
                    .context()
                    .errors
                    .record(&KafkaError::Global(err.into()), reason.trim());
            }
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
    }
}

/// A client context that keeps errors instead of logging them.
#[derive(Default)]
pub struct Context {
    pub errors: ErrorLog,
    /// Where a group consumer starts a partition that has no committed offset.
    pub offset_reset: Option<Offset>,
}

impl ClientContext for Context {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ConsumerContext for Context {
    /// librdkafka's own assignment, except that partitions without a
    /// committed offset are started at `offset_reset` directly: left to
    /// librdkafka, such a reset waits a fixed 100 ms before its ListOffsets
    /// (`rdkafka_offset.c`), most of the time to a consumer's first row.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let client = consumer.client().native_client();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        // SAFETY: the client and list pointers are live for this callback.
        unsafe {
            match err {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                    if let Some(reset) = self.offset_reset {
                        start_uncommitted_at(consumer, tpl, reset);
                    }
                    if cooperative {
                        rd::rd_kafka_incremental_assign(client.ptr(), tpl.ptr());
                    } else {
                        rd::rd_kafka_assign(client.ptr(), tpl.ptr());
                    }
                }
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if cooperative => {
                    rd::rd_kafka_incremental_unassign(client.ptr(), tpl.ptr());
                }
                _ => {
                    if cooperative {
                        rd::rd_kafka_incremental_unassign(client.ptr(), tpl.ptr());
                    } else {
                        rd::rd_kafka_assign(client.ptr(), std::ptr::null());
                    }
                }
            }
        }
    }
}

/// Starts the partitions of `tpl` that have no committed offset at `reset`,
/// resolved to an offset: left logical, librdkafka resolves each partition
/// on its own and fetches the first one resolved alone, an empty fetch that
/// waits out fetch.wait.max.ms when that partition is empty. Left unchanged
/// if the committed offsets cannot be read within a second: librdkafka then
/// reads them itself.
fn start_uncommitted_at(
    consumer: &BaseConsumer<Context>,
    tpl: &mut TopicPartitionList,
    reset: Offset,
) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let Ok(committed) = consumer.committed_offsets(tpl.clone(), Duration::from_secs(1)) else {
        return;
    };
    let mut uncommitted = TopicPartitionList::new();
    for e in committed.elements() {
        let mine = tpl.find_partition(e.topic(), e.partition());
        if e.error().is_ok()
            && e.offset() == Offset::Invalid
            && mine.is_some_and(|m| m.offset() == Offset::Invalid)
        {
            // A ListOffsets "timestamp" of -2 / -1 asks for the earliest / latest.
            let _ = uncommitted.add_partition_offset(e.topic(), e.partition(), reset);
        }
    }
    let resolved = consumer
        .offsets_for_times(
            uncommitted.clone(),
            deadline.saturating_duration_since(Instant::now()),
        )
        .unwrap_or(uncommitted);
    for e in resolved.elements() {
        let offset = match e.offset() {
            Offset::Offset(n) if e.error().is_ok() && n >= 0 => Offset::Offset(n),
            _ => reset,
        };
        if let Some(mut mine) = tpl.find_partition(e.topic(), e.partition()) {
            let _ = mine.set_offset(offset);
        }
    }
}
