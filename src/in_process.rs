//! Brokers serving inside this process. The embedded broker registers its
//! port while it listens; clients ask whether their bootstrap servers are all
//! such brokers (a cluster of one, in this process), where librdkafka's
//! connection pacing only adds latency.

use std::sync::{Mutex, PoisonError};

static SERVING: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A port registered as served in this process, until dropped.
#[derive(Debug)]
pub struct Registration {
    port: u16,
}

pub fn register(port: u16) -> Registration {
    SERVING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(port);
    Registration { port }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut serving = SERVING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = serving.iter().position(|&p| p == self.port) {
            serving.swap_remove(at);
        }
    }
}

/// Whether every server of a `bootstrap.servers` list is a broker serving
/// in this process on 127.0.0.1.
pub fn serves_every(bootstrap_servers: &str) -> bool {
    let serving = SERVING.lock().unwrap_or_else(PoisonError::into_inner);
    bootstrap_servers.split(',').all(|server| {
        server
            .trim()
            .strip_prefix("127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .is_some_and(|port: u16| serving.contains(&port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_ports_count() {
        let own = register(1);
        assert!(serves_every("127.0.0.1:1"));
        assert!(serves_every("127.0.0.1:1, 127.0.0.1:1"));
        assert!(!serves_every("127.0.0.1:2"));
        assert!(!serves_every("127.0.0.1:1,127.0.0.1:2"));
        assert!(!serves_every("localhost:1"));
        drop(own);
        assert!(!serves_every("127.0.0.1:1"));
    }
}
