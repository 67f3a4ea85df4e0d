//! Which offsets of a partition a scan reads: pure arithmetic on the
//! partition's watermarks, the offset filter and the answers of the
//! ListOffsets-by-time lookups, so it is tested without a broker.

/// What the query asks of every partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The first offset wanted (inclusive).
    pub start_offset: Option<i64>,
    /// The first offset not wanted (exclusive).
    pub end_offset: Option<i64>,
    /// The first timestamp wanted (ms, inclusive).
    pub start_ms: Option<i64>,
    /// The first timestamp not wanted (ms, exclusive).
    pub end_ms: Option<i64>,
    /// Timestamps were taken from a data column (the latest row of each
    /// message): the first message at or after `end_ms` can still hold rows
    /// before it, so it is read too.
    pub row_times: bool,
}

/// A ListOffsets-by-time answer: the first offset whose timestamp is at or
/// after the time, or None when there is none (Kafka answers -1).
pub type Lookup = Option<i64>;

/// The offsets `start..end` to read of a partition whose records lie in
/// `low..high` (its watermarks when the scan starts). `start_at` and `end_at`
/// answer the lookups of `filter.start_ms` and `filter.end_ms`, when asked.
/// An empty range is `(x, x)`.
pub fn resolve(
    low: i64,
    high: i64,
    filter: &Filter,
    start_at: Option<Lookup>,
    end_at: Option<Lookup>,
) -> (i64, i64) {
    let mut start = low;
    let mut end = high;
    if let Some(s) = filter.start_offset {
        start = start.max(s);
    }
    if let Some(e) = filter.end_offset {
        end = end.min(e);
    }
    if filter.start_ms.is_some() {
        // No record at or after the start time: nothing to read.
        start = start.max(start_at.flatten().unwrap_or(high));
    }
    if filter.end_ms.is_some() {
        let extra = i64::from(filter.row_times);
        // No record at or after the end time: everything up to the high watermark.
        end = end.min(end_at.flatten().map_or(high, |o| o.saturating_add(extra)));
    }
    let end = end.max(low);
    (start.min(end), end)
}

/// Whether a row limit has been reached: `read` rows so far, `limit` asked.
pub fn limit_reached(read: usize, limit: Option<usize>) -> bool {
    limit.is_some_and(|l| read >= l)
}

/// How many pieces are read at once: one native thread each, up to the cores.
pub fn workers(pieces: usize, cores: usize) -> usize {
    pieces.min(cores.max(1))
}

/// The bytes to ask for the rest of a range: `left` offsets at the size
/// per offset of the last answer (`held` bytes over `offsets`), and a
/// quarter more; None (the configured size) past 64 MiB.
pub fn fetch_bytes(held: usize, offsets: i64, left: i64) -> Option<usize> {
    if offsets <= 0 || left <= 0 {
        return None;
    }
    let want = held as u128 * left as u128 / offsets as u128 * 5 / 4 + 1;
    usize::try_from(want).ok().filter(|&w| w < 64 << 20)
}

/// A run of offsets `start..end` of the range at `index`: what one thread
/// reads in one go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub index: usize,
    pub start: i64,
    pub end: i64,
}

