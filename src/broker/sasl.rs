//! SASL/PLAIN for the embedded broker: the users and their passwords, and a
//! per-connection gate that answers SaslHandshake and SaslAuthenticate and
//! lets nothing but ApiVersions through before the client has authenticated.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;
use subtle::ConstantTimeEq;

use super::routes::text;
use crate::error::{Error, Result};

/// The only SASL mechanism the embedded broker offers.
pub const MECHANISM: &str = "PLAIN";

/// What a client is told when its name or password is wrong (never which).
pub const AUTH_FAILED: &str = "Authentication failed: invalid username or password";

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Handshaken,
    Authenticated,
}

/// One connection's progress through SASL; without users, everything passes.
pub struct Gate {
    users: Option<Arc<Users>>,
    stage: Stage,
}

impl Gate {
    pub fn new(users: Option<Arc<Users>>) -> Self {
        Self {
            users,
            stage: Stage::New,
        }
    }

    /// Whether a request of this kind may reach the broker now.
    pub fn admits(&self, key: ApiKey) -> bool {
        self.users.is_none() || self.stage == Stage::Authenticated || key == ApiKey::ApiVersions
    }

    /// The answer to a SASL request (None for any other request).
    pub fn answer(&mut self, request: &RequestKind, version: i16) -> Option<ResponseKind> {
        match request {
            RequestKind::SaslHandshake(r) => {
                Some(ResponseKind::SaslHandshake(self.handshake(r, version)))
            }
            RequestKind::SaslAuthenticate(r) => {
                Some(ResponseKind::SaslAuthenticate(self.authenticate(r)))
            }
            _ => None,
        }
    }

    fn handshake(&mut self, r: &SaslHandshakeRequest, version: i16) -> SaslHandshakeResponse {
        let offered = if self.users.is_some() {
            vec![text(MECHANISM)]
        } else {
            Vec::new()
        };
        // Version 0 sends the SASL tokens unframed, which this gate does not read.
        let ok = self.users.is_some() && version >= 1 && r.mechanism.as_str() == MECHANISM;
        if ok {
            self.stage = Stage::Handshaken;
        }
        SaslHandshakeResponse::default()
            .with_error_code(if ok {
                0
            } else {
                ResponseError::UnsupportedSaslMechanism.code()
            })
            .with_mechanisms(offered)
    }

    fn authenticate(&mut self, r: &SaslAuthenticateRequest) -> SaslAuthenticateResponse {
        let answer = SaslAuthenticateResponse::default();
        let (error, message) = match &self.users {
            _ if self.stage != Stage::Handshaken => (
                ResponseError::IllegalSaslState,
                "SaslAuthenticate before a SaslHandshake for PLAIN",
            ),
            Some(users) if users.check_plain(&r.auth_bytes).is_some() => {
                self.stage = Stage::Authenticated;
                return answer;
            }
            _ => {
                self.stage = Stage::New;
                (ResponseError::SaslAuthenticationFailed, AUTH_FAILED)
            }
        };
        answer
            .with_error_code(error.code())
            .with_error_message(Some(text(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::protocol::StrBytes;

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

    fn handshake(mechanism: &'static str) -> RequestKind {
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        )
    }

    fn authenticate(bytes: &'static [u8]) -> RequestKind {
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(bytes)),
        )
    }

    fn error(answer: Option<ResponseKind>) -> i16 {
        match answer.unwrap() {
            ResponseKind::SaslHandshake(r) => r.error_code,
            ResponseKind::SaslAuthenticate(r) => r.error_code,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_gate_opens_after_plain_authentication_only() {
        let mut gate = Gate::new(Some(Arc::new(users())));
        assert!(gate.admits(ApiKey::ApiVersions) && !gate.admits(ApiKey::Metadata));
        assert_eq!(
            error(gate.answer(&authenticate(b"\0alice\0s3cret"), 2)),
            ResponseError::IllegalSaslState.code()
        );
        assert_eq!(
            error(gate.answer(&handshake("SCRAM-SHA-256"), 1)),
            ResponseError::UnsupportedSaslMechanism.code()
        );
        assert_eq!(error(gate.answer(&handshake("PLAIN"), 1)), 0);
        assert_eq!(
            error(gate.answer(&authenticate(b"\0alice\0wrong"), 2)),
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(!gate.admits(ApiKey::Metadata));
        assert_eq!(error(gate.answer(&handshake("PLAIN"), 1)), 0);
        assert_eq!(error(gate.answer(&authenticate(b"\0alice\0s3cret"), 2)), 0);
        assert!(gate.admits(ApiKey::Metadata));
        let open = Gate::new(None);
        assert!(open.admits(ApiKey::Produce));
    }
}
