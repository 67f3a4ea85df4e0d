#![no_main]
//! Messages of CSV lines (split at `\n--\n`) read with format='csv'; the
//! first byte picks the options (a header line, named columns, the
//! delimiter, the encoding, a pinned type).
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::codec::{csv_line_options, FormatHint, JsonOrient, TextOptions};
use tskafka_fuzz::{decode_messages_with, split_messages};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = TextOptions { csv: csv_line_options(flags), ..Default::default() };
    let messages: Vec<_> = split_messages(rest).into_iter().map(|m| (m, None)).collect();
    decode_messages_with(FormatHint::Csv, flags & 0x80 != 0, text, JsonOrient::Auto, &messages);
});
