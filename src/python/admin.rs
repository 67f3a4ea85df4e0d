use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use super::convert::client_settings;
use super::wait::{deadline, detached, slice, Interrupts};
use crate::client::{self, Context};
use crate::config::Settings;
use crate::error::{Error, Result};

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Admin {
    settings: Settings,
    admin: AdminClient<Context>,
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    /// Drives an admin future to completion, waking for Ctrl+C.
    fn block_on<F: Future<Output = KafkaResult<Vec<TopicResult>>>>(
        &self,
        what: &str,
        timeout: f64,
        fut: F,
    ) -> Result<Vec<TopicResult>> {
        let deadline = deadline(Some(timeout))?;
        let started = std::time::Instant::now();
        let mut fut = std::pin::pin!(fut);
        let mut interrupts = Interrupts::new();
        loop {
            let Some(wait) = slice(deadline) else {
                return Err(Error::Timeout(format!(
                    "{what} did not finish within {timeout}s: is {} reachable?",
                    self.settings.bootstrap_servers().unwrap_or("?")
                )));
            };
            if let Ok(done) = self
                .runtime
                .block_on(async { tokio::time::timeout(wait, &mut fut).await })
            {
                return done.map_err(|e| Error::kafka(what, &e));
            }
            client::drain_main_queue(self.admin.inner());
            if let Some(e) = self.admin.inner().context().errors.security_error(started, &self.settings) {
                return Err(e);
            }
            interrupts.check()?;
        }
    }

    fn options(timeout: f64) -> AdminOptions {
        let t = Duration::from_secs_f64(timeout.max(0.1));
        AdminOptions::new()
            .operation_timeout(Some(t))
            .request_timeout(Some(t))
    }

    /// Metadata that fails fast on a wrong password or an untrusted certificate.
    fn metadata(&self, topic: Option<&str>, timeout: Duration) -> Result<Metadata> {
        let client = self.admin.inner();
        let mut interrupts = Interrupts::new();
        client::fetch_metadata(client, &self.settings, topic, timeout, &mut || {
            client::drain_main_queue(client);
            interrupts.check()
        })
    }

    fn metadata_timeout(timeout: f64) -> Duration {
        Duration::from_secs_f64(timeout.max(0.1))
    }
}

#[pymethods]
impl Admin {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None))]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let admin = detached(py, || client::create(&settings, Context::default()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            settings,
            admin,
            runtime,
        })
    }

    /// Creates a topic; with `exist_ok`, an existing topic is not an error.
    #[pyo3(signature = (name, partitions=1, replication_factor=1, config=None, *, exist_ok=false, timeout=30.0))]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: String,
        partitions: i32,
        replication_factor: i32,
        config: Option<HashMap<String, String>>,
        exist_ok: bool,
        timeout: f64,
    ) -> PyResult<()> {
        detached(py, || {
            if partitions < 1 || replication_factor < 1 {
                return Err(Error::Config(format!(
                    "partitions ({partitions}) and replication_factor ({replication_factor}) must be >= 1"
                )));
            }
            let mut topic = NewTopic::new(
                &name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (k, v) in config.iter().flatten() {
                topic = topic.set(k, v);
            }
            let results = self.block_on(
                &format!("creating topic {name:?}"),
                timeout,
                self.admin.create_topics([&topic], &Self::options(timeout)),
            )?;
            for r in results {
                match r {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if exist_ok => {}
                    Err((t, code)) => {
                        return Err(Error::kafka_code(
                            format!("cannot create topic {t:?}"),
                            code,
                        ))
                    }
                }
            }
            // The topic is usable once metadata shows its partitions.
            let deadline = deadline(Some(timeout))?;
            let mut interrupts = Interrupts::new();
            loop {
                let md = self.metadata(Some(&name), Self::metadata_timeout(timeout))?;
                if md
                    .topics()
                    .iter()
                    .any(|t| t.name() == name && !t.partitions().is_empty() && t.error().is_none())
                {
                    return Ok(());
                }
                if slice(deadline).is_none() {
                    return Err(Error::Timeout(format!(
                        "topic {name:?} was created but is not visible after {timeout}s"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
                interrupts.check()?;
            }
        })
    }

    /// Deletes a topic; with `missing_ok`, a missing topic is not an error.
    #[pyo3(signature = (name, *, missing_ok=false, timeout=30.0))]
    fn delete_topic(
        &self,
        py: Python<'_>,
        name: String,
        missing_ok: bool,
        timeout: f64,
    ) -> PyResult<()> {
        detached(py, || {
            let results = self.block_on(
                &format!("deleting topic {name:?}"),
                timeout,
                self.admin.delete_topics(&[&name], &Self::options(timeout)),
            )?;
            for r in results {
                match r {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if missing_ok => {}
                    Err((t, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                        return Err(client::unknown_topic(
                            &t,
                            self.settings.bootstrap_servers()?,
                        ))
                    }
                    Err((t, code)) => {
                        return Err(Error::kafka_code(
                            format!("cannot delete topic {t:?}"),
                            code,
                        ))
                    }
                }
            }
            Ok(())
        })
    }

    /// Topic names on the cluster (internal topics left out), sorted.
    #[pyo3(signature = (timeout=10.0))]
    fn list_topics(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<String>> {
        detached(py, || {
            let md = self.metadata(None, Self::metadata_timeout(timeout))?;
            let mut names: Vec<String> = md
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|n| !n.starts_with("__"))
                .collect();
            names.sort();
            Ok(names)
        })
    }

    /// One dict per partition: partition, leader, replicas, low and high watermarks.
    #[pyo3(signature = (name, timeout=10.0))]
    fn describe_topic(
        &self,
        py: Python<'_>,
        name: String,
        timeout: f64,
    ) -> PyResult<Vec<HashMap<String, Py<PyAny>>>> {
        let t = Self::metadata_timeout(timeout);
        let rows = detached(py, || {
            let mut interrupts = Interrupts::new();
            client::partition_counts(self.admin.inner(), &self.settings, &[&name], t, &mut || {
                client::drain_main_queue(self.admin.inner());
                interrupts.check()
            })?;
            let md = self
                .admin
                .inner()
                .fetch_metadata(Some(&name), t)
                .map_err(|e| Error::kafka("metadata", &e))?;
            let topic = &md.topics()[0];
            let mut rows = Vec::new();
            for p in topic.partitions() {
                let (low, high) = self
                    .admin
                    .inner()
                    .fetch_watermarks(&name, p.id(), t)
                    .map_err(|e| Error::kafka(format!("watermarks of {name}[{}]", p.id()), &e))?;
                rows.push((p.id(), p.leader(), p.replicas().to_vec(), low, high));
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(id, leader, replicas, low, high)| {
                let mut d: HashMap<String, Py<PyAny>> = HashMap::new();
                d.insert(
                    "partition".into(),
                    id.into_pyobject(py)?.into_any().unbind(),
                );
                d.insert(
                    "leader".into(),
                    leader.into_pyobject(py)?.into_any().unbind(),
                );
                d.insert(
                    "replicas".into(),
                    replicas.into_pyobject(py)?.into_any().unbind(),
                );
                d.insert("low".into(), low.into_pyobject(py)?.into_any().unbind());
                d.insert("high".into(), high.into_pyobject(py)?.into_any().unbind());
                Ok(d)
            })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Admin({})", self.settings.redacted())
    }
}
