#![no_main]
//! JSON in pandas' shapes: the first byte picks the orient (`ORIENTS`), the
//! rest is messages split at `\n--\n`.
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::{codec::FormatHint, decode_with_orient, split_messages, ORIENTS};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let orient = ORIENTS[pick as usize % ORIENTS.len()];
    let messages: Vec<_> = split_messages(rest).into_iter().map(|m| (m, None)).collect();
    decode_with_orient(FormatHint::Json, pick & 0x80 != 0, orient, &messages);
});
