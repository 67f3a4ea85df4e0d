//! A Schema Registry client: the schema of an id (fetched once, then
//! cached) and registering a schema under a subject. Its settings come in
//! a client's config under Confluent's names (`schema.registry.url`,
//! `basic.auth.user.info` and `basic.auth.credentials.source`,
//! `schema.registry.ssl.{ca,certificate,key}.location`) and are taken out
//! before librdkafka sees the rest.
//!
//! HTTP/1.1 over a blocking socket (TLS by rustls): a request or two per
//! schema, never per message, so no connection is kept.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use super::Settings;
use crate::codec::{FetchError, Format, RegisteredSchema, SchemaSource, SchemaType};
use crate::error::{Error, Result};

/// The config keys the registry client takes (librdkafka never sees them).
const URL: &str = "schema.registry.url";
const USER_INFO: &[&str] = &[
    "basic.auth.user.info",
    "schema.registry.basic.auth.user.info",
];
const CREDENTIALS_SOURCE: &[&str] = &[
    "basic.auth.credentials.source",
    "schema.registry.basic.auth.credentials.source",
];
const CA_LOCATION: &[&str] = &[
    "schema.registry.ssl.ca.location",
    "schema.registry.ssl.ca.pem.location",
];
const CERTIFICATE_LOCATION: &str = "schema.registry.ssl.certificate.location";
const KEY_LOCATION: &str = "schema.registry.ssl.key.location";
const KEY_PASSWORD: &str = "schema.registry.ssl.key.password";

/// Where system CA bundles live, for an https registry without its own CA.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

pub struct RegistryClient {
    url: String,
    host: String,
    port: u16,
    /// The URL's path, without a trailing slash ("" for the root).
    base_path: String,
    authorization: Option<String>,
    /// The credentials (and their parts), to scrub from any message that
    /// might echo them; longest first.
    secrets: Vec<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether a client certificate is configured (for the error when the
    /// registry asks for one).
    client_certificate: bool,
    timeout: Duration,
    by_id: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
    /// (subject, schema type, text) -> id.
    registered: Mutex<HashMap<(String, SchemaType, String), u32>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryClient({})", self.url)
    }
}

/// How a client reaches the registry, besides its URL.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// `user:password` for HTTP Basic, wherever it came from.
    pub user_info: Option<String>,
    /// The CA bundle for an https registry (else the system's).
    pub ca_location: Option<PathBuf>,
    /// A client certificate (PEM, its chain after it) for a registry that
    /// asks for one (mTLS); its key from `key_location`, else the same file.
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
}

/// Where the registry's HTTP Basic credentials come from
/// (`basic.auth.credentials.source`, as Confluent's clients name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CredentialsSource {
    /// `basic.auth.user.info`, else the URL's `user:password@`.
    UserInfo,
    /// The URL's `user:password@`.
    Url,
    /// The Kafka client's `sasl.username` and `sasl.password`.
    SaslInherit,
}

