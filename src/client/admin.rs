//! The admin client: topics created, deleted, listed and described. Its
//! requests are futures driven on a small runtime of its own, a slice at a
//! time, so that a security failure or the caller's check ends the wait.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::client::{self, Context, Settings};
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// One partition of a described topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// The earliest offset still kept.
    pub low: i64,
    /// The offset the next message gets.
    pub high: i64,
}

pub struct Admin {
    settings: Settings,
    admin: AdminClient<Context>,
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    pub fn new(mut settings: Settings) -> Result<Self> {
        crate::client::registry::remove_keys(&mut settings);
        // librdkafka lets an admin client's metadata request create a topic
        // on brokers that auto-create: describing one must not make it.
        let mut quiet = settings.clone();
        quiet.default("allow.auto.create.topics", "false");
        let admin = client::create(&quiet, Context::default())?;
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

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Drives an admin request to its answer, failing at once on a security error.
    fn block_on<F: Future<Output = KafkaResult<Vec<TopicResult>>>>(
        &self,
        what: &str,
        timeout: f64,
        request: F,
        check: Check<'_>,
    ) -> Result<Vec<TopicResult>> {
        let deadline = wait::deadline(Some(timeout))?;
        let started = Instant::now();
        let mut request = std::pin::pin!(request);
        let answer = wait::until(deadline, check, |slice| {
            let answered = self
                .runtime
                .block_on(async { tokio::time::timeout(slice, &mut request).await });
            if let Ok(done) = answered {
                return Ok(Some(done));
            }
            let client = self.admin.inner();
            client::context::drain_main_queue(client);
            match client
                .context()
                .errors
                .security_error(started, &self.settings)
            {
                Some(e) => Err(e),
                None => Ok(None),
            }
        })?;
        match answer {
            Some(done) => done.map_err(|e| Error::kafka(what, &e)),
            None => Err(Error::Timeout(format!(
                "{what} did not finish within {timeout}s: is {} reachable?",
                self.settings.bootstrap_servers().unwrap_or("?")
            ))),
        }
    }

    fn options(timeout: f64) -> AdminOptions {
        let t = Duration::from_secs_f64(timeout.max(0.1));
        AdminOptions::new()
            .operation_timeout(Some(t))
            .request_timeout(Some(t))
    }

    /// Metadata that fails fast on a wrong password or an untrusted certificate.
    fn metadata(&self, topic: Option<&str>, timeout: f64, check: Check<'_>) -> Result<Metadata> {
        let client = self.admin.inner();
        client::fetch_metadata(
            client,
            &self.settings,
            topic,
            metadata_timeout(timeout),
            &mut || {
                client::context::drain_main_queue(client);
                check()
            },
        )
    }

    /// Creates a topic and waits until the cluster's metadata shows it; with
    /// `exist_ok`, an existing topic is not an error.
    #[allow(clippy::too_many_arguments)]
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        config: &HashMap<String, String>,
        exist_ok: bool,
        timeout: f64,
        check: Check<'_>,
    ) -> Result<()> {
        if partitions < 1 || replication_factor < 1 {
            return Err(Error::Config(format!(
                "partitions ({partitions}) and replication_factor ({replication_factor}) must be >= 1"
            )));
        }
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (k, v) in config {
            topic = topic.set(k, v);
        }
        let results = self.block_on(
            &format!("creating topic {name:?}"),
            timeout,
            self.admin.create_topics([&topic], &Self::options(timeout)),
            check,
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
        // The topic is usable once metadata shows its partitions. Each look
        // runs `check` (the metadata wait does).
        let visible = wait::until(wait::deadline(Some(timeout))?, &mut wait::unchecked, |_| {
            let md = self.metadata(Some(name), timeout, &mut *check)?;
            let shown = md
                .topics()
                .iter()
                .any(|t| t.name() == name && !t.partitions().is_empty() && t.error().is_none());
            if !shown {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(shown.then_some(()))
        })?;
        visible.ok_or_else(|| {
            Error::Timeout(format!(
                "topic {name:?} was created but is not visible after {timeout}s"
            ))
        })
    }

    /// Deletes a topic; with `missing_ok`, a missing topic is not an error.
    pub fn delete_topic(
        &self,
        name: &str,
        missing_ok: bool,
        timeout: f64,
        check: Check<'_>,
    ) -> Result<()> {
        let results = self.block_on(
            &format!("deleting topic {name:?}"),
            timeout,
            self.admin.delete_topics(&[name], &Self::options(timeout)),
            check,
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
    }

    /// Topic names on the cluster (internal topics left out), sorted.
    pub fn list_topics(&self, timeout: f64, check: Check<'_>) -> Result<Vec<String>> {
        let md = self.metadata(None, timeout, check)?;
        let mut names: Vec<String> = md
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|n| !n.starts_with("__"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every partition of `name`: its leader, replicas and watermarks.
    pub fn describe_topic(
        &self,
        name: &str,
        timeout: f64,
        check: Check<'_>,
    ) -> Result<Vec<PartitionInfo>> {
        let t = metadata_timeout(timeout);
        let client = self.admin.inner();
        client::partition_counts(client, &self.settings, &[name], t, &mut || {
            client::context::drain_main_queue(client);
            check()
        })?;
        let md = client
            .fetch_metadata(Some(name), t)
            .map_err(|e| Error::kafka("metadata", &e))?;
        let topic = &md.topics()[0];
        topic
            .partitions()
            .iter()
            .map(|p| {
                let (low, high) = client
                    .fetch_watermarks(name, p.id(), t)
                    .map_err(|e| Error::kafka(format!("watermarks of {name}[{}]", p.id()), &e))?;
                Ok(PartitionInfo {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    low,
                    high,
                })
            })
            .collect()
    }
}

fn metadata_timeout(timeout: f64) -> Duration {
    Duration::from_secs_f64(timeout.max(0.1))
}
