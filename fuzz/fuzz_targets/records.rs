#![no_main]
//! A fetch answer's records section: batches split, decompressed, read.
use libfuzzer_sys::fuzz_target;
use tskafka_fuzz::records::read_every_record;

fuzz_target!(|data: &[u8]| {
    read_every_record(&bytes::Bytes::copy_from_slice(data));
});
