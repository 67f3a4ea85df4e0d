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

/// How many partitions are read at once: one native thread each, up to the cores.
pub fn workers(partitions: usize, cores: usize) -> usize {
    partitions.min(cores.max(1))
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
}
