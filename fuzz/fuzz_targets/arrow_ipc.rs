#![no_main]
//! One or two Arrow IPC payloads (split at `\n--\n`) read as format="arrow".
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::{codec::FormatHint, decode_messages, split_messages};

fuzz_target!(|data: &[u8]| {
    let messages: Vec<_> = split_messages(data).into_iter().map(|m| (m, None)).collect();
    decode_messages(FormatHint::Arrow, true, &messages);
});