/// Removes the registry's keys from `settings`; a client if a URL was given.
pub fn take_from(settings: &mut Settings) -> Result<Option<Arc<RegistryClient>>> {
    let url = settings.remove(URL);
    let user_info = USER_INFO.iter().find_map(|k| settings.remove(k));
    let source = CREDENTIALS_SOURCE
        .iter()
        .filter_map(|k| settings.remove(k))
        .next_back();
    let ca = CA_LOCATION.iter().find_map(|k| settings.remove(k));
    let certificate = settings.remove(CERTIFICATE_LOCATION);
    let key = settings.remove(KEY_LOCATION);
    let key_password = settings.remove(KEY_PASSWORD).filter(|p| !p.is_empty());
    let Some(url) = url else {
        let given: Vec<&str> = [
            (user_info.is_some(), USER_INFO[0]),
            (certificate.is_some(), CERTIFICATE_LOCATION),
            (key.is_some(), KEY_LOCATION),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if !given.is_empty() {
            return Err(Error::Config(format!(
                "{} set but schema.registry.url is not: add the registry's URL",
                given.join(" and ")
            )));
        }
        return Ok(None);
    };
    if key_password.is_some() {
        return Err(Error::Config(format!(
            "{KEY_PASSWORD} is set: an encrypted private key is not supported for the schema \
             registry; give {KEY_LOCATION} an unencrypted PEM key (e.g. `openssl pkey -in \
             key.pem -out plain.pem`)"
        )));
    }
    let source = match source.as_deref().map(str::trim) {
        None => CredentialsSource::UserInfo,
        Some(s) if s.eq_ignore_ascii_case("USER_INFO") => CredentialsSource::UserInfo,
        Some(s) if s.eq_ignore_ascii_case("URL") => CredentialsSource::Url,
        Some(s) if s.eq_ignore_ascii_case("SASL_INHERIT") => CredentialsSource::SaslInherit,
        Some(other) => {
            return Err(Error::Config(format!(
                "basic.auth.credentials.source {other:?} is not known: use USER_INFO \
                 (basic.auth.user.info), URL (user:password@ in schema.registry.url) or \
                 SASL_INHERIT (sasl.username and sasl.password)"
            )))
        }
    };
    let (url, in_url) = split_credentials(first_url(&url));
    let user_info = match source {
        CredentialsSource::UserInfo => match (user_info, in_url) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "the registry's credentials are given twice, in basic.auth.user.info and \
                     in schema.registry.url (user:password@): keep one"
                        .into(),
                ))
            }
            (given, in_url) => given.or(in_url),
        },
        CredentialsSource::Url => Some(in_url.ok_or_else(|| {
            Error::Config(format!(
                "basic.auth.credentials.source is URL but schema.registry.url {url:?} holds no \
                 credentials: write it as https://user:password@host, or use USER_INFO with \
                 basic.auth.user.info"
            ))
        })?),
        CredentialsSource::SaslInherit => {
            match (settings.get("sasl.username"), settings.get("sasl.password")) {
                (Some(user), Some(password)) => Some(format!("{user}:{password}")),
                _ => {
                    return Err(Error::Config(
                        "basic.auth.credentials.source is SASL_INHERIT, which takes the \
                         registry's credentials from sasl.username and sasl.password: set both"
                            .into(),
                    ))
                }
            }
        }
    };
    let options = ClientOptions {
        user_info,
        ca_location: ca.map(PathBuf::from),
        certificate_location: certificate.map(PathBuf::from),
        key_location: key.map(PathBuf::from),
    };
    RegistryClient::new(&url, &options).map(|c| Some(Arc::new(c)))
}

/// Removes the registry's keys from `settings`, for a client that never
/// asks the registry (an admin client given the config.ini every client shares).
pub fn remove_keys(settings: &mut Settings) {
    let keys = [URL, CERTIFICATE_LOCATION, KEY_LOCATION, KEY_PASSWORD];
    for key in keys
        .iter()
        .chain(USER_INFO)
        .chain(CREDENTIALS_SOURCE)
        .chain(CA_LOCATION)
    {
        settings.remove(key);
    }
}

/// The first of several comma-separated URLs (the one that is asked).
fn first_url(urls: &str) -> &str {
    urls.split(',').next().unwrap_or("").trim()
}

