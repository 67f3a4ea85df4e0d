//! tskafka's native core. The modules without pyo3 (`config`, `encode`,
//! `decode`, `broker`, `client`) are tested by `cargo test`; `python`
//! holds the thin bindings.

pub mod broker;
pub mod client;
pub mod config;
pub mod csv_reader;
pub mod decode;
#[cfg(test)]
mod decode_fuzz;
pub mod encode;
pub mod error;
pub mod in_process;
pub mod replay;

#[cfg(feature = "python")]
mod python;
