#![no_main]
//! JSON payloads (split at `\n--\n`); a first part starting `[[` is the
//! tskafka.schema header of the rest.
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::{codec::FormatHint, decode_messages, split_messages};

fuzz_target!(|data: &[u8]| {
    let mut parts = split_messages(data);
    let header = (parts.len() > 1 && parts[0].starts_with(b"[[")).then(|| parts.remove(0));
    let messages: Vec<_> = parts.into_iter().map(|m| (m, header)).collect();
    decode_messages(FormatHint::Json, false, &messages);
});
