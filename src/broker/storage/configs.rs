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

/// Topic configs whose value is a comma-separated list (IncrementalAlterConfigs
/// may APPEND to and SUBTRACT from them).
pub const LISTS: &[&str] = &["cleanup.policy"];

/// `current` with `items` added (APPEND) or taken out (SUBTRACT), as Kafka
/// changes a list config.
pub fn change_list(current: &str, items: &str, append: bool) -> String {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut list = split(current);
    for item in split(items) {
        if append && !list.contains(&item) {
            list.push(item);
        } else if !append {
            list.retain(|i| *i != item);
        }
    }
    list.join(",")
}

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
    if let (Some(v), "cleanup.policy") = (value, key) {
        if let Some(bad) = v
            .split(',')
            .map(str::trim)
            .find(|p| !p.is_empty() && *p != "delete" && *p != "compact")
        {
            return Err(Refused {
                error: ResponseError::InvalidConfig,
                message: format!(
                    "cleanup.policy {bad:?} is not valid: use delete, compact, or both"
                ),
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