/// `url` without its `user:password@`, and those (percent-decoded) when present.
fn split_credentials(url: &str) -> (String, Option<String>) {
    match crate::client::settings::url_credentials(url) {
        Some(raw) => {
            let at = url.find(raw).unwrap_or(0);
            let clean = format!("{}{}", &url[..at], &url[at + raw.len() + 1..]);
            (clean, Some(percent_decode(raw)))
        }
        None => (url.to_owned(), None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RegistryClient {
    /// A client of the registry at `url` (the first of several; no
    /// credentials in it: those come in `options`).
    pub fn new(url: &str, options: &ClientOptions) -> Result<Self> {
        let url = first_url(url).to_owned();
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(Error::Config(format!(
                "schema.registry.url {url:?} must start with http:// or https://"
            )));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| {
                    Error::Config(format!("schema.registry.url {url:?} has a bad port {p:?}"))
                })?;
                (h, port)
            }
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(Error::Config(format!(
                "schema.registry.url {url:?} names no host"
            )));
        }
        let user_info = options.user_info.as_deref();
        let authorization = match user_info {
            Some(info) if !info.contains(':') => {
                return Err(Error::Config(
                    "basic.auth.user.info must be 'user:password' (the value is not shown)".into(),
                ))
            }
            Some(info) => Some(format!("Basic {}", base64(info.as_bytes()))),
            None => None,
        };
        let tls = if https {
            Some(tls_config(options)?)
        } else {
            if options.certificate_location.is_some() {
                return Err(Error::Config(format!(
                    "{CERTIFICATE_LOCATION} is set but schema.registry.url {url:?} is not \
                     https://: a client certificate needs TLS"
                )));
            }
            None
        };
        let mut secrets: Vec<String> = user_info
            .into_iter()
            .flat_map(|info| {
                [
                    info.to_owned(),
                    info.split_once(':').map_or("", |(_, p)| p).to_owned(),
                ]
            })
            .filter(|s| s.len() > 1)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Self {
            url: format!(
                "{}://{authority}{path}",
                if https { "https" } else { "http" }
            ),
            host,
            port,
            base_path: path.to_owned(),
            authorization,
            secrets,
            tls,
            client_certificate: options.certificate_location.is_some(),
            timeout: Duration::from_secs(10),
            by_id: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        })
    }

    /// How long one request may take in all.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(100));
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema of `id`, asked of the registry once.
    pub fn fetch(&self, id: u32) -> std::result::Result<Arc<RegisteredSchema>, FetchError> {
        if let Some(s) = self
            .by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(s.clone());
        }
        let (status, body) = self
            .request("GET", &format!("/schemas/ids/{id}"), None)
            .map_err(FetchError::Unavailable)?;
        if status == 404 {
            return Err(FetchError::Unknown(format!(
                "schema id {id} is not in the schema registry at {} ({})",
                self.url,
                api_message(&body)
            )));
        }
        if status != 200 {
            return Err(FetchError::Unavailable(self.refused(status, &body)));
        }
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = value["schema"].as_str().ok_or_else(|| {
            FetchError::Unavailable(Error::Schema(format!(
                "the schema registry at {} answered schema id {id} without a schema",
                self.url
            )))
        })?;
        let mut references = Vec::new();
        if let Some(refs) = value["references"].as_array() {
            for r in refs {
                let (Some(subject), Some(version)) = (r["subject"].as_str(), r["version"].as_i64())
                else {
                    continue;
                };
                let path = format!("/subjects/{}/versions/{version}", encode_path(subject));
                let (status, body) = self
                    .request("GET", &path, None)
                    .map_err(FetchError::Unavailable)?;
                if status != 200 {
                    return Err(FetchError::Unavailable(self.refused(status, &body)));
                }
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                references.push(v["schema"].as_str().unwrap_or_default().to_owned());
            }
        }
        let schema = Arc::new(RegisteredSchema {
            id,
            schema_type: SchemaType::from_registry(value["schemaType"].as_str()),
            text: text.to_owned(),
            references,
        });
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, schema.clone());
        Ok(schema)
    }

    /// Registers `text` under `subject` (the same schema gets the same id)
    /// and returns its id, and whether this client registered it just now
    /// (false: it had before).
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
    ) -> Result<(u32, bool)> {
        let key = (subject.to_owned(), schema_type, text.to_owned());
        if let Some(&id) = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok((id, false));
        }
        let mut body = serde_json::json!({"schema": text});
        if schema_type != SchemaType::Avro {
            body["schemaType"] = schema_type.registry_name().into();
        }
        let path = format!("/subjects/{}/versions", encode_path(subject));
        let (status, answer) = self.request("POST", &path, Some(body.to_string().as_bytes()))?;
        if status == 409 || status == 422 {
            return Err(Error::Schema(format!(
                "the schema registry at {} refused the schema for subject {subject:?} \
                 ({}): {}. The schema: {text}",
                self.url,
                status,
                api_message(&answer)
            )));
        }
        if status != 200 {
            return Err(self.refused(status, &answer));
        }
        let id = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| {
                Error::Schema(format!(
                    "the schema registry at {} answered a registration without an id",
                    self.url
                ))
            })?;
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), id);
        Ok((id, true))
    }

    /// The error of an answer other than the one hoped for.
    fn refused(&self, status: u16, body: &[u8]) -> Error {
        let message = self.scrub(&api_message(body));
        match status {
            401 | 403 => Error::Config(format!(
                "the schema registry at {} refused the credentials (HTTP {status}: {message}): \
                 check basic.auth.user.info",
                self.url
            )),
            _ => Error::Kafka {
                message: format!(
                    "the schema registry at {} answered HTTP {status}: {message}",
                    self.url
                ),
                code: "SchemaRegistry".into(),
                retriable: status >= 500,
                fatal: false,
            },
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// The error of a TLS handshake the registry ended: a client
    /// certificate it asked for and did not get, or refused.
    fn tls_refused(&self, e: &std::io::Error) -> Option<Error> {
        use rustls::AlertDescription as A;
        let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        let rustls::Error::AlertReceived(alert) = tls else {
            return None;
        };
        let refused_certificate = matches!(
            alert,
            A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::AccessDenied
                | A::DecryptError
                | A::HandshakeFailure
        );
        match (refused_certificate, self.client_certificate) {
            (false, _) => None,
            (true, false) => Some(Error::Config(format!(
                "the schema registry at {} asks for a client certificate (TLS alert {alert:?}): \
                 set {CERTIFICATE_LOCATION} and {KEY_LOCATION} to your PEM certificate and key",
                self.url
            ))),
            (true, true) => Some(Error::Config(format!(
                "the schema registry at {} refused the client certificate (TLS alert \
                 {alert:?}): check that {CERTIFICATE_LOCATION} is signed by a CA the registry \
                 trusts and that {KEY_LOCATION} is its key",
                self.url
            ))),
        }
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> Error {
        Error::Kafka {
            message: format!(
                "could not reach the schema registry at {} within {:.1}s ({}): check \
                 schema.registry.url and that the registry is running",
                self.url,
                self.timeout.as_secs_f64(),
                self.scrub(&why.to_string())
            ),
            code: "SchemaRegistry".into(),
            retriable: true,
            fatal: false,
        }
    }

    /// One request; the status and the body of the answer.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
        let deadline = Instant::now() + self.timeout;
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| self.unreachable(e))?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            self.unreachable(last.map_or("no address".to_owned(), |e| e.to_string()))
        })?;
        let _ = stream.set_nodelay(true);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| self.unreachable(e))?;
        stream
            .set_write_timeout(Some(left))
            .map_err(|e| self.unreachable(e))?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.schemaregistry.v1+json, application/json\r\nUser-Agent: tskafka\r\nConnection: close\r\n",
            self.base_path, self.host
        );
        if let Some(auth) = &self.authorization {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.unwrap_or_default());
        let answer = match &self.tls {
            Some(config) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                    Error::Config(format!("schema.registry.url host {:?}: {e}", self.host))
                })?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| self.unreachable(e))?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                exchange(&mut tls, &request)
            }
            None => {
                let mut plain = stream;
                exchange(&mut plain, &request)
            }
        }
        .map_err(|e| {
            if let Some(refused) = self.tls_refused(&e) {
                refused
            } else if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                Error::Timeout(format!(
                    "the schema registry at {} did not answer within {:.1}s",
                    self.url,
                    self.timeout.as_secs_f64()
                ))
            } else {
                self.unreachable(e)
            }
        })?;
        parse_response(&answer).ok_or_else(|| self.unreachable("the answer is not HTTP/1.1"))
    }
}

