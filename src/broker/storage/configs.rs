//! Topic and broker configs: Kafka's names and defaults, and what this
//! broker does with them. It keeps every record unless a topic sets
//! `retention.ms` (Kafka's default deletes after 7 days), and refuses a
//! record batch over a topic's `max.message.bytes`; the other topic configs
//! are stored and reported as set.

use kafka_protocol::ResponseError;

use super::Refused;

/// Topic configs and their defaults on this broker.
pub const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "-1"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

pub fn topic_default(key: &str) -> Option<&'static str> {
    TOPIC_DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
}

/// Configs whose value must be a whole number.
const NUMERIC: &[&str] = &[
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
];

/// Checks a topic config set (Some) or reset (None) by a client.
pub fn check_topic_config(key: &str, value: Option<&str>) -> Result<(), Refused> {
    if topic_default(key).is_none() {
        return Err(Refused {
            error: ResponseError::InvalidConfig,
            message: format!("unknown topic config {key:?}"),
        });
    }
    if let (Some(v), true) = (value, NUMERIC.contains(&key)) {
        if v.trim().parse::<i64>().is_err() {
            return Err(Refused {
                error: ResponseError::InvalidConfig,
                message: format!("topic config {key} must be a whole number, got {v:?}"),
            });
        }
    }
    Ok(())
}

/// Kafka's rule for topic names.
pub fn check_topic_name(name: &str) -> Result<(), Refused> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 249
        || !name.chars().all(legal)
    {
        return Err(Refused {
            error: ResponseError::InvalidTopicException,
            message: format!(
                "topic name {name:?} is not valid: use 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-'"
            ),
        });
    }
    Ok(())
}

/// The broker's configs as clients read them (DescribeConfigs on the broker).
pub fn broker_configs(listener: &str, auto_create_topics: bool) -> Vec<(&'static str, String)> {
    vec![
        ("advertised.listeners", listener.to_owned()),
        ("listeners", listener.to_owned()),
        ("broker.id", "1".into()),
        ("node.id", "1".into()),
        ("auto.create.topics.enable", auto_create_topics.to_string()),
        ("num.partitions", "1".into()),
        ("default.replication.factor", "1".into()),
        ("min.insync.replicas", "1".into()),
        ("offsets.topic.replication.factor", "1".into()),
        ("log.retention.ms", "-1".into()),
        ("log.retention.bytes", "-1".into()),
        ("log.cleanup.policy", "delete".into()),
        ("message.max.bytes", "1048588".into()),
        ("delete.topic.enable", "true".into()),
        (
            "group.min.session.timeout.ms",
            crate::broker::groups::MIN_SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            crate::broker::groups::MAX_SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms",
            crate::broker::groups::INITIAL_REBALANCE_DELAY
                .as_millis()
                .to_string(),
        ),
    ]
}
