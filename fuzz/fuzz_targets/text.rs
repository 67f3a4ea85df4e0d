#![no_main]
//! Messages (split at `\n--\n`) read with format='raw' or 'text'; the
//! first byte picks the format and errors='strict' or 'replace'.
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::codec::{FormatHint, JsonOrient, TextErrors, TextOptions};
use tskafka_fuzz::{decode_messages_with, split_messages};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let hint = if flags & 1 == 0 { FormatHint::Text } else { FormatHint::Raw };
    let text = TextOptions {
        errors: if flags & 2 == 0 { TextErrors::Strict } else { TextErrors::Replace },
        ..Default::default()
    };
    let messages: Vec<_> = split_messages(rest).into_iter().map(|m| (m, None)).collect();
    decode_messages_with(hint, flags & 4 != 0, text, JsonOrient::Auto, &messages);
});
