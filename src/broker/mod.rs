//! The embedded broker: a Kafka-compatible broker inside this process, on
//! 127.0.0.1, for notebooks, tests and one machine. This file is its whole
//! public surface.
//!
//! Layers, outside in: `listener` (the socket, TLS, a task per connection),
//! `wire` (Kafka framing), `sasl` (the PLAIN gate), `routes` (one handler
//! per API), over `storage` (topics, partition logs, configs, committed
//! offsets, ACLs; in memory, or journalled to a file) and `groups` (the
//! consumer group coordinator). The Kafka protocol's messages are the
//! `kafka-protocol` crate's; tskafka answers every request itself, here (no
//! other broker, Tansu or Nisshi, runs inside). Topics are auto-created as
//! Kafka's `auto.create.topics.enable` does, unless turned off.

mod groups;
mod listener;
mod routes;
mod sasl;
mod schemas_topic;
mod storage;
mod tls;
mod wire;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use sasl::{Users, MECHANISM};
pub use tls::server_tls;

use crate::error::{Error, Result};

/// How a broker is started.
#[derive(Clone, Default)]
pub struct BrokerOptions {
    /// A free port when None.
    pub port: Option<u16>,
    /// A file that keeps topics, records and committed offsets across
    /// restarts; in memory when None.
    pub storage: Option<PathBuf>,
    /// TLS on the listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// SASL/PLAIN users; none: no authentication.
    pub users: Users,
    /// Kafka's `auto.create.topics.enable`: a topic is made when a client
    /// produces to it or asks for its metadata.
    pub auto_create_topics: bool,
    /// Also serve a Schema Registry (kept in the `_schemas` topic).
    pub schema_registry: bool,
    /// The registry's port; a free one when None.
    pub schema_registry_port: Option<u16>,
    /// The registry's TLS when it differs from the listener's (it asks
    /// clients for certificates); else the listener's.
    pub schema_registry_tls: Option<Arc<rustls::ServerConfig>>,
}

/// How a listener is secured, in `security.protocol` terms.
pub fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (tls, sasl) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

pub struct EmbeddedBroker {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
    security_protocol: &'static str,
    registration: Option<crate::in_process::Registration>,
    schema_registry_url: Option<String>,
}

impl EmbeddedBroker {
    /// Opens the storage, binds 127.0.0.1:`port` and serves on background
    /// threads; clients can connect when this returns.
    pub fn start(options: BrokerOptions) -> Result<Self> {
        let opened = match &options.storage {
            None => storage::Storage::in_memory(),
            Some(path) => open_storage(path)?,
        };
        let socket = match options.port {
            Some(p) => TcpListener::bind(("127.0.0.1", p)).map_err(|e| {
                Error::Broker(format!(
                    "port {p} is not free on 127.0.0.1 ({e}): pick another port, or port=None \
                     for any free one"
                ))
            })?,
            None => TcpListener::bind(("127.0.0.1", 0))
                .map_err(|e| Error::Broker(format!("cannot find a free loopback port: {e}")))?,
        };
        let port = socket
            .local_addr()
            .map_err(|e| Error::Broker(e.to_string()))?
            .port();
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::Broker(e.to_string()))?;
        let users = (!options.users.is_empty()).then(|| Arc::new(options.users.clone()));
        let security_protocol = security_protocol(options.tls.is_some(), users.is_some());
        let broker = Arc::new(routes::Broker {
            storage: opened,
            groups: groups::Coordinator::default(),
            host: "127.0.0.1".into(),
            port,
            security_protocol,
            auto_create_topics: options.auto_create_topics,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tskafka-broker")
            .enable_all()
            .build()
            .map_err(|e| Error::Broker(format!("cannot start the broker's threads: {e}")))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(socket)
                .map_err(|e| Error::Broker(format!("cannot listen on port {port}: {e}")))?
        };
        let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
        let registry_tls = match options.schema_registry_tls {
            Some(config) => Some(tokio_rustls::TlsAcceptor::from(config)),
            None => tls.clone(),
        };
        let schema_registry_url = options
            .schema_registry
            .then(|| {
                let (broker, tls, users) = (broker.clone(), registry_tls, users.clone());
                schemas_topic::start_registry(
                    &runtime,
                    broker,
                    options.schema_registry_port,
                    tls,
                    users,
                )
            })
            .transpose()?;
        runtime.spawn(listener::accept(listener, broker.clone(), tls, users));
        runtime.spawn(listener::maintain(broker));
        Ok(Self {
            runtime: Some(runtime),
            port,
            security_protocol,
            registration: Some(crate::in_process::register(port)),
            schema_registry_url,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, as clients set it.
    pub fn security_protocol(&self) -> &'static str {
        self.security_protocol
    }

    /// The Schema Registry's `http(s)://127.0.0.1:port`, when it has one.
    pub fn schema_registry_url(&self) -> Option<&str> {
        self.schema_registry_url.as_deref()
    }

    /// Stops serving and closes the listening socket; data in memory is gone.
    pub fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
            self.registration = None;
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn open_storage(path: &std::path::Path) -> Result<storage::Storage> {
    let path = std::path::absolute(path)
        .map_err(|e| Error::Config(format!("storage path {}: {e}", path.display())))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", parent.display())))?;
    }
    let opened = storage::Storage::open(&path).map_err(|e| {
        Error::Config(format!(
            "cannot open the broker's storage {}: {e}",
            path.display()
        ))
    })?;
    if opened.cut > 0 {
        eprintln!(
            "tskafka broker: {} ended with {} bytes of an unfinished write (the broker \
             stopped mid-write); they were dropped",
            path.display(),
            opened.cut
        );
    }
    Ok(opened.storage)
}
