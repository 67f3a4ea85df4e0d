//! Client settings: librdkafka's dotted keys, passed through unchanged, with
//! tskafka's defaults underneath and secrets kept out of every message.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// Settings for one client, ordered so that reprs are stable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings(BTreeMap<String, String>);

/// A credential: its value is hidden in reprs and scrubbed from every message.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // "passw" also catches a misspelt "sasl.passwrod".
    [
        "passw",
        "secret",
        "passphrase",
        "credential",
        "jaas",
        "private.key",
        "user.info",
    ]
    .iter()
    // Where credentials come from (`basic.auth.credentials.source=URL`) is not one.
    .any(|word| key.contains(word) && !key.ends_with("credentials.source"))
        || matches!(
            key.as_str(),
            "ssl.key.pem" | "ssl_key" | "sasl.oauthbearer.config"
        )
}

/// A value hidden in reprs: credentials, and what librdkafka also marks
/// sensitive (the SASL user name, the private key's path, the CA bundle).
pub fn is_sensitive(key: &str) -> bool {
    is_secret(key)
        || matches!(
            key.to_ascii_lowercase().as_str(),
            "sasl.username" | "ssl.key.location" | "ssl.ca.pem"
        )
}

/// The `user:password` (as written) of a URL such as
/// `https://user:password@host/`, if it has one.
pub fn url_credentials(url: &str) -> Option<&str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..at])
}

/// The credentials written in URLs among `value` (comma-separated), each
/// whole and its password alone.
fn credentials_in_urls(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for url in value.split(',') {
        if let Some(info) = url_credentials(url.trim()) {
            out.push(info);
            if let Some((_, password)) = info.split_once(':') {
                out.push(password);
            }
        }
    }
    out
}

/// `value` as a repr shows it: `***` for a sensitive key; a URL's
/// `user:password@` as `***@`.
pub fn shown_value(key: &str, value: &str) -> String {
    if is_sensitive(key) {
        return "***".to_owned();
    }
    let mut out = value.to_owned();
    for info in credentials_in_urls(value) {
        out = out.replacen(&format!("{info}@"), "***@", 1);
    }
    out
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
            .map(|(k, v)| format!("{k:?}: {:?}", shown_value(k, v)))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{{{body}}}")
    }

    /// Replaces every secret value that occurs in `text` with `***` (and
    /// each line of a multi-line one, such as a PEM key, and credentials
    /// written in a URL).
    pub fn scrub(&self, text: &str) -> String {
        let mut values: Vec<&str> = Vec::new();
        for (k, v) in &self.0 {
            if is_secret(k) {
                values.push(v.as_str());
                if v.contains('\n') {
                    values.extend(v.lines().map(str::trim));
                }
            }
            values.extend(credentials_in_urls(v));
        }
        values.retain(|v| !v.is_empty());
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for v in values {
            out = out.replace(v, "***");
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
        let mut sections = Self::ini_sections(text)?;
        let mut out = sections.remove("default").unwrap_or_default();
        if let Some(extra) = section.and_then(|name| sections.get(name)) {
            out.extend(extra);
        }
        Ok(out)
    }

    /// Every section of a `config.ini` (`[DEFAULT]` and lines before any
    /// header count as `default`). As Python's configparser reads it:
    /// `key = value` or `key: value`, `#`/`;` comments, and indented lines
    /// continuing the value above (a PEM key). A malformed line is an error
    /// naming its number; the line itself is never shown (it may be a secret).
    pub fn ini_sections(text: &str) -> Result<BTreeMap<String, Settings>> {
        let mut sections: BTreeMap<String, Settings> = BTreeMap::new();
        let mut current = String::from("default");
        let mut last_key: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let indented = raw.starts_with([' ', '\t']);
            if let (true, Some(key)) = (indented, last_key.as_ref()) {
                let values = sections.entry(current.clone()).or_default();
                let value = format!("{}\n{line}", values.get(key).unwrap_or_default());
                values.set(key.clone(), value.trim_start().to_owned());
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = match name.trim() {
                    "DEFAULT" => "default".to_owned(),
                    other => other.to_owned(),
                };
                last_key = None;
                continue;
            }
            let split = match (line.find('='), line.find(':')) {
                (Some(e), Some(c)) => e.min(c),
                (Some(i), None) | (None, Some(i)) => i,
                (None, None) => usize::MAX,
            };
            let key = line.get(..split).map(str::trim).unwrap_or_default();
            if key.is_empty() {
                return Err(Error::Config(format!(
                    "line {}: expected 'key = value' or a [section] header \
                     (the line is not shown: it may hold a secret)",
                    n + 1
                )));
            }
            let value = line[split + 1..].trim();
            sections.entry(current.clone()).or_default().set(key, value);
            last_key = Some(key.to_owned());
        }
        Ok(sections)
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
    fn ini_errors_name_the_line_not_its_text() {
        let err = Settings::from_ini("[default]\na=1\nsasl.password hunter2\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn ini_reads_continuations_colons_and_default_header() {
        let ini = "top=1\n[DEFAULT]\nssl.key.pem=-----BEGIN KEY-----\n  abc\n  -----END KEY-----\n\
                   x: y\n[admin]\nclient.id=a\n[schema-registry]\nurl=http://h:1\n";
        let all = Settings::ini_sections(ini).unwrap();
        let d = &all["default"];
        assert_eq!(d.get("top"), Some("1"));
        assert_eq!(
            d.get("ssl.key.pem"),
            Some("-----BEGIN KEY-----\nabc\n-----END KEY-----")
        );
        assert_eq!(d.get("x"), Some("y"));
        let admin = Settings::from_ini(ini, Some("admin")).unwrap();
        assert_eq!(admin.get("client.id"), Some("a"));
        assert_eq!(admin.get("url"), None);
        assert!(!d.redacted().contains("abc"));
        assert_eq!(d.scrub("bad key: abc"), "bad key: ***");
    }

    #[test]
    fn librdkafka_sensitive_properties_are_hidden() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.jaas.config",
            "basic.auth.user.info",
            "sasl.passwrod",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.username", "ssl.key.location", "ssl.ca.pem"] {
            assert!(is_sensitive(key) && !is_secret(key), "{key}");
        }
        assert!(!is_sensitive("bootstrap.servers") && !is_sensitive("ssl.certificate.pem"));
        assert!(!is_sensitive("basic.auth.credentials.source"));
        let mut s = Settings::new();
        s.set("sasl.username", "alice").set("sasl.password", "pw");
        assert_eq!(
            s.redacted(),
            r#"{"sasl.password": "***", "sasl.username": "***"}"#
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden_and_scrubbed() {
        assert_eq!(
            url_credentials("https://u:p%40ss@h:1/x@y"),
            Some("u:p%40ss")
        );
        assert_eq!(url_credentials("http://h:1/a@b"), None);
        assert_eq!(url_credentials("h:1"), None);
        let mut s = Settings::new();
        s.set(
            "schema.registry.url",
            "https://key:s3cret@reg.example:443/base, http://x:y@h2",
        );
        assert_eq!(
            s.redacted(),
            r#"{"schema.registry.url": "https://***@reg.example:443/base, http://***@h2"}"#
        );
        assert_eq!(s.scrub("auth key:s3cret and s3cret"), "auth *** and ***");
        assert_eq!(shown_value("x.url", "http://h:1/p"), "http://h:1/p");
    }

    #[test]
    fn missing_bootstrap_is_config_error() {
        assert!(matches!(
            Settings::new().bootstrap_servers(),
            Err(Error::Config(_))
        ));
    }
}
