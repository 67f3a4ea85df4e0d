//! An embedded Kafka-compatible broker (Tansu) on a background tokio runtime.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rama::{Context, Service};
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_broker::service::{auth, coordinator, storage as storage_routes};
use tansu_sans_io::{Body, Frame, Header};
use tansu_service::FrameRouteService;
use tansu_storage::{BrokerRegistrationRequest, Storage, StorageContainer};
use url::Url;

use crate::security::Listener;
use crate::storage::Corrected;

use crate::error::{Error, Result};

pub struct EmbeddedBroker {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
    registration: Option<crate::in_process::Registration>,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Broker(format!("cannot find a free loopback port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| Error::Broker(e.to_string()))?
        .port())
}

/// In memory by default; a file path keeps topics and offsets in SQLite.
pub(crate) fn storage_url(storage: Option<&str>) -> Result<Url> {
    let memory = || Url::parse("memory://tansu/").expect("valid url");
    match storage {
        None | Some("memory") | Some("memory://") => Ok(memory()),
        Some(path) => {
            let path = std::path::absolute(path)
                .map_err(|e| Error::Config(format!("storage path {path:?}: {e}")))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Config(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            // Tansu joins the URL path to the working directory; a leading
            // "//" keeps an absolute path absolute.
            Url::parse(&format!("sqlite:///{}", path.display())).map_err(|e| {
                Error::Config(format!(
                    "storage path {} is not usable: {e}",
                    path.display()
                ))
            })
        }
    }
}

const CLUSTER: &str = "tskafka";

/// Tansu's routes with two answers changed: ApiVersions comes without its
/// optional tagged fields (features, ZK migration), which librdkafka before
/// 2.1, as in Debian's kcat, misreads (clients take absent fields as their
/// defaults); and fetches are answered by `fetch::answer` (at once when
/// records are there, where Tansu's fetch slept on a timer every time).
#[derive(Clone)]
struct Adjusted<S> {
    routes: S,
    storage: Corrected,
}

impl<S> Service<(), Frame> for Adjusted<S>
where
    S: Service<(), Frame, Response = Frame>,
    S::Error: From<tansu_storage::Error> + From<tansu_sans_io::Error>,
{
    type Response = Frame;
    type Error = S::Error;

    async fn serve(&self, ctx: Context<()>, req: Frame) -> std::result::Result<Frame, S::Error> {
        if let Body::FetchRequest(fetch) = &req.body {
            let answer = crate::fetch::answer(&self.storage, fetch).await?;
            return Ok(Frame {
                size: 0,
                header: Header::Response {
                    correlation_id: req.correlation_id()?,
                },
                body: Body::FetchResponse(answer),
            });
        }
        let mut frame = self.routes.serve(ctx, req).await?;
        if let Body::ApiVersionsResponse(r) = &mut frame.body {
            r.supported_features = None;
            r.finalized_features_epoch = None;
            r.finalized_features = None;
            r.zk_migration_ready = None;
        }
        Ok(frame)
    }
}

/// Tansu's storage behind `storage`, corrected, with this broker registered.
pub(crate) async fn open_storage(
    port: u16,
    storage: Url,
) -> std::result::Result<Corrected, String> {
    let url = Url::parse(&format!("tcp://127.0.0.1:{port}")).expect("valid url");
    let in_memory = storage.scheme() == "memory";
    let storage = StorageContainer::builder()
        .cluster_id(CLUSTER)
        .node_id(1)
        .advertised_listener(url)
        .storage(storage)
        .silent(true)
        .build()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let storage = Corrected::new(storage, in_memory);
    storage
        .register_broker(BrokerRegistrationRequest {
            broker_id: 1,
            cluster_id: CLUSTER.into(),
            incarnation_id: uuid::Uuid::new_v4(),
            rack: None,
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(storage)
}

/// Accepts Kafka connections on 127.0.0.1:`port` until the runtime stops.
async fn serve(port: u16, storage: Url, security: Listener) -> std::result::Result<(), String> {
    let storage = open_storage(port, storage).await?;
    let groups = Controller::with_storage(storage.clone()).map_err(|e| format!("{e:?}"))?;
    // tansu_broker::service::services, with the answers of `Adjusted`.
    let routes = storage_routes::services(FrameRouteService::builder(), storage.clone())
        .and_then(|b| coordinator::services(b, groups))
        .and_then(auth::services)
        .and_then(|b| b.build().map_err(Into::into))
        .map_err(|e| format!("{e:?}"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut maintenance = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = Adjusted {
                    routes: routes.clone(),
                    storage: storage.clone(),
                };
                tokio::spawn(security.clone().serve(stream, service));
            }
            _ = maintenance.tick() => {
                let storage = storage.clone();
                tokio::spawn(async move { let _ = storage.maintain(std::time::SystemTime::now()).await; });
            }
        }
    }
}

impl EmbeddedBroker {
    /// Starts listening on 127.0.0.1:`port` (a free port if None) and returns
    /// once the broker accepts connections.
    /// `security` adds TLS and SASL/PLAIN to the listener.
    pub fn start(
        port: Option<u16>,
        storage: Option<&str>,
        security: Listener,
        timeout: Duration,
    ) -> Result<Self> {
        let storage = storage_url(storage)?;
        let port = match port {
            Some(p) => {
                TcpListener::bind(("127.0.0.1", p)).map_err(|e| {
                    Error::Broker(format!(
                        "port {p} is not free on 127.0.0.1 ({e}): pick another port, \
                         or port=None for any free one"
                    ))
                })?;
                p
            }
            None => free_port()?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tskafka-broker")
            .enable_all()
            .build()
            .map_err(|e| Error::Broker(format!("cannot start the broker's runtime: {e}")))?;
        let task = runtime.spawn(serve(port, storage, security));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        loop {
            if task.is_finished() {
                let why = match runtime.block_on(task) {
                    Ok(Ok(())) => "it stopped".to_owned(),
                    Ok(Err(e)) => e,
                    Err(e) => e.to_string(),
                };
                runtime.shutdown_background();
                return Err(Error::Broker(format!(
                    "the embedded broker failed to start on port {port}: {why}"
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                runtime.shutdown_background();
                return Err(Error::Broker(format!(
                    "the embedded broker did not listen on port {port} within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            runtime: Some(runtime),
            port,
            registration: Some(crate::in_process::register(port)),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops serving and closes the listening socket; data in memory is gone.
    pub fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
            self.registration = None;
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tansu_sans_io::{ApiVersionsRequest, Header};

    #[test]
    fn api_versions_v3_has_no_tagged_fields() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let storage = rt
            .block_on(open_storage(0, storage_url(None).unwrap()))
            .unwrap();
        let routes = FrameRouteService::<(), tansu_broker::Error>::builder()
            .build()
            .unwrap();
        let req = Frame {
            size: 0,
            header: Header::Request {
                api_key: 18,
                api_version: 3,
                correlation_id: 7,
                client_id: None,
            },
            body: Body::ApiVersionsRequest(ApiVersionsRequest::default()),
        };
        let frame = rt
            .block_on(Adjusted { routes, storage }.serve(Context::default(), req))
            .unwrap();
        let bytes = Frame::response(frame.header, frame.body, 18, 3).unwrap();
        // throttle_time_ms, then a zero count of top-level tagged fields
        assert_eq!(bytes[bytes.len() - 5..], [0, 0, 0, 0, 0]);
    }

    #[test]
    fn only_this_process_brokers_count_as_embedded() {
        let mut broker =
            EmbeddedBroker::start(None, None, Listener::default(), Duration::from_secs(10))
                .unwrap();
        let own = broker.bootstrap_servers();
        assert!(crate::in_process::serves_every(&own));
        broker.shutdown();
        assert!(!crate::in_process::serves_every(&own));
    }
}
