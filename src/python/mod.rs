//! The Python face of the core: #[pyclass] wrappers, arguments parsed into
//! the core's option structs, Arrow <-> pyarrow conversions, and the mapping
//! of the core's errors to Python exceptions. The work itself, and every
//! thread and wait, is in the core.

mod admin;
mod background;
mod consumer;
mod convert;
mod csv_file;
mod error;
mod local_broker;
mod mock_cluster;
mod producer;
mod replay;
mod scan;
mod wait;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
pub mod _tskafka {
    #[pymodule_export]
    use super::admin::Admin;
    #[pymodule_export]
    use super::background::Background;
    #[pymodule_export]
    use super::consumer::Consumer;
    #[pymodule_export]
    use super::convert::ArrowStream;
    #[pymodule_export]
    use super::csv_file::CsvFile;
    #[pymodule_export]
    use super::local_broker::LocalBroker;
    #[pymodule_export]
    use super::mock_cluster::MockCluster;
    #[pymodule_export]
    use super::producer::{Producer, SendReport};
    #[pymodule_export]
    use super::replay::Replay;
    #[pymodule_export]
    use super::scan::{ScanRun, TopicScan};

    use super::*;

    /// Every section of a config.ini: `{section: {key: value}}`.
    #[pyfunction]
    fn read_ini_sections(
        text: &str,
    ) -> PyResult<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>
    {
        let sections = crate::client::Settings::ini_sections(text)?;
        Ok(sections
            .into_iter()
            .map(|(name, s)| {
                let values = s
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (name, values)
            })
            .collect())
    }

    /// Stops every replay of this process still running, held or not (each
    /// waits for its acks up to `timeout` seconds); how many were running.
    #[pyfunction]
    fn stop_replays(py: Python<'_>, timeout: f64) -> PyResult<usize> {
        let t = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        super::wait::detached(py, || Ok(crate::replay::stop_running(t, t)))
    }

    /// `text` with every secret value of `config` (and each line of a
    /// multi-line one, such as a PEM key) replaced by `***`.
    #[pyfunction]
    fn scrub(text: &str, config: std::collections::BTreeMap<String, String>) -> String {
        let mut settings = crate::client::Settings::new();
        for (k, v) in config {
            settings.set(k, v);
        }
        settings.scrub(text)
    }

    /// Whether `key` holds a credential (scrubbed from messages).
    #[pyfunction]
    fn is_secret(key: &str) -> bool {
        crate::client::settings::is_secret(key)
    }

    /// Whether `key`'s value is hidden in reprs (credentials and what
    /// librdkafka marks sensitive).
    #[pyfunction]
    fn is_sensitive(key: &str) -> bool {
        crate::client::settings::is_sensitive(key)
    }

    /// `value` as a repr shows it: `***` for a sensitive key, credentials
    /// written in a URL (`https://user:password@host`) as `***@`.
    #[pyfunction]
    fn shown_value(key: &str, value: &str) -> String {
        crate::client::settings::shown_value(key, value)
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        m.add("librdkafka_version", librdkafka)
    }
}