/// The non-empty `ranges` (`(start, end)` of each partition, in order) as
/// the pieces `cores` threads take one after another, in order. When the
/// partitions cannot share the threads evenly (3 partitions on 2 threads,
/// or 1), each range is cut into runs of about equal offsets, as many as
/// make the pieces a multiple of the threads; with `whole` false (frames
/// handed out as they come, where a partition's must stay in offset order)
/// or with many partitions, ranges stay whole.
pub fn pieces(ranges: &[(i64, i64)], cores: usize, whole: bool) -> Vec<Piece> {
    let cores = cores.max(1);
    let partitions = ranges.iter().filter(|(s, e)| s < e).count();
    let cuts = if whole && partitions > 0 && partitions < 8 * cores {
        cores / gcd(partitions, cores)
    } else {
        1
    };
    let mut out = Vec::new();
    for (index, &(start, end)) in ranges.iter().enumerate() {
        let Ok(len) = u64::try_from(end.saturating_sub(start)) else {
            continue;
        };
        let n = (cuts as u64).min(len);
        for k in 0..n {
            // Integer shares of `len`: lengths differ by one offset at most.
            let at = |k: u64| start + i64::try_from(len * k / n).expect("within the range");
            out.push(Piece {
                index,
                start: at(k),
                end: at(k + 1),
            });
        }
    }
    out
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_reads_from_low_to_high_watermark() {
        assert_eq!(resolve(3, 10, &Filter::default(), None, None), (3, 10));
        assert_eq!(resolve(0, 0, &Filter::default(), None, None), (0, 0));
    }

    #[test]
    fn offsets_are_clipped_to_the_watermarks() {
        let f = Filter {
            start_offset: Some(5),
            end_offset: Some(8),
            ..Filter::default()
        };
        assert_eq!(resolve(0, 10, &f, None, None), (5, 8));
        assert_eq!(resolve(6, 7, &f, None, None), (6, 7));
        // A range past the end, or before the log start, is empty.
        assert_eq!(resolve(0, 4, &f, None, None), (4, 4));
        assert_eq!(resolve(9, 20, &f, None, None), (9, 9));
        let backwards = Filter {
            start_offset: Some(8),
            end_offset: Some(5),
            ..Filter::default()
        };
        assert_eq!(resolve(0, 10, &backwards, None, None), (5, 5));
    }

    #[test]
    fn a_time_range_becomes_the_offsets_kafka_names() {
        let f = Filter {
            start_ms: Some(100),
            end_ms: Some(200),
            ..Filter::default()
        };
        assert_eq!(resolve(0, 50, &f, Some(Some(10)), Some(Some(30))), (10, 30));
        // Nothing at or after the end time: up to the high watermark.
        assert_eq!(resolve(0, 50, &f, Some(Some(10)), Some(None)), (10, 50));
        // Nothing at or after the start time: nothing at all.
        assert_eq!(resolve(0, 50, &f, Some(None), Some(None)), (50, 50));
        // Only an end time.
        let until = Filter {
            end_ms: Some(200),
            ..Filter::default()
        };
        assert_eq!(resolve(4, 50, &until, None, Some(Some(30))), (4, 30));
        assert_eq!(resolve(4, 50, &until, None, Some(Some(0))), (4, 4));
    }

    #[test]
    fn row_times_read_the_message_reaching_the_end_time() {
        let f = Filter {
            start_ms: Some(100),
            end_ms: Some(200),
            row_times: true,
            ..Filter::default()
        };
        assert_eq!(resolve(0, 50, &f, Some(Some(10)), Some(Some(30))), (10, 31));
        // Never past the high watermark.
        assert_eq!(resolve(0, 31, &f, Some(Some(10)), Some(Some(31))), (10, 31));
    }

    #[test]
    fn offsets_and_times_combine_as_and() {
        let f = Filter {
            start_offset: Some(20),
            end_offset: Some(40),
            start_ms: Some(100),
            end_ms: Some(200),
            row_times: false,
        };
        assert_eq!(resolve(0, 50, &f, Some(Some(10)), Some(Some(30))), (20, 30));
        assert_eq!(resolve(0, 50, &f, Some(Some(25)), Some(Some(45))), (25, 40));
    }

    #[test]
    fn limits_and_workers() {
        assert!(!limit_reached(5, None));
        assert!(!limit_reached(4, Some(5)));
        assert!(limit_reached(5, Some(5)));
        assert!(limit_reached(0, Some(0)));
        assert_eq!(workers(3, 2), 2);
        assert_eq!(workers(1, 8), 1);
        assert_eq!(workers(4, 0), 1);
    }

    #[test]
    fn the_rest_of_a_range_is_asked_for_at_the_size_seen() {
        // 1 MB messages, 2 left: a little over 2 MB.
        assert_eq!(fetch_bytes(1 << 20, 1, 2), Some((2 << 20) * 5 / 4 + 1));
        // Small messages: the answer's bytes per offset.
        assert_eq!(fetch_bytes(1000, 100, 10), Some(126));
        // A long rest: as configured.
        assert_eq!(fetch_bytes(4 << 20, 4, 1000), None);
        assert_eq!(fetch_bytes(100, 0, 10), None);
        assert_eq!(fetch_bytes(100, 10, 0), None);
    }

    fn spans(pieces: &[Piece]) -> Vec<(usize, i64, i64)> {
        pieces.iter().map(|p| (p.index, p.start, p.end)).collect()
    }

    #[test]
    fn partitions_that_share_the_threads_evenly_stay_whole() {
        let two = [(0, 10), (5, 9)];
        assert_eq!(spans(&pieces(&two, 2, true)), [(0, 0, 10), (1, 5, 9)]);
        assert_eq!(spans(&pieces(&two, 1, true)), [(0, 0, 10), (1, 5, 9)]);
        // Frames handed out as they come keep each partition whole.
        assert_eq!(spans(&pieces(&[(0, 9)], 2, false)), [(0, 0, 9)]);
        // Many partitions: any unevenness is small.
        let many: Vec<(i64, i64)> = (0..17).map(|_| (0, 100)).collect();
        assert_eq!(pieces(&many, 2, true).len(), 17);
    }

    #[test]
    fn uneven_partitions_are_cut_into_equal_runs_covering_each_range() {
        // 3 partitions on 2 threads: each in 2, 6 pieces in all.
        let three = [(0, 36), (100, 137), (7, 7), (5, 6)];
        let got = pieces(&three, 2, true);
        assert_eq!(
            spans(&got),
            [
                (0, 0, 18),
                (0, 18, 36),
                (1, 100, 118),
                (1, 118, 137),
                (3, 5, 6)
            ]
        );
        // 1 partition on 4 threads: 4 runs; 3 on 4: each in 4.
        assert_eq!(
            spans(&pieces(&[(10, 20)], 4, true)),
            [(0, 10, 12), (0, 12, 15), (0, 15, 17), (0, 17, 20)]
        );
        assert_eq!(pieces(&[(0, 9), (0, 9), (0, 9)], 4, true).len(), 12);
        // Never an empty piece, however short the range.
        assert!(pieces(&[(0, 1), (3, 5), (0, 0)], 8, true)
            .iter()
            .all(|p| p.start < p.end));
    }
}
