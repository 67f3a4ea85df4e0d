//! One error type for the native core. The bindings turn it into the Python
//! exception tree declared in `python/tskafka/exceptions.py`.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{message}")]
    Kafka {
        message: String,
        code: String,
        retriable: bool,
        fatal: bool,
    },
    #[error("{message}")]
    Produce {
        message: String,
        rows_failed: u64,
        rows_delivered: u64,
    },
    #[error("cannot decode message at {topic}[{partition}]@{offset}: {reason}")]
    Decode {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
        payload: Vec<u8>,
    },
    #[error("{0}")]
    Schema(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Broker(String),
    /// The process could not start a thread (too many threads, or no memory for its stack).
    #[error("the process could not start a thread for {what}: {reason}")]
    Thread { what: &'static str, reason: String },
    /// Work ended because its owner asked it to stop (a replay's or a
    /// background reader's stop); not a failure.
    #[error("stopped on request")]
    Stopped,
    /// An error raised by the caller's own code while the core waited or
    /// called back: a signal check (KeyboardInterrupt), a callback's
    /// exception. Handed back to the caller as it was.
    #[error("{0}")]
    Caller(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn caller(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Caller(Box::new(err))
    }

    pub fn thread(what: &'static str, err: &std::io::Error) -> Self {
        Error::Thread {
            what,
            reason: err.to_string(),
        }
    }

    pub fn kafka(context: impl std::fmt::Display, err: &RdError) -> Self {
        let code = err.rdkafka_error_code();
        let retriable = code.is_some_and(is_retriable);
        let fatal = matches!(code, Some(RDKafkaErrorCode::Fatal));
        Error::Kafka {
            message: format!("{context}: {err}"),
            code: code.map_or_else(|| "Unknown".to_owned(), |c| format!("{c:?}")),
            retriable,
            fatal,
        }
    }

    /// The same error with its message rewritten by `f` (a Kafka error
    /// keeps its code and flags); kinds without a message stay as they are.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Config(m) => Error::Config(f(m)),
            Error::Timeout(m) => Error::Timeout(f(m)),
            Error::Schema(m) => Error::Schema(f(m)),
            Error::Kafka {
                message,
                code,
                retriable,
                fatal,
            } => Error::Kafka {
                message: f(message),
                code,
                retriable,
                fatal,
            },
            other => other,
        }
    }

    pub fn kafka_code(context: impl std::fmt::Display, code: RDKafkaErrorCode) -> Self {
        Error::Kafka {
            message: format!("{context}: {code}"),
            code: format!("{code:?}"),
            retriable: is_retriable(code),
            fatal: matches!(code, RDKafkaErrorCode::Fatal),
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(err: arrow_schema::ArrowError) -> Self {
        Error::Schema(err.to_string())
    }
}

fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        QueueFull
            | MessageTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | LeaderNotAvailable
            | NotLeaderForPartition
            | NetworkException
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | NotCoordinator
            | CoordinatorNotAvailable
            | CoordinatorLoadInProgress
            | OperationTimedOut
            | UnknownTopicOrPartition
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_cannot_start_says_so() {
        let io = std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "Resource temporarily unavailable",
        );
        let message = Error::thread("the replay", &io).to_string();
        assert_eq!(
            message,
            "the process could not start a thread for the replay: Resource temporarily unavailable"
        );
    }

    #[test]
    fn a_caller_error_comes_back_as_it_was() {
        #[derive(Debug, thiserror::Error)]
        #[error("mine")]
        struct Mine;
        let Error::Caller(inner) = Error::caller(Mine) else {
            panic!("not a caller error");
        };
        assert!(inner.downcast::<Mine>().is_ok());
    }
}
