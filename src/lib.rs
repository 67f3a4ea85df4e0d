//! tskafka's native core. Everything but `python` is free of pyo3 and tested
//! by `cargo test`: the clients and their engine (`client`), the replay
//! (`replay`), the waits (`wait`), the codecs (`codec`: one file per wire
//! format, frames <-> message payloads, CSV files, time conversions), the
//! embedded broker (`broker`). `python` holds the bindings: classes,
//! argument parsing, conversions, the error mapping.

pub mod broker;
pub mod client;
pub mod codec;
pub mod error;
pub mod in_process;
pub mod records;
pub mod registry;
pub mod replay;
pub mod wait;

#[cfg(feature = "python")]
mod python;

/// The extension's allocator. A read allocates its frames afresh on threads
/// of its own, and Python frees them later: glibc's malloc hands those
/// pages back to the kernel and faults them in again on the next read
/// (a third of a topic scan's time); mimalloc keeps them for reuse.
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
