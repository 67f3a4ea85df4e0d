//! TLS and SASL/PLAIN for the embedded broker: the server certificate, the
//! users and their passwords, and a per-connection gate that authenticates
//! a client before any other request reaches the broker.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use std::time::Duration;

use rama::{Context, Service};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tansu_sans_io::{
    ApiKey as _, ApiVersionsRequest, Body, ErrorCode, Frame, Header, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The only SASL mechanism the embedded broker offers.
pub const MECHANISM: &str = "PLAIN";

/// What a client is told when its name or password is wrong (never which).
pub const AUTH_FAILED: &str = "Authentication failed: invalid username or password";

/// How a broker's listener is secured, in `security.protocol` terms.
pub fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (tls, sasl) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// How the broker's listener is secured: TLS, SASL/PLAIN users, both or neither.
#[derive(Clone, Default)]
pub struct Listener {
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: Option<Arc<Users>>,
}

/// A client that connects but does not finish its TLS handshake is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Listener {
    pub fn new(tls: Option<Arc<rustls::ServerConfig>>, users: Users) -> Self {
        Self {
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            users: (!users.is_empty()).then(|| Arc::new(users)),
        }
    }

    pub fn security_protocol(&self) -> &'static str {
        security_protocol(self.tls.is_some(), self.users.is_some())
    }

    /// Serves Kafka requests on one accepted connection with `routes`,
    /// behind TLS and the SASL gate as configured, until the client hangs up.
    pub async fn serve<S>(self, stream: TcpStream, routes: S)
    where
        S: Service<(), Frame, Response = Frame>,
        S::Error: ConnectionError,
    {
        match (self.tls, self.users) {
            (None, None) => crate::wire::run(stream, routes).await,
            (None, Some(users)) => crate::wire::run(stream, SaslGate::new(routes, users)).await,
            (Some(tls), users) => {
                let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
                // A failed handshake is the client's to report (wrong CA, plaintext client).
                let Ok(Ok(stream)) = accepted else { return };
                match users {
                    None => crate::wire::run(stream, routes).await,
                    Some(users) => crate::wire::run(stream, SaslGate::new(routes, users)).await,
                }
            }
        }
    }
}