/// A schema registered for a send.
#[derive(Debug)]
pub struct SendSchema {
    pub id: u32,
    pub text: String,
    /// What the user should hear about it, the first time this client
    /// registers it (columns renamed for Avro).
    pub warning: Option<String>,
}

/// For a send in `format`: the schema registered for `topic`'s values, from
/// `given` or derived from the frame's `schema`; None for formats without
/// a registry.
pub fn register_for_send(
    registry: Option<&RegistryClient>,
    format: Format,
    topic: &str,
    schema: &arrow_schema::Schema,
    subject: Option<&str>,
    given: Option<&str>,
) -> Result<Option<SendSchema>> {
    if !format.uses_registry() {
        if subject.is_some() || given.is_some() {
            return Err(Error::Config(
                "subject= and schema= go with format='avro' or 'json_schema'".into(),
            ));
        }
        return Ok(None);
    }
    let Some(registry) = registry else {
        return Err(Error::Config(format!(
            "format={:?} registers a schema: add 'schema.registry.url' to the config",
            match format {
                Format::Avro => "avro",
                _ => "json_schema",
            }
        )));
    };
    let subject = subject.map_or_else(|| format!("{topic}-value"), str::to_owned);
    let mut renamed = Vec::new();
    let (schema_type, text) = match (format, given) {
        (Format::Avro, Some(text)) => {
            crate::codec::avro::AvroType::parse(text, &[])
                .map_err(|e| Error::Schema(format!("schema= is not a valid Avro schema: {e}")))?;
            // The frame's columns must fit before anything is registered.
            let empty = arrow_array::RecordBatch::new_empty(Arc::new(schema.clone()));
            crate::codec::avro::RowWriter::new(0, text, &empty)?;
            (SchemaType::Avro, text.to_owned())
        }
        (Format::Avro, None) => {
            let (text, columns) = crate::codec::avro::avro_schema_for(schema, &subject)?;
            renamed = columns;
            (SchemaType::Avro, text)
        }
        (_, Some(text)) => {
            serde_json::from_str::<Value>(text)
                .map_err(|e| Error::Schema(format!("schema= is not JSON: {e}")))?;
            (SchemaType::Json, text.to_owned())
        }
        (_, None) => (
            SchemaType::Json,
            crate::codec::json_schema::json_schema_for(schema, &subject)?,
        ),
    };
    let (id, first_time) = registry.register(&subject, schema_type, &text)?;
    let warning = first_time
        .then(|| crate::codec::avro::renamed_columns_warning(&renamed))
        .flatten();
    Ok(Some(SendSchema { id, text, warning }))
}

