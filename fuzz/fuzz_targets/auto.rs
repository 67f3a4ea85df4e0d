#![no_main]
//! Messages of any kind (split at `\n--\n`) with per-message format detection.
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::{codec::FormatHint, decode_messages, split_messages};

fuzz_target!(|data: &[u8]| {
    let messages: Vec<_> = split_messages(data).into_iter().map(|m| (m, None)).collect();
    decode_messages(FormatHint::Auto, true, &messages);
});