/// What the broker's framing (`wire`) needs of a service's error.
pub trait ConnectionError:
    From<tansu_service::Error>
    + From<std::io::Error>
    + From<tansu_sans_io::Error>
    + From<tokio::task::JoinError>
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<E> ConnectionError for E where
    E: From<tansu_service::Error>
        + From<std::io::Error>
        + From<tansu_sans_io::Error>
        + From<tokio::task::JoinError>
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A TLS server configuration from a PEM certificate (chain) and private key.
pub fn server_tls(certfile: &Path, keyfile: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(certfile)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "certfile {} is not valid PEM: {e}",
                certfile.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "certfile {} holds no certificate: expected PEM '-----BEGIN CERTIFICATE-----' \
             blocks (the server certificate first, then its chain)",
            certfile.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(keyfile)?).map_err(|e| {
        Error::Config(format!(
            "keyfile {} holds no usable private key ({e}): expected an unencrypted PEM \
             'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'",
            keyfile.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Config(format!(
                "certfile {} and keyfile {} do not make a usable TLS identity: {e}",
                certfile.display(),
                keyfile.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// Names and passwords a client may authenticate with.
#[derive(Clone, Default)]
pub struct Users(BTreeMap<String, String>);

impl Users {
    pub fn new(users: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (name, password) in users {
            if name.is_empty() || name.contains('\0') {
                return Err(Error::Config(format!(
                    "user name {name:?} is not usable: it must be non-empty and hold no NUL"
                )));
            }
            if password.is_empty() || password.contains('\0') {
                return Err(Error::Config(format!(
                    "the password of user {name:?} must be non-empty and hold no NUL"
                )));
            }
            map.insert(name, password);
        }
        Ok(Self(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Checks SASL/PLAIN `auth_bytes` (`authzid NUL user NUL password`); the
    /// user's name on success. An authorization id other than the user is refused.
    pub fn check_plain(&self, auth_bytes: &[u8]) -> Option<&str> {
        let mut parts = auth_bytes.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !authzid.is_empty() && authzid != user {
            return None;
        }
        let user = std::str::from_utf8(user).ok()?;
        // Compare against a dummy for unknown users, so the time taken does
        // not tell which names exist.
        let (name, expected) = match self.0.get_key_value(user) {
            Some((name, expected)) => (Some(name.as_str()), expected.as_bytes()),
            None => (None, &b"\0"[..]),
        };
        let matches: bool = expected.ct_eq(password).into();
        name.filter(|_| matches)
    }
}

/// Per-connection progress through SASL.
const NEW: u8 = 0;
const HANDSHAKEN: u8 = 1;
const AUTHENTICATED: u8 = 2;

/// Answers SaslHandshake (PLAIN only) and SaslAuthenticate itself and lets
/// nothing but ApiVersions through to `inner` until the client has
/// authenticated; any other request before that closes the connection.
/// One gate per connection.
pub struct SaslGate<S> {
    inner: S,
    users: Arc<Users>,
    stage: AtomicU8,
}

impl<S> SaslGate<S> {
    pub fn new(inner: S, users: Arc<Users>) -> Self {
        Self {
            inner,
            users,
            stage: AtomicU8::new(NEW),
        }
    }

    fn handshake(&self, req: &SaslHandshakeRequest) -> Body {
        let supported = req.mechanism == MECHANISM;
        if supported {
            self.stage.store(HANDSHAKEN, Ordering::SeqCst);
        }
        SaslHandshakeResponse::default()
            .error_code(if supported {
                ErrorCode::None.into()
            } else {
                ErrorCode::UnsupportedSaslMechanism.into()
            })
            .mechanisms(Some(vec![MECHANISM.to_owned()]))
            .into()
    }

    fn authenticate(&self, req: &SaslAuthenticateRequest) -> Body {
        let response = SaslAuthenticateResponse::default()
            .auth_bytes(Default::default())
            .session_lifetime_ms(Some(0));
        let (code, message) = if self.stage.load(Ordering::SeqCst) != HANDSHAKEN {
            (
                ErrorCode::IllegalSaslState,
                "SaslAuthenticate before a SaslHandshake for PLAIN".to_owned(),
            )
        } else if self.users.check_plain(&req.auth_bytes).is_some() {
            self.stage.store(AUTHENTICATED, Ordering::SeqCst);
            return response.error_code(ErrorCode::None.into()).into();
        } else {
            self.stage.store(NEW, Ordering::SeqCst);
            (ErrorCode::SaslAuthenticationFailed, AUTH_FAILED.to_owned())
        };
        response
            .error_code(code.into())
            .error_message(Some(message))
            .into()
    }
}

impl<S> Service<(), Frame> for SaslGate<S>
where
    S: Service<(), Frame, Response = Frame>,
    S::Error: From<tansu_service::Error>,
{
    type Response = Frame;
    type Error = S::Error;

    async fn serve(&self, ctx: Context<()>, req: Frame) -> std::result::Result<Frame, S::Error> {
        let Header::Request {
            api_key,
            api_version,
            correlation_id,
            ..
        } = req.header
        else {
            return self.inner.serve(ctx, req).await;
        };
        let answer = match &req.body {
            // v0 sends the SASL tokens unframed, which this gate does not read.
            Body::SaslHandshakeRequest(r) if api_version >= 1 => Some(self.handshake(r)),
            Body::SaslAuthenticateRequest(r) => Some(self.authenticate(r)),
            _ => None,
        };
        if let Some(body) = answer {
            return Ok(Frame {
                size: 0,
                header: Header::Response { correlation_id },
                body,
            });
        }
        if self.stage.load(Ordering::SeqCst) == AUTHENTICATED
            || api_key == ApiVersionsRequest::KEY
        {
            return self.inner.serve(ctx, req).await;
        }
        Err(tansu_service::Error::Message(format!(
            "request (api key {api_key}) before SASL authentication: connection closed"
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::new([("alice".to_owned(), "s3cret".to_owned())]).unwrap()
    }

    #[test]
    fn plain_accepts_the_right_password_only() {
        let u = users();
        assert_eq!(u.check_plain(b"\0alice\0s3cret"), Some("alice"));
        assert_eq!(u.check_plain(b"alice\0alice\0s3cret"), Some("alice"));
        assert_eq!(u.check_plain(b"\0alice\0s3creT"), None);
        assert_eq!(u.check_plain(b"\0alice\0s3cret2"), None);
        assert_eq!(u.check_plain(b"\0alice\0"), None);
        assert_eq!(u.check_plain(b"\0bob\0s3cret"), None);
        // Another authorization id, too few or too many fields, no user.
        assert_eq!(u.check_plain(b"bob\0alice\0s3cret"), None);
        assert_eq!(u.check_plain(b"alice\0s3cret"), None);
        assert_eq!(u.check_plain(b"\0alice\0s3cret\0x"), None);
        assert_eq!(u.check_plain(b""), None);
        assert_eq!(Users::default().check_plain(b"\0\0\0"), None);
    }

    #[test]
    fn users_must_be_usable() {
        assert!(Users::new([(String::new(), "p".to_owned())]).is_err());
        assert!(Users::new([("a".to_owned(), String::new())]).is_err());
        assert!(Users::new([("a\0b".to_owned(), "p".to_owned())]).is_err());
        let err = Users::new([("a".to_owned(), "p\0w".to_owned())])
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("p\0w"), "{err}");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(security_protocol(true, true), "SASL_SSL");
        assert_eq!(security_protocol(false, true), "SASL_PLAINTEXT");
        assert_eq!(security_protocol(true, false), "SSL");
        assert_eq!(security_protocol(false, false), "PLAINTEXT");
    }

    #[test]
    fn bad_tls_files_are_config_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("tskafka-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = server_tls(&cert, &key).err().unwrap().to_string();
        assert!(err.contains("cert.pem") && err.contains("no certificate"), "{err}");
        let err = server_tls(&dir.join("missing.pem"), &key)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
