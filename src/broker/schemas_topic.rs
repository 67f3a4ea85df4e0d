//! The embedded Schema Registry's place in the broker: its records in the
//! `_schemas` topic (as Confluent's registry keeps them, so a file-backed
//! broker keeps its schemas), and its HTTP listener on the broker's threads.

use std::net::TcpListener;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::routes::Broker;
use super::sasl::Users;
use super::storage::Topic;
use crate::error::{Error, Result};
use crate::registry::{self, Registry, SchemaLog};

pub const TOPIC: &str = "_schemas";

struct SchemasTopic(Arc<Broker>);

impl SchemasTopic {
    /// The topic, made (one partition, kept forever) when missing.
    fn topic(&self) -> std::result::Result<Arc<Topic>, String> {
        let storage = &self.0.storage;
        if let Some(topic) = storage.topic(TOPIC) {
            return Ok(topic);
        }
        let configs = vec![
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("retention.ms".to_owned(), "-1".to_owned()),
        ];
        storage
            .create_topic(TOPIC, 1, configs, false)
            .or_else(|e| storage.topic(TOPIC).ok_or(e.message))
    }
}

impl SchemaLog for SchemasTopic {
    fn append(&self, key: &[u8], value: Option<&[u8]>) -> std::result::Result<(), String> {
        let topic = self.topic()?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        };
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            [&record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| format!("cannot encode a {TOPIC} record: {e}"))?;
        self.0
            .storage
            .produce(&topic, 0, &batch)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    fn read_all(&self) -> std::result::Result<Vec<registry::LogRecord>, String> {
        let topic = self.topic()?;
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let fetched = match self.0.storage.read(&topic, 0, offset, 1 << 20, true) {
                Ok(fetched) => fetched,
                // Records deleted from the front (DeleteRecords): start after them.
                Err((_, _, log_start)) if log_start > offset => {
                    offset = log_start;
                    continue;
                }
                Err((e, _, _)) => return Err(format!("cannot read {TOPIC}: {e:?}")),
            };
            offset = offset.max(fetched.log_start);
            if offset >= fetched.high_watermark || fetched.batches.is_empty() {
                return Ok(records);
            }
            for mut batch in fetched.batches {
                let set = RecordBatchDecoder::decode(&mut batch)
                    .map_err(|e| format!("cannot decode a {TOPIC} batch: {e}"))?;
                for r in set.records {
                    if r.offset >= offset && !r.control {
                        records.push((
                            r.key.map(|k| k.to_vec()).unwrap_or_default(),
                            r.value.map(|v| v.to_vec()),
                        ));
                    }
                    offset = offset.max(r.offset + 1);
                }
            }
        }
    }
}

/// Loads the registry from `_schemas` and serves it on 127.0.0.1:`port`
/// (any free port when None); its URL.
pub fn start_registry(
    runtime: &tokio::runtime::Runtime,
    broker: Arc<Broker>,
    port: Option<u16>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: Option<Arc<Users>>,
) -> Result<String> {
    let registry = Registry::open(Arc::new(SchemasTopic(broker)))
        .map_err(|e| Error::Broker(format!("cannot load the schema registry: {e}")))?;
    let socket = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).map_err(|e| {
        Error::Broker(format!(
            "schema registry port {} is not free on 127.0.0.1 ({e}): pick another, or None \
             for any free one",
            port.unwrap_or(0)
        ))
    })?;
    let bound = socket
        .local_addr()
        .map_err(|e| Error::Broker(e.to_string()))?
        .port();
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::Broker(e.to_string()))?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(socket)
            .map_err(|e| Error::Broker(format!("cannot listen on port {bound}: {e}")))?
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The same users as SASL/PLAIN, checked the same constant-time way.
    let credentials = users.map(|users| -> registry::CheckCredentials {
        Arc::new(move |user: &str, password: &str| {
            let plain = format!("\0{user}\0{password}");
            users.check_plain(plain.as_bytes()).is_some()
        })
    });
    runtime.spawn(registry::serve(
        listener,
        Arc::new(registry),
        tls,
        credentials,
    ));
    Ok(format!("{scheme}://127.0.0.1:{bound}"))
}
