#!/bin/bash
# Runs each fuzz target for SECONDS (default 300) on one core, from the seeds
# in tests/fuzz_corpus/<target>; new inputs go to a scratch corpus, crashers
# to fuzz/artifacts/<target>/. Needs nightly and cargo-fuzz.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -u
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
targets=${*:-arrow_ipc json auto csv text csv_lines avro pandas_json records}
for t in $targets; do
    mkdir -p "${FUZZ_WORK:-/tmp/tskafka-fuzz}/$t" "artifacts/$t"
    cargo +nightly fuzz run -O "$t" "${FUZZ_WORK:-/tmp/tskafka-fuzz}/$t" "../tests/fuzz_corpus/$t" -- \
        -max_total_time="$seconds" -jobs=1 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 2>&1 | tail -40 > "artifacts/$t.log"
    echo "$t: $(grep -E 'stat::number_of_executed_units|Done|SUMMARY|==ERROR|panicked' "artifacts/$t.log" | head -5 | tr '\n' ' ')"
done
