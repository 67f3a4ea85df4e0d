//! Time in one place. Epoch counts of datetime and date columns follow one
//! overflow rule: a value out of range of the unit asked for is an error
//! naming its column and the value, never a wrap or a silent saturation.
//! Coarser units floor (-1 ns is -1 µs), as the datetime it names has
//! begun in that unit. Also: datetimes written as JSON text, and JSON text
//! recognised as datetimes.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::{cast, cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::error::{Error, Result};

/// How many of `unit` make one second.
pub fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// `v` counts of `from` since the epoch as counts of `to`: exact when `to`
/// is finer, floored when coarser; None when it does not fit in an i64.
pub fn convert(v: i64, from: TimeUnit, to: TimeUnit) -> Option<i64> {
    let (from, to) = (per_second(from), per_second(to));
    if to >= from {
        v.checked_mul(to / from)
    } else {
        Some(v.div_euclid(from / to))
    }
}

/// [`convert`] of a fractional count, rounded to the nearest; None when it
/// is not finite or does not fit in an i64.
pub fn convert_f64(v: f64, from: TimeUnit, to: TimeUnit) -> Option<i64> {
    let counts = (v * per_second(to) as f64 / per_second(from) as f64).round();
    // i64::MAX as f64 is 2^63, itself out of range.
    (counts.is_finite() && counts >= i64::MIN as f64 && counts < i64::MAX as f64)
        .then_some(counts as i64)
}

/// Counts of `unit` since the Unix epoch of a datetime (naive ones as UTC),
/// date or int64 column (int64 values are counts of `unit` already). A value
/// that does not fit in an i64 of `unit` is an error naming column `name`.
pub fn epoch(col: &dyn Array, name: &str, unit: TimeUnit) -> Result<Vec<Option<i64>>> {
    let from = match col.data_type() {
        DataType::Timestamp(from, _) => *from,
        DataType::Date64 => TimeUnit::Millisecond,
        DataType::Int64 => return Ok(col.as_primitive::<Int64Type>().iter().collect()),
        DataType::Date32 => {
            let seconds = |days: i32| i64::from(days) * 86_400;
            return col
                .as_primitive::<Date32Type>()
                .iter()
                .map(|days| {
                    days.map(|d| {
                        convert(seconds(d), TimeUnit::Second, unit).ok_or_else(|| {
                            out_of_range(name, format!("{d} days since 1970-01-01"), unit)
                        })
                    })
                    .transpose()
                })
                .collect();
        }
        other => {
            return Err(Error::Schema(format!(
                "column {name:?} is {other}, not a datetime, a date or int64 counts since \
                 the epoch"
            )))
        }
    };
    // Datetimes and Date64 are i64 counts of `from`: read as such, no copy.
    let counts = cast(col, &DataType::Int64)?;
    counts
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| {
            v.map(|v| {
                convert(v, from, unit).ok_or_else(|| {
                    let value = format!("{v} {} since the epoch", unit_name(from));
                    out_of_range(name, value, unit)
                })
            })
            .transpose()
        })
        .collect()
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "seconds",
        TimeUnit::Millisecond => "milliseconds",
        TimeUnit::Microsecond => "microseconds",
        TimeUnit::Nanosecond => "nanoseconds",
    }
}

fn out_of_range(name: &str, value: String, unit: TimeUnit) -> Error {
    let range = match unit {
        TimeUnit::Second => "about 292 billion years either side of 1970",
        TimeUnit::Millisecond => "about 292 million years either side of 1970",
        TimeUnit::Microsecond => "about 292,000 years either side of 1970",
        TimeUnit::Nanosecond => "1677-09-21 to 2262-04-11",
    };
    Error::Schema(format!(
        "column {name:?} holds {value}, out of the range of int64 {} since the epoch \
         ({range}): fix or drop that value",
        unit_name(unit)
    ))
}

