#![no_main]
//! Avro records in the Schema Registry framing: the first part (split at
//! `\n--\n`) is the writer's schema, the others record bodies of schema id 1.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tskafka_fuzz::decode_avro(data));
