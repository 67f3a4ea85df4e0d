//! The broker's socket: a task per connection (behind TLS when the broker
//! has it), and the upkeep that runs beside them (group sessions, retention).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::routes::Broker;
use super::sasl::Users;

/// A client that connects but does not finish its TLS handshake is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often group sessions are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// How often retention is applied.
const RETENTION_TICK: Duration = Duration::from_secs(30);

pub async fn accept(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<TlsAcceptor>,
    users: Option<Arc<Users>>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let users = users.clone();
        let tls = tls.clone();
        let peer = peer.ip().to_string();
        tokio::spawn(async move {
            match tls {
                None => super::wire::serve(stream, broker, users, peer).await,
                Some(tls) => {
                    let accepted =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
                    // A failed handshake is the client's to report (wrong CA, plaintext client).
                    if let Ok(Ok(stream)) = accepted {
                        super::wire::serve(stream, broker, users, peer).await;
                    }
                }
            }
        });
    }
}

pub async fn maintain(broker: Arc<Broker>) {
    let mut groups = tokio::time::interval(GROUP_TICK);
    let mut retention = tokio::time::interval(RETENTION_TICK);
    loop {
        tokio::select! {
            _ = groups.tick() => broker.groups.expire(Instant::now()),
            _ = retention.tick() => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                broker.storage.apply_retention(now_ms);
            }
        }
    }
}
