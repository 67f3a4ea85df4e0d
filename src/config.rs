//! Client settings: librdkafka's dotted keys, passed through unchanged, with
//! tskafka's defaults underneath and secrets kept out of every message.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// Settings for one client, ordered so that reprs are stable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings(BTreeMap<String, String>);

/// A key whose value must never be shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key == "ssl.key.pem"
        || key == "sasl.oauthbearer.config"
        || key == "ssl_key"
}

impl Settings {
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets `key` only where the user has not.
    pub fn default(&mut self, key: &str, value: &str) -> &mut Self {
        self.0
            .entry(key.to_owned())
            .or_insert_with(|| value.to_owned());
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn extend(&mut self, other: &Settings) -> &mut Self {
        for (k, v) in &other.0 {
            self.0.insert(k.clone(), v.clone());
        }
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn bootstrap_servers(&self) -> Result<&str> {
        self.get("bootstrap.servers")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "no bootstrap servers: pass bootstrap_servers='host:port' \
                     (or set 'bootstrap.servers' in the config)"
                        .into(),
                )
            })
    }

    /// `{key: value}` with secrets shown as `***`.
    pub fn redacted(&self) -> String {
        let body = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) { "***" } else { v.as_str() };
                format!("{k:?}: {v:?}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("{{{body}}}")
    }

    /// Replaces every secret value that occurs in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (k, v) in &self.0 {
            if is_secret(k) && !v.is_empty() {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        for (k, v) in &self.0 {
            cfg.set(k, v);
        }
        cfg
    }

    /// The `[default]` section of a Confluent-style `config.ini`, overlaid
    /// with `section` (e.g. `consumer` or `producer`) where given.
    pub fn from_ini(text: &str, section: Option<&str>) -> Result<Self> {
        let mut sections: BTreeMap<String, Settings> = BTreeMap::new();
        let mut current = String::from("default");
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name.trim().to_owned();
                continue;
            }
            let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                return Err(Error::Config(format!(
                    "config.ini line {}: expected 'key = value', got {:?}",
                    n + 1,
                    if is_secret(line) { "***" } else { line }
                )));
            };
            sections
                .entry(current.clone())
                .or_default()
                .set(k.trim(), v.trim());
        }
        let mut out = sections.remove("default").unwrap_or_default();
        if let Some(name) = section {
            if let Some(extra) = sections.get(name) {
                out.extend(extra);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        let mut s = Settings::new();
        s.set("sasl.password", "hunter2")
            .set("bootstrap.servers", "b:9092");
        let shown = s.redacted();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("b:9092"));
        assert_eq!(s.scrub("bad value hunter2!"), "bad value ***!");
    }

    #[test]
    fn defaults_do_not_override() {
        let mut s = Settings::new();
        s.set("enable.idempotence", "false");
        s.default("enable.idempotence", "true")
            .default("linger.ms", "5");
        assert_eq!(s.get("enable.idempotence"), Some("false"));
        assert_eq!(s.get("linger.ms"), Some("5"));
    }

    #[test]
    fn reads_confluent_ini() {
        let ini = "# comment\n[default]\nbootstrap.servers=pkc:9092\nsecurity.protocol=SASL_SSL\n\
                   sasl.password = p=w\n\n[consumer]\ngroup.id=g\nauto.offset.reset=earliest\n";
        let c = Settings::from_ini(ini, Some("consumer")).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("pkc:9092"));
        assert_eq!(c.get("sasl.password"), Some("p=w"));
        assert_eq!(c.get("group.id"), Some("g"));
        let p = Settings::from_ini(ini, Some("producer")).unwrap();
        assert_eq!(p.get("group.id"), None);
        assert!(Settings::from_ini("[default]\nnonsense\n", None).is_err());
    }

    #[test]
    fn missing_bootstrap_is_config_error() {
        assert!(matches!(
            Settings::new().bootstrap_servers(),
            Err(Error::Config(_))
        ));
    }
}
