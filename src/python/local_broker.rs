use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

use super::wait::detached;
use crate::broker::{self, BrokerOptions, EmbeddedBroker, Users};
use crate::error::Error;

/// A Kafka-compatible broker inside this process, on 127.0.0.1.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct LocalBroker {
    broker: Mutex<Option<EmbeddedBroker>>,
    bootstrap: String,
    port: u16,
    security_protocol: &'static str,
    certfile: Option<PathBuf>,
    user_names: Vec<String>,
    schema_registry_url: Option<String>,
}

#[pymethods]
impl LocalBroker {
    #[new]
    #[pyo3(signature = (
        port=None, storage=None, *, certfile=None, keyfile=None, users=None,
        auto_create_topics=true, schema_registry=false, schema_registry_port=None,
        schema_registry_client_cafile=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        port: Option<u16>,
        storage: Option<PathBuf>,
        certfile: Option<PathBuf>,
        keyfile: Option<PathBuf>,
        users: Option<HashMap<String, String>>,
        auto_create_topics: bool,
        schema_registry: bool,
        schema_registry_port: Option<u16>,
        schema_registry_client_cafile: Option<PathBuf>,
    ) -> PyResult<Self> {
        if schema_registry_client_cafile.is_some() && !(schema_registry && certfile.is_some()) {
            return Err(Error::Config(
                "schema_registry_client_cafile= makes the Schema Registry ask for client \
                 certificates over TLS: also pass schema_registry=True, certfile= and keyfile="
                    .into(),
            )
            .into());
        }
        if schema_registry_port.is_some() && !schema_registry {
            return Err(Error::Config(
                "schema_registry_port= is the Schema Registry's port: also pass \
                 schema_registry=True"
                    .into(),
            )
            .into());
        }
        let users = Users::new(users.unwrap_or_default())?;
        let user_names: Vec<String> = users.names().map(str::to_owned).collect();
        let mut schema_registry_tls = None;
        let (certfile, tls) = match (certfile, keyfile) {
            (None, None) => (None, None),
            (Some(cert), Some(key)) => {
                let tls = detached(py, || broker::server_tls(&cert, &key, None))?;
                if let Some(ca) = &schema_registry_client_cafile {
                    schema_registry_tls =
                        Some(detached(py, || broker::server_tls(&cert, &key, Some(ca)))?);
                }
                (Some(std::path::absolute(&cert).unwrap_or(cert)), Some(tls))
            }
            _ => {
                return Err(Error::Config(
                    "TLS needs both certfile= (PEM certificate, chain after it) and \
                     keyfile= (PEM private key)"
                        .into(),
                )
                .into())
            }
        };
        let options = BrokerOptions {
            port,
            storage: storage.filter(|s| s.as_os_str() != "memory" && s.as_os_str() != "memory://"),
            tls,
            users,
            auto_create_topics,
            schema_registry,
            schema_registry_port,
            schema_registry_tls,
        };
        let broker = detached(py, || EmbeddedBroker::start(options))?;
        let security_protocol = broker.security_protocol();
        Ok(Self {
            bootstrap: broker.bootstrap_servers(),
            schema_registry_url: broker.schema_registry_url().map(str::to_owned),
            port: broker.port(),
            broker: Mutex::new(Some(broker)),
            security_protocol,
            certfile,
            user_names,
        })
    }

    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, as clients set it.
    #[getter]
    fn security_protocol(&self) -> &'static str {
        self.security_protocol
    }

    /// The client properties to connect: bootstrap, security protocol, and
    /// for SASL the mechanism and user (the only user when there is one);
    /// `password` is added only when given. With TLS, `ssl.ca.location` is
    /// `ca_location`, else the broker's certfile (right when that file is
    /// self-signed or holds the chain up to its root CA).
    #[pyo3(signature = (*, username=None, password=None, ca_location=None))]
    fn client_config(
        &self,
        username: Option<String>,
        password: Option<String>,
        ca_location: Option<PathBuf>,
    ) -> PyResult<HashMap<&'static str, String>> {
        let mut config = HashMap::from([
            ("bootstrap.servers", self.bootstrap_servers()?),
            ("security.protocol", self.security_protocol.to_owned()),
        ]);
        if let Some(cert) = &self.certfile {
            let ca = ca_location.unwrap_or_else(|| cert.clone());
            config.insert("ssl.ca.location", ca.display().to_string());
        }
        if !self.user_names.is_empty() {
            config.insert("sasl.mechanisms", broker::MECHANISM.to_owned());
            let username = match (username, &self.user_names[..]) {
                (Some(u), _) => Some(u),
                (None, [only]) => Some(only.clone()),
                (None, _) => None,
            };
            if let Some(u) = username {
                config.insert("sasl.username", u);
            }
            if let Some(p) = password {
                config.insert("sasl.password", p);
            }
        } else if username.is_some() || password.is_some() {
            return Err(Error::Config(
                "this LocalBroker has no users (no SASL): leave out username and password, \
                 or start it with users={name: password}"
                    .into(),
            )
            .into());
        }
        Ok(config)
    }

    /// The Schema Registry's `http://127.0.0.1:port` (`https://` with TLS),
    /// for `schema.registry.url` / confluent-kafka's `SchemaRegistryClient`.
    #[getter]
    fn schema_registry_url(&self) -> PyResult<String> {
        if self.closed() {
            return Err(Error::Closed("this LocalBroker").into());
        }
        self.schema_registry_url.clone().ok_or_else(|| {
            Error::Config(
                "this LocalBroker has no Schema Registry: start it with schema_registry=True"
                    .into(),
            )
            .into()
        })
    }

    /// The settings for confluent-kafka's `SchemaRegistryClient`: `url`,
    /// and `ssl.ca.location` with TLS; with users, `basic.auth.user.info`
    /// when `password` is given (the user: `username`, else the only one).
    #[pyo3(signature = (*, username=None, password=None, ca_location=None))]
    fn schema_registry_config(
        &self,
        username: Option<String>,
        password: Option<String>,
        ca_location: Option<PathBuf>,
    ) -> PyResult<HashMap<&'static str, String>> {
        let mut config = HashMap::from([("url", self.schema_registry_url()?)]);
        if let Some(cert) = &self.certfile {
            let ca = ca_location.unwrap_or_else(|| cert.clone());
            config.insert("ssl.ca.location", ca.display().to_string());
        }
        if self.user_names.is_empty() {
            if username.is_some() || password.is_some() {
                return Err(Error::Config(
                    "this LocalBroker has no users: leave out username and password, or start \
                     it with users={name: password}"
                        .into(),
                )
                .into());
            }
        } else if let Some(password) = password {
            let username = match (username, &self.user_names[..]) {
                (Some(u), _) => u,
                (None, [only]) => only.clone(),
                (None, _) => {
                    return Err(Error::Config(format!(
                        "this LocalBroker has users {:?}: say which with username=",
                        self.user_names
                    ))
                    .into())
                }
            };
            config.insert("basic.auth.user.info", format!("{username}:{password}"));
        }
        Ok(config)
    }

    /// `host:port` for any Kafka client.
    #[getter]
    fn bootstrap_servers(&self) -> PyResult<String> {
        if self.closed() {
            return Err(Error::Closed("this LocalBroker").into());
        }
        Ok(self.bootstrap.clone())
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    #[getter]
    fn closed(&self) -> bool {
        self.broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Stops the broker; its data (in memory) is gone.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut b) = taken {
            detached(py, move || {
                b.shutdown();
                Ok(())
            })?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "running" };
        let users = if self.user_names.is_empty() {
            String::new()
        } else {
            format!(", users={:?}", self.user_names)
        };
        let registry = match &self.schema_registry_url {
            Some(url) => format!(", schema_registry={url:?}"),
            None => String::new(),
        };
        format!(
            "LocalBroker({:?}, {}{users}{registry}, {state})",
            self.bootstrap, self.security_protocol
        )
    }
}