/// The same instants labelled with time zone `tz`.
pub fn with_zone(col: &ArrayRef, tz: &str) -> ArrayRef {
    use arrow_array::types::{
        TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
        TimestampNanosecondType as Ns, TimestampSecondType as S,
    };
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Arc::new(col.as_primitive::<S>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Arc::new(col.as_primitive::<Ms>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Arc::new(col.as_primitive::<Us>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Arc::new(col.as_primitive::<Ns>().clone().with_timezone(tz))
        }
        _ => col.clone(),
    }
}

pub fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// String columns of inferred JSON whose every value is an ISO 8601 datetime
/// become datetimes: with a zone -> UTC, without -> naive.
pub fn detect_datetimes(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        let mut out = (f.as_ref().clone(), col.clone());
        if f.data_type() == &DataType::Utf8 {
            let strings = col.as_string::<i32>();
            if let Some(first) = strings.iter().flatten().next() {
                if looks_like_datetime(first) {
                    let zoned = first.ends_with('Z')
                        || first.as_bytes()[19..]
                            .iter()
                            .any(|&c| c == b'+' || c == b'-');
                    let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
                    let strict = CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    if let Ok(cast) = cast_with_options(col, &naive, &strict) {
                        out = if zoned {
                            let utc = with_zone(&cast, "UTC");
                            (Field::new(f.name(), utc.data_type().clone(), true), utc)
                        } else {
                            (Field::new(f.name(), naive, true), cast)
                        };
                    }
                }
            }
        }
        fields.push(out.0);
        columns.push(out.1);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap_or(batch)
}

/// Writes a count of `unit` since the epoch as `"YYYY-MM-DDTHH:MM:SS[.f]Z"`,
/// with the unit's fraction digits when the fraction is not zero.
pub fn write_timestamp(out: &mut Vec<u8>, v: i64, unit: TimeUnit) {
    let (secs, nanos, digits) = match unit {
        TimeUnit::Second => (v, 0, 0),
        TimeUnit::Millisecond => (v.div_euclid(1000), v.rem_euclid(1000) * 1_000_000, 3),
        TimeUnit::Microsecond => (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1000, 6),
        TimeUnit::Nanosecond => (v.div_euclid(1_000_000_000), v.rem_euclid(1_000_000_000), 9),
    };
    write_datetime(out, secs, nanos as u32, Some(digits));
}

/// Writes days since 1970-01-01 as `"YYYY-MM-DD"`.
pub fn write_date(out: &mut Vec<u8>, days: i64) {
    write_datetime(out, days * 86_400, 0, None)
}

/// Writes `"YYYY-MM-DD"` (time `None`) or `"YYYY-MM-DDTHH:MM:SS[.fff]Z"`.
pub fn write_datetime(out: &mut Vec<u8>, secs: i64, nanos: u32, time_digits: Option<u32>) {
    let days = secs.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return write_datetime_chrono(out, secs, nanos, time_digits);
    }
    let mut b = [0u8; 32];
    b[0] = b'"';
    two(&mut b[1..], (year / 100) as u32);
    two(&mut b[3..], (year % 100) as u32);
    b[5] = b'-';
    two(&mut b[6..], month);
    b[8] = b'-';
    two(&mut b[9..], day);
    let Some(digits) = time_digits else {
        b[11] = b'"';
        out.extend_from_slice(&b[..12]);
        return;
    };
    let t = secs.rem_euclid(86_400) as u32;
    b[11] = b'T';
    two(&mut b[12..], t / 3600);
    b[14] = b':';
    two(&mut b[15..], t / 60 % 60);
    b[17] = b':';
    two(&mut b[18..], t % 60);
    let mut end = 20;
    if nanos > 0 {
        let digits = digits.max(1);
        let mut frac = nanos / 10u32.pow(9 - digits);
        b[end] = b'.';
        for i in (0..digits as usize).rev() {
            b[end + 1 + i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        end += 1 + digits as usize;
    }
    b[end..end + 2].copy_from_slice(b"Z\"");
    out.extend_from_slice(&b[..end + 2]);
}

fn two(b: &mut [u8], v: u32) {
    b[0] = b'0' + (v / 10) as u8;
    b[1] = b'0' + (v % 10) as u8;
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// [`write_datetime`] for years outside 0..=9999.
fn write_datetime_chrono(out: &mut Vec<u8>, secs: i64, nanos: u32, time_digits: Option<u32>) {
    let Some(dt) = chrono::DateTime::from_timestamp(secs, nanos) else {
        out.extend_from_slice(b"null");
        return;
    };
    use chrono::{Datelike, Timelike};
    let _ = match time_digits {
        None => write!(
            out,
            "\"{:04}-{:02}-{:02}\"",
            dt.year(),
            dt.month(),
            dt.day()
        ),
        Some(digits) => {
            let _ = write!(
                out,
                "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            );
            if nanos > 0 {
                let frac = nanos / 10u32.pow(9 - digits.max(1));
                let _ = write!(out, ".{:0width$}", frac, width = digits.max(1) as usize);
            }
            out.extend_from_slice(b"Z\"");
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Date32Array, Date64Array, Int64Array, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };

    #[test]
    fn units_convert_exactly_or_floor() {
        use TimeUnit::*;
        assert_eq!(convert(3, Second, Microsecond), Some(3_000_000));
        assert_eq!(convert(-1, Nanosecond, Microsecond), Some(-1));
        assert_eq!(convert(-1_000, Nanosecond, Microsecond), Some(-1));
        assert_eq!(convert(1_999, Microsecond, Millisecond), Some(1));
        assert_eq!(convert(i64::MAX, Nanosecond, Second), Some(9_223_372_036));
        assert_eq!(
            convert(i64::MAX / 1_000 + 1, Millisecond, Microsecond),
            None
        );
        assert_eq!(convert(i64::MIN, Second, Millisecond), None);
        assert_eq!(convert_f64(1.5, Second, Microsecond), Some(1_500_000));
        assert_eq!(convert_f64(-0.0015, Millisecond, Microsecond), Some(-2));
        assert_eq!(convert_f64(1e13, Second, Microsecond), None);
        assert_eq!(convert_f64(f64::NAN, Second, Microsecond), None);
    }

    #[test]
    fn epochs_of_every_column_type() {
        use TimeUnit::*;
        let ms = |col: &dyn Array| epoch(col, "t", Millisecond).unwrap();
        let us = |col: &dyn Array| epoch(col, "t", Microsecond).unwrap();
        let seconds = TimestampSecondArray::from(vec![Some(-1), None, Some(2)]);
        assert_eq!(ms(&seconds), vec![Some(-1_000), None, Some(2_000)]);
        let nanos = TimestampNanosecondArray::from(vec![-1, 1_999_999]).with_timezone("UTC");
        assert_eq!(ms(&nanos), vec![Some(-1), Some(1)]);
        assert_eq!(us(&nanos), vec![Some(-1), Some(1_999)]);
        let days = Date32Array::from(vec![Some(1), None, Some(-1)]);
        assert_eq!(
            us(&days),
            vec![Some(86_400_000_000), None, Some(-86_400_000_000)]
        );
        assert_eq!(
            ms(&Date64Array::from(vec![86_400_000])),
            vec![Some(86_400_000)]
        );
        assert_eq!(
            ms(&Int64Array::from(vec![Some(7), None])),
            vec![Some(7), None]
        );
        let err = epoch(
            &arrow_array::StringArray::from(vec!["x"]),
            "when",
            Millisecond,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"when\"") && err.contains("Utf8"), "{err}");
    }

    /// Out of range in the unit asked for: an error naming the column and
    /// the value, whichever type the value came in (no wrap, no saturation).
    #[test]
    fn a_value_out_of_range_is_an_error_naming_it() {
        use TimeUnit::*;
        let cases: Vec<(Box<dyn Array>, TimeUnit, &str)> = vec![
            (
                Box::new(TimestampSecondArray::from(vec![Some(0), Some(i64::MAX)])),
                Millisecond,
                "9223372036854775807 seconds",
            ),
            (
                Box::new(TimestampSecondArray::from(vec![i64::MIN])),
                Microsecond,
                "-9223372036854775808 seconds",
            ),
            (
                Box::new(TimestampMillisecondArray::from(vec![i64::MAX / 1_000 + 1])),
                Microsecond,
                "9223372036854776 milliseconds",
            ),
            (
                Box::new(Date32Array::from(vec![i32::MAX])),
                Microsecond,
                "2147483647 days since 1970-01-01",
            ),
            (
                Box::new(Date32Array::from(vec![i32::MIN])),
                Nanosecond,
                "-2147483648 days",
            ),
            (
                Box::new(Date64Array::from(vec![i64::MAX])),
                Microsecond,
                "9223372036854775807 milliseconds",
            ),
        ];
        for (col, unit, value) in cases {
            let err = epoch(col.as_ref(), "when", unit).unwrap_err().to_string();
            assert!(err.contains("\"when\"") && err.contains(value), "{err}");
            assert!(err.contains("out of the range"), "{err}");
        }
        // Within range at the edge: no error.
        let edge = TimestampMillisecondArray::from(vec![i64::MAX / 1_000]);
        assert_eq!(
            epoch(&edge, "t", Microsecond).unwrap(),
            vec![Some(i64::MAX / 1_000 * 1_000)]
        );
        let days = Date32Array::from(vec![i32::MAX]);
        assert!(epoch(&days, "t", Millisecond).is_ok());
    }

    #[test]
    fn datetimes_are_written_as_chrono_writes_them() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 11) as i64
        };
        let mut cases = vec![
            0,
            -1,
            86_399,
            86_400,
            951_782_400,
            -62_167_219_200,
            253_402_300_799,
        ];
        cases.extend((0..20_000).map(|_| next() % 253_402_300_800 - 62_167_219_200));
        for secs in cases {
            let nanos = (next() % 1_000_000_000) as u32;
            for (n, digits) in [
                (0, None),
                (0, Some(0)),
                (nanos / 1_000_000 * 1_000_000, Some(3)),
                (nanos / 1000 * 1000, Some(6)),
                (nanos, Some(9)),
            ] {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                write_datetime(&mut fast, secs, n, digits);
                write_datetime_chrono(&mut slow, secs, n, digits);
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap(),
                    "{secs} {n} {digits:?}"
                );
            }
        }
    }
}
