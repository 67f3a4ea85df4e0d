#![no_main]
//! A CSV file read in small chunks, bad rows skipped (first byte: options).
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::codec::csv::{CsvOptions, CsvReader, Encoding};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else { return };
    let options = CsvOptions {
        encoding: [Encoding::Auto, Encoding::Utf8, Encoding::Latin1][(flags % 3) as usize],
        time_column: (flags & 4 != 0).then(|| "t".to_owned()),
        chunk_rows: 1 + (flags >> 4) as usize,
        skip_bad_rows: flags & 8 != 0,
        ..Default::default()
    };
    let Ok(mut reader) = CsvReader::new("fuzz.csv".into(), Box::new(std::io::Cursor::new(text.to_vec())), options) else {
        return;
    };
    for _ in 0..10_000 {
        match reader.next_batch() {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
});