impl SchemaSource for RegistryClient {
    fn schema(&self, id: u32) -> std::result::Result<Arc<RegisteredSchema>, FetchError> {
        self.fetch(id)
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(answer),
        // A server that closes without TLS close_notify: the answer is whole
        // when its length says so.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => Ok(answer),
        Err(e) => Err(e),
    }
}

/// Status and body of an HTTP/1.1 answer (Content-Length, chunked, or to the end).
fn parse_response(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (k, v) = line.split_once(':')?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        }
    }
    let rest = &answer[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut at = rest;
        loop {
            let line_end = at.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&at[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = &at[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(at.get(..size)?);
            at = at.get(size + 2..)?;
        }
        body
    } else {
        match length {
            Some(n) => rest.get(..n)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some((status, body))
}

/// The `message` of a registry's error body, else the body as text.
fn api_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn encode_path(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tls_config(options: &ClientOptions) -> Result<Arc<rustls::ClientConfig>> {
    let ca_location = options.ca_location.as_deref();
    let mut roots = rustls::RootCertStore::empty();
    let files: Vec<&Path> = match ca_location {
        Some(p) => vec![p],
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .filter(|p| p.exists())
            .take(1)
            .collect(),
    };
    for path in &files {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "cannot read schema.registry.ssl.ca.location {}: {e}",
                path.display()
            ))
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() {
        return Err(Error::Config(match ca_location {
            Some(p) => format!(
                "schema.registry.ssl.ca.location {} holds no PEM certificate",
                p.display()
            ),
            None => "an https schema registry needs CA certificates: set \
                     schema.registry.ssl.ca.location to a PEM file"
                .to_owned(),
        }));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let config = match &options.certificate_location {
        None => {
            if options.key_location.is_some() {
                return Err(Error::Config(format!(
                    "{KEY_LOCATION} is set without {CERTIFICATE_LOCATION}: give the client \
                     certificate (PEM) that goes with the key"
                )));
            }
            builder.with_no_client_auth()
        }
        Some(cert_path) => {
            let (certs, key) = client_identity(cert_path, options.key_location.as_deref())?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::Config(format!(
                    "{CERTIFICATE_LOCATION} {} and its key do not make a usable TLS client \
                     identity: {e}",
                    cert_path.display()
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

/// A client certificate (chain) and its key, from PEM files (the key in
/// the certificate's file when `key_path` is None).
fn client_identity(
    cert_path: &Path,
    key_path: Option<&Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let read = |path: &Path, key: &str| {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {key} {}: {e}", path.display())))
    };
    let cert_pem = read(cert_path, CERTIFICATE_LOCATION)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .flatten()
        .collect();
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{CERTIFICATE_LOCATION} {} holds no PEM certificate ('-----BEGIN \
             CERTIFICATE-----')",
            cert_path.display()
        )));
    }
    let (key_pem, key_name, key_file) = match key_path {
        Some(p) => (read(p, KEY_LOCATION)?, KEY_LOCATION, p),
        None => (cert_pem, CERTIFICATE_LOCATION, cert_path),
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::Config(format!(
            "{key_name} {} holds no usable private key ({e}): expected an unencrypted PEM \
             'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'{}",
            key_file.display(),
            if key_path.is_none() {
                format!("; or set {KEY_LOCATION}")
            } else {
                String::new()
            }
        ))
    })?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn answers_are_read_with_a_length_chunked_or_to_the_end() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse_response(r), Some((200, b"{}".to_vec())));
        let r = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((404, b"abcde".to_vec())));
        let r = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert_eq!(parse_response(r), Some((200, b"all of it".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn settings_lose_the_registry_keys_and_bad_urls_are_named() {
        let mut s = Settings::new();
        s.set("bootstrap.servers", "x:1")
            .set(URL, "http://localhost:8081/base/")
            .set("basic.auth.user.info", "me:secret")
            .set("basic.auth.credentials.source", "USER_INFO");
        let client = take_from(&mut s).unwrap().unwrap();
        assert_eq!(s.iter().count(), 1);
        assert_eq!(client.url(), "http://localhost:8081/base");
        assert_eq!(client.base_path, "/base");
        assert_eq!(client.port, 8081);
        assert!(!format!("{client:?}").contains("secret"));
        let err = RegistryClient::new("localhost:8081", &ClientOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://"), "{err}");
        let nocolon = ClientOptions {
            user_info: Some("nocolon".into()),
            ..ClientOptions::default()
        };
        let err = RegistryClient::new("http://h:1", &nocolon)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user:password") && !err.contains("nocolon"),
            "{err}"
        );
        let mut s = Settings::new();
        s.set("basic.auth.user.info", "me:secret");
        assert!(take_from(&mut s).is_err());
    }

    fn client_of(pairs: &[(&str, &str)]) -> Result<Arc<RegistryClient>> {
        let mut s = Settings::new();
        for (k, v) in pairs {
            s.set(*k, *v);
        }
        take_from(&mut s).map(|c| c.unwrap())
    }

    fn basic(user_info: &str) -> Option<String> {
        Some(format!("Basic {}", base64(user_info.as_bytes())))
    }

    #[test]
    fn credentials_come_from_where_the_source_says() {
        let url = "http://key:p%40ss@localhost:8081/base";
        // Credentials in the URL work without a source too, and never show.
        for source in [None, Some("URL"), Some("url")] {
            let mut pairs = vec![(URL, url)];
            if let Some(s) = source {
                pairs.push(("basic.auth.credentials.source", s));
            }
            let c = client_of(&pairs).unwrap();
            assert_eq!(c.url(), "http://localhost:8081/base");
            assert_eq!(c.authorization, basic("key:p@ss"));
            assert_eq!(c.scrub("x key:p@ss p@ss"), "x *** ***");
            assert!(!format!("{c:?}").contains("p@ss") && !format!("{c:?}").contains("key"));
        }
        let c = client_of(&[
            (URL, "http://localhost:1"),
            ("basic.auth.user.info", "me:pw"),
            ("basic.auth.credentials.source", "USER_INFO"),
        ])
        .unwrap();
        assert_eq!(c.authorization, basic("me:pw"));
        let mut s = Settings::new();
        s.set(URL, "http://localhost:1")
            .set("sasl.username", "api-key")
            .set("sasl.password", "api-secret")
            .set(
                "schema.registry.basic.auth.credentials.source",
                "SASL_INHERIT",
            );
        let c = take_from(&mut s).unwrap().unwrap();
        assert_eq!(c.authorization, basic("api-key:api-secret"));
        // librdkafka still gets its SASL settings.
        assert_eq!(s.get("sasl.password"), Some("api-secret"));

        let err = |pairs: &[(&str, &str)]| client_of(pairs).unwrap_err().to_string();
        let e = err(&[
            (URL, "http://localhost:1"),
            ("basic.auth.credentials.source", "URL"),
        ]);
        assert!(e.contains("holds no credentials"), "{e}");
        let e = err(&[
            (URL, "http://localhost:1"),
            ("basic.auth.credentials.source", "SASL_INHERIT"),
        ]);
        assert!(e.contains("sasl.username and sasl.password"), "{e}");
        let e = err(&[
            (URL, "http://localhost:1"),
            ("basic.auth.credentials.source", "BEARER"),
        ]);
        assert!(e.contains("\"BEARER\"") && e.contains("USER_INFO"), "{e}");
        let e = err(&[(URL, url), ("basic.auth.user.info", "me:pw")]);
        assert!(e.contains("given twice") && !e.contains("p%40ss"), "{e}");
        let e = err(&[(URL, "ftp://key:s3cret@h")]);
        assert!(e.contains("http://") && !e.contains("s3cret"), "{e}");
        let e = err(&[(URL, "http://localhost:1"), (CERTIFICATE_LOCATION, "c.pem")]);
        assert!(e.contains("not https://"), "{e}");
        let e = err(&[
            (URL, "https://localhost:1"),
            (CA_LOCATION[0], "/nonexistent/ca.pem"),
            (KEY_PASSWORD, "pw"),
        ]);
        assert!(
            e.contains("encrypted private key") && !e.contains("pw\""),
            "{e}"
        );
        let mut s = Settings::new();
        s.set(CERTIFICATE_LOCATION, "c.pem");
        let e = take_from(&mut s).unwrap_err().to_string();
        assert!(e.contains("schema.registry.url is not"), "{e}");
    }

    #[test]
    fn a_registry_that_is_not_there_is_a_clear_error_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = RegistryClient::new(
            &format!("http://127.0.0.1:{port}"),
            &ClientOptions::default(),
        )
        .unwrap()
        .with_timeout(Duration::from_secs(2));
        let started = Instant::now();
        let err = client.fetch(1).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(matches!(err, FetchError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("could not reach"), "{err}");
    }
}
