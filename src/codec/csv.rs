//! CSV files -> Arrow record batches, a chunk at a time, so a file larger
//! than memory streams through in constant space.
//!
//! Fields are split with the `csv` crate, decoded as UTF-8 or Latin-1, then
//! typed per column: types are inferred from the first chunk (integers,
//! floats, booleans, datetimes in the common forms, else strings) unless
//! given. A row that does not fit is an error naming its line, or is skipped
//! and counted.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    RecordBatchReader, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::filter::filter_record_batch;
use chrono::format::{parse, Item, Parsed, StrftimeItems};
use chrono::NaiveDate;

use super::time;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 where a field is valid UTF-8, Latin-1 where it is not.
    Auto,
    Utf8,
    Latin1,
}

impl FromStr for Encoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Encoding::Auto),
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" => Ok(Encoding::Latin1),
            other => Err(Error::Config(format!(
                "unknown encoding {other:?}: use 'auto' (UTF-8, falling back to Latin-1 per \
                 field), 'utf-8' or 'latin-1'"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// None: tab for a `.tsv` file, else comma.
    pub delimiter: Option<u8>,
    pub encoding: Encoding,
    /// Column whose values are datetimes (parsed even when they look numeric: epochs).
    pub time_column: Option<String>,
    /// strftime format, or `epoch_s`/`epoch_ms`/`epoch_us`/`epoch_ns`, for the time column.
    pub time_format: Option<String>,
    /// Column types given by the user (the rest are inferred).
    pub dtypes: HashMap<String, DataType>,
    pub chunk_rows: usize,
    pub skip_bad_rows: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: None,
            encoding: Encoding::Auto,
            time_column: None,
            time_format: None,
            dtypes: HashMap::new(),
            chunk_rows: 65_536,
            skip_bad_rows: false,
        }
    }
}

impl CsvOptions {
    /// The options as callers name them: `encoding` 'auto', 'utf-8' or
    /// 'latin-1'; `dtypes` by dtype name; `on_bad_rows` 'error' or 'skip';
    /// `delimiter` one character (None: tab for a `.tsv` file, else comma).
    pub fn from_args(
        time_column: Option<String>,
        time_format: Option<String>,
        encoding: &str,
        dtypes: Option<HashMap<String, String>>,
        on_bad_rows: &str,
        chunk_rows: usize,
        delimiter: Option<&str>,
    ) -> Result<Self> {
        let skip_bad_rows = match on_bad_rows {
            "error" => false,
            "skip" => true,
            other => {
                return Err(Error::Config(format!(
                    "on_bad_rows must be 'error' or 'skip', got {other:?}"
                )))
            }
        };
        let delimiter = match delimiter.map(str::as_bytes) {
            None => None,
            Some([b]) => Some(*b),
            Some(_) => {
                return Err(Error::Config(format!(
                    "delimiter must be one character, got {:?}",
                    delimiter.unwrap_or_default()
                )))
            }
        };
        Ok(CsvOptions {
            delimiter,
            encoding: encoding.parse::<Encoding>()?,
            time_column,
            time_format,
            dtypes: dtypes
                .into_iter()
                .flatten()
                .map(|(k, v)| Ok((k, parse_dtype(&v)?)))
                .collect::<Result<_>>()?,
            chunk_rows,
            skip_bad_rows,
        })
    }
}

/// A dtype name as users write it (polars / pyarrow / numpy spellings).
pub fn parse_dtype(name: &str) -> Result<DataType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "str" | "string" | "utf8" | "large_string" | "object" => DataType::Utf8,
        "int" | "int64" | "i64" => DataType::Int64,
        "float" | "float64" | "f64" | "double" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "datetime" | "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "date" | "date32" => DataType::Date32,
        other => {
            return Err(Error::Config(format!(
                "unsupported CSV column type {other:?}: use one of str, int64, float64, bool, \
                 datetime, date"
            )))
        }
    })
}

/// A skipped row: its line in the file (1-based, the header is line 1) and why.
#[derive(Clone, Debug)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// How many skipped rows are kept with their reasons (all are counted).
const KEEP_BAD_ROWS: usize = 100;

#[derive(Clone, Debug)]
enum Time {
    /// strftime items; `zoned` when the text carries an offset (values become UTC).
    Format {
        text: String,
        items: Vec<Item<'static>>,
        zoned: bool,
        date_only: bool,
        /// How its canonical values are read without chrono's parser.
        iso: Iso,
    },
    /// Integer or float epoch in this unit.
    Epoch(TimeUnit),
}

#[derive(Clone, Debug)]
enum Plan {
    Text,
    Int,
    Float,
    Bool,
    Time(Time),
    /// A numeric column named as the time column: epoch with the unit from its magnitude.
    EpochAuto,
}

impl Plan {
    fn same(&self, other: &Plan) -> bool {
        match (self, other) {
            (
                Plan::Time(Time::Format { text: a, .. }),
                Plan::Time(Time::Format { text: b, .. }),
            ) => a == b,
            (Plan::Time(Time::Epoch(a)), Plan::Time(Time::Epoch(b))) => a == b,
            (Plan::Time(_), _) | (_, Plan::Time(_)) => false,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// Formats tried, in order, for datetimes given without a format.
const AUTO_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
];

fn time_format(text: &str) -> Result<Time> {
    let lower = text.to_ascii_lowercase();
    let unit = match lower.as_str() {
        "epoch_s" | "epoch" | "s" => Some(TimeUnit::Second),
        "epoch_ms" | "ms" => Some(TimeUnit::Millisecond),
        "epoch_us" | "us" => Some(TimeUnit::Microsecond),
        "epoch_ns" | "ns" => Some(TimeUnit::Nanosecond),
        _ => None,
    };
    if let Some(unit) = unit {
        return Ok(Time::Epoch(unit));
    }
    let items: Vec<Item<'static>> = StrftimeItems::new(text).map(|i| i.to_owned()).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(Error::Config(format!(
            "time_format {text:?} is not a valid strftime format (e.g. '%m/%d/%Y %H:%M'), \
             nor epoch_s/epoch_ms/epoch_us/epoch_ns"
        )));
    }
    let zoned =
        text.contains("%z") || text.contains("%:z") || text.contains("%#z") || text.ends_with('Z');
    let date_only = !["%H", "%I", "%M", "%S", "%T", "%R", "%s"]
        .iter()
        .any(|t| text.contains(t));
    let iso = match text {
        "%Y-%m-%d %H:%M:%S%.f" => Iso::DateTime(b' '),
        "%Y-%m-%dT%H:%M:%S%.f" => Iso::DateTime(b'T'),
        "%Y-%m-%d" => Iso::Date,
        _ => Iso::No,
    };
    Ok(Time::Format {
        text: text.to_owned(),
        items,
        zoned,
        date_only,
        iso,
    })
}

/// The ISO 8601 forms most CSV datetimes take, read directly: chrono's
/// parser costs several times the rest of a row. Only the canonical shape
/// (`2023-03-20 12:00:00.123456`: fixed widths, 0-9 fraction digits) is
/// read here; anything else goes to chrono, which decides.
#[derive(Clone, Copy, Debug)]
enum Iso {
    No,
    /// Date, this separator, time, an optional fraction.
    DateTime(u8),
    Date,
}

impl Iso {
    /// Microseconds (or days for a date), None: not canonical (or not a
    /// valid date or time), for chrono to read.
    fn read(self, s: &[u8]) -> Option<i64> {
        fn digits<const N: usize>(s: &[u8]) -> Option<u32> {
            let mut v = 0;
            for &b in s.get(..N)? {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u32::from(b - b'0');
            }
            Some(v)
        }
        let date = |s: &[u8]| {
            if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
                return None;
            }
            let year = digits::<4>(s)?;
            let month = digits::<2>(&s[5..])?;
            let day = digits::<2>(&s[8..])?;
            NaiveDate::from_ymd_opt(year as i32, month, day).map(days)
        };
        match self {
            Iso::No => None,
            Iso::Date if s.len() == 10 => date(s),
            Iso::Date => None,
            Iso::DateTime(separator) => {
                if s.len() < 19 || s[10] != separator || s[13] != b':' || s[16] != b':' {
                    return None;
                }
                let (hour, minute, second) = (
                    digits::<2>(&s[11..])?,
                    digits::<2>(&s[14..])?,
                    digits::<2>(&s[17..])?,
                );
                // A leap second (60) is chrono's to read.
                if hour > 23 || minute > 59 || second > 59 {
                    return None;
                }
                let micros = match &s[19..] {
                    [] => 0,
                    [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
                        let mut nanos = 0i64;
                        for (i, &b) in fraction.iter().enumerate() {
                            if !b.is_ascii_digit() {
                                return None;
                            }
                            nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
                        }
                        nanos / 1000
                    }
                    _ => return None,
                };
                let seconds = date(s)? * 86_400
                    + i64::from(hour) * 3600
                    + i64::from(minute) * 60
                    + i64::from(second);
                Some(seconds * 1_000_000 + micros)
            }
        }
    }
}

impl Time {
    /// Microseconds since the epoch (UTC for zoned values), or days for date-only formats.
    fn parse(&self, s: &str) -> Option<i64> {
        let s = s.trim();
        match self {
            // Out of range in microseconds: does not fit, as any bad value.
            Time::Epoch(unit) => match s.parse::<i64>() {
                Ok(v) => time::convert(v, *unit, TimeUnit::Microsecond),
                Err(_) => time::convert_f64(s.parse::<f64>().ok()?, *unit, TimeUnit::Microsecond),
            },
            Time::Format {
                items,
                zoned,
                date_only,
                text,
                iso,
            } => {
                if let Some(v) = iso.read(s.as_bytes()) {
                    return Some(v);
                }
                let mut parsed = Parsed::new();
                parse(&mut parsed, s, items.iter()).ok()?;
                if *date_only {
                    let d = parsed.to_naive_date().ok()?;
                    return Some(days(d));
                }
                let micros = if *zoned {
                    if text.ends_with('Z') {
                        parsed.to_naive_datetime_with_offset(0).ok()?.and_utc()
                    } else {
                        parsed.to_datetime().ok()?.to_utc()
                    }
                    .timestamp_micros()
                } else {
                    parsed
                        .to_naive_datetime_with_offset(0)
                        .ok()?
                        .and_utc()
                        .timestamp_micros()
                };
                Some(micros)
            }
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Time::Format {
                date_only: true, ..
            } => DataType::Date32,
            Time::Format { zoned: true, .. } => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

fn days(d: NaiveDate) -> i64 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

/// The unit of an epoch, guessed from its magnitude.
fn epoch_unit(v: f64) -> TimeUnit {
    match v.abs() {
        x if x < 1e11 => TimeUnit::Second,
        x if x < 1e14 => TimeUnit::Millisecond,
        x if x < 1e17 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The first format every sampled value parses with.
fn detect_time(values: &StringArray) -> Option<Time> {
    let first = values.iter().flatten().next()?;
    'formats: for text in AUTO_FORMATS {
        let t = time_format(text).ok()?;
        if t.parse(first).is_none() {
            continue;
        }
        for v in values.iter().flatten().take(10_000) {
            if t.parse(v).is_none() {
                continue 'formats;
            }
        }
        return Some(t);
    }
    None
}

fn all_parse<T>(values: &StringArray, f: impl Fn(&str) -> Option<T>) -> bool {
    values.null_count() < values.len() && values.iter().flatten().all(|v| f(v.trim()).is_some())
}

fn infer(values: &StringArray, is_time: bool) -> Plan {
    if all_parse(values, |v| v.parse::<i64>().ok()) {
        return if is_time { Plan::EpochAuto } else { Plan::Int };
    }
    if all_parse(values, |v| v.parse::<f64>().ok()) {
        return if is_time {
            Plan::EpochAuto
        } else {
            Plan::Float
        };
    }
    if !is_time
        && all_parse(values, |v| match v.to_ascii_lowercase().as_str() {
            "true" | "false" => Some(()),
            _ => None,
        })
    {
        return Plan::Bool;
    }
    match detect_time(values) {
        Some(t) => Plan::Time(t),
        None => Plan::Text,
    }
}

/// How to read a column the user gave a type for; datetimes in the form
/// its first values have (numbers: an epoch).
fn plan_for(dtype: &DataType, values: &StringArray) -> Result<Plan> {
    let detected = || match detect_time(values) {
        Some(t) => Ok(Plan::Time(t)),
        None if all_parse(values, |v| v.parse::<f64>().ok()) => Ok(Plan::EpochAuto),
        None => time_format("%Y-%m-%d %H:%M:%S%.f").map(Plan::Time),
    };
    Ok(match dtype {
        DataType::Utf8 => Plan::Text,
        DataType::Int64 => Plan::Int,
        DataType::Float64 => Plan::Float,
        DataType::Boolean => Plan::Bool,
        DataType::Date32 => match detect_time(values) {
            Some(
                t @ Time::Format {
                    date_only: true, ..
                },
            ) => Plan::Time(t),
            _ => Plan::Time(time_format("%Y-%m-%d")?),
        },
        DataType::Timestamp(_, _) => detected()?,
        other => {
            return Err(Error::Config(format!(
                "unsupported CSV column type {other}"
            )))
        }
    })
}

fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Text => "text".into(),
        Plan::Int => "an integer".into(),
        Plan::Float => "a number".into(),
        Plan::Bool => "true/false".into(),
        Plan::Time(Time::Format { text, .. }) => format!("a datetime in the form {text:?}"),
        Plan::Time(Time::Epoch(_)) | Plan::EpochAuto => "an epoch timestamp".into(),
    }
}

/// The types of a CSV source's columns and how to read each from text:
/// the one inference of CSV files and CSV messages.
#[derive(Clone, Debug)]
pub(super) struct Typing {
    header: Vec<String>,
    plans: Vec<Plan>,
    /// Whether a column's plan was inferred (not given), for error messages.
    inferred: Vec<bool>,
    /// Rows the types were inferred from.
    sample_rows: usize,
    pub(super) schema: SchemaRef,
}

impl Default for Typing {
    fn default() -> Self {
        Self {
            header: Vec::new(),
            plans: Vec::new(),
            inferred: Vec::new(),
            sample_rows: 0,
            schema: Arc::new(Schema::empty()),
        }
    }
}

impl Typing {
    /// The type of each column: given in `options.dtypes` (or the time
    /// column's format), else inferred from `columns`, the first rows read.
    /// `name` names the source in errors.
    pub(super) fn plan(
        name: &str,
        header: &[String],
        options: &CsvOptions,
        columns: &[StringArray],
    ) -> Result<Self> {
        let mut typing = Typing {
            header: header.to_vec(),
            sample_rows: columns.first().map_or(0, Array::len),
            ..Typing::default()
        };
        let time_plan = match &options.time_format {
            Some(f) => Some(Plan::Time(time_format(f)?)),
            None => None,
        };
        let mut fields = Vec::new();
        for (i, column) in header.iter().enumerate() {
            let is_time = options.time_column.as_deref() == Some(column.as_str());
            let (plan, inferred) = if let Some(t) = options.dtypes.get(column) {
                let plan = match (is_time, &time_plan, t) {
                    (true, Some(p), DataType::Timestamp(..) | DataType::Date32) => p.clone(),
                    _ => plan_for(t, &columns[i])?,
                };
                (plan, false)
            } else if let (true, Some(p)) = (is_time, &time_plan) {
                (p.clone(), false)
            } else {
                (infer(&columns[i], is_time), true)
            };
            let plan = match plan {
                Plan::Text if is_time => {
                    return Err(Error::Schema(format!(
                        "time column {column:?} of {name} holds values like {:?} that are not \
                         datetimes in a known form: pass time_format (e.g. '%d.%m.%Y %H:%M')",
                        columns[i].iter().flatten().next().unwrap_or("")
                    )))
                }
                Plan::EpochAuto => {
                    let first = columns[i]
                        .iter()
                        .flatten()
                        .find_map(|v| v.trim().parse::<f64>().ok());
                    Plan::Time(Time::Epoch(first.map_or(TimeUnit::Microsecond, epoch_unit)))
                }
                p => p,
            };
            let dtype = match &plan {
                Plan::Text => DataType::Utf8,
                Plan::Int => DataType::Int64,
                Plan::Float => DataType::Float64,
                Plan::Bool => DataType::Boolean,
                Plan::Time(t) => t.data_type(),
                Plan::EpochAuto => unreachable!(),
            };
            fields.push(Field::new(column, dtype, true));
            typing.plans.push(plan);
            typing.inferred.push(inferred);
        }
        typing.schema = Arc::new(Schema::new(fields));
        Ok(typing)
    }

    /// Whether `other` reads every column as this does (whatever the rows
    /// its types were inferred from).
    pub(super) fn reads_as(&self, other: &Typing) -> bool {
        self.header == other.header
            && self.inferred == other.inferred
            && self.plans.len() == other.plans.len()
            && self.plans.iter().zip(&other.plans).all(|(a, b)| a.same(b))
    }

    /// These types, as inferred from `rows` rows (what errors tell).
    pub(super) fn inferred_from(mut self, rows: usize) -> Self {
        self.sample_rows = rows;
        self
    }

    /// `columns` (one text column per CSV column) typed; and the (row,
    /// column) of the first value of each row that did not fit, by row.
    pub(super) fn columns(&self, columns: &[StringArray]) -> (Vec<ArrayRef>, Vec<(usize, usize)>) {
        let mut failed = vec![false; columns.first().map_or(0, Array::len)];
        let mut typed: Vec<ArrayRef> = Vec::with_capacity(self.plans.len());
        let mut failures: Vec<(usize, usize)> = Vec::new();
        for (c, (values, plan)) in columns.iter().zip(&self.plans).enumerate() {
            let array: ArrayRef = match plan {
                Plan::Text => Arc::new(values.clone()),
                Plan::Int => {
                    let a: Int64Array = values
                        .iter()
                        .map(|v| v.and_then(|v| v.trim().parse::<i64>().ok()))
                        .collect();
                    Arc::new(a)
                }
                Plan::Float => {
                    let a: Float64Array = values
                        .iter()
                        .map(|v| v.and_then(|v| v.trim().parse::<f64>().ok()))
                        .collect();
                    Arc::new(a)
                }
                Plan::Bool => {
                    let a: BooleanArray = values
                        .iter()
                        .map(|v| {
                            v.and_then(|v| match v.trim().to_ascii_lowercase().as_str() {
                                "true" | "1" | "yes" => Some(true),
                                "false" | "0" | "no" => Some(false),
                                _ => None,
                            })
                        })
                        .collect();
                    Arc::new(a)
                }
                Plan::Time(t) => {
                    let parsed = values.iter().map(|v| v.and_then(|v| t.parse(v)));
                    match t.data_type() {
                        DataType::Date32 => {
                            Arc::new(parsed.map(|d| d.map(|d| d as i32)).collect::<Date32Array>())
                        }
                        DataType::Timestamp(_, tz) => Arc::new(
                            parsed
                                .collect::<TimestampMicrosecondArray>()
                                .with_timezone_opt(tz),
                        ),
                        _ => unreachable!(),
                    }
                }
                Plan::EpochAuto => unreachable!(),
            };
            if array.null_count() != values.null_count() {
                for (r, done) in failed.iter_mut().enumerate() {
                    if array.is_null(r) && values.is_valid(r) && !*done {
                        *done = true;
                        failures.push((r, c));
                    }
                }
            }
            typed.push(array);
        }
        failures.sort_unstable();
        (typed, failures)
    }

    /// Why `value` of column `c` does not fit, and what to pass (`argument`,
    /// the reader's name for column types) to read it.
    pub(super) fn misfit(&self, c: usize, value: &str, argument: &str) -> String {
        let how = if self.inferred[c] {
            format!(
                " (type inferred from the first {} rows: pass {argument}={{{:?}: 'str'}} to read \
                 it as text)",
                self.sample_rows, self.header[c]
            )
        } else {
            String::new()
        };
        format!(
            "{value:?} in column {:?} is not {}{how}",
            self.header[c],
            describe(&self.plans[c])
        )
    }
}

/// One chunk of raw fields: a string column per CSV column, and each row's line.
struct Chunk {
    columns: Vec<StringArray>,
    lines: Vec<u64>,
}

pub struct CsvReader {
    name: String,
    records: ::csv::Reader<Box<dyn Read + Send>>,
    options: CsvOptions,
    header: Vec<String>,
    typing: Typing,
    first: Option<Chunk>,
    record: ::csv::ByteRecord,
    done: bool,
    pub bad_rows: Vec<BadRow>,
    pub rows_skipped: u64,
    pub rows_read: u64,
}

impl CsvReader {
    pub fn open(path: &str, mut options: CsvOptions) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::Config(format!("cannot open CSV file {path:?}: {e}")))?;
        if options.delimiter.is_none() && path.to_ascii_lowercase().ends_with(".tsv") {
            options.delimiter = Some(b'\t');
        }
        Self::new(
            path.to_owned(),
            Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            options,
        )
    }

    pub fn new(name: String, input: Box<dyn Read + Send>, options: CsvOptions) -> Result<Self> {
        if options.chunk_rows == 0 {
            return Err(Error::Config("chunk_rows must be >= 1".into()));
        }
        let mut records = ::csv::ReaderBuilder::new()
            .delimiter(options.delimiter.unwrap_or(b','))
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let raw = records
            .byte_headers()
            .map_err(|e| Error::Schema(format!("cannot read the header line of {name}: {e}")))?
            .clone();
        if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
            return Err(Error::Schema(format!(
                "{name} is empty: expected a header line naming the columns"
            )));
        }
        let header: Vec<String> = raw
            .iter()
            .map(|f| decode_field(f, options.encoding).map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::Schema(format!(
                    "the header line of {name} is not valid UTF-8: pass encoding='latin-1'"
                ))
            })?;
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) {
                return Err(Error::Schema(format!("{name} has two columns named {h:?}")));
            }
        }
        for name_given in options.dtypes.keys().chain(options.time_column.iter()) {
            if !header.contains(name_given) {
                return Err(Error::Schema(format!(
                    "column {name_given:?} is not in {name}; its columns are {header:?}"
                )));
            }
        }
        let mut reader = Self {
            name,
            records,
            typing: Typing::default(),
            first: None,
            record: ::csv::ByteRecord::new(),
            done: false,
            bad_rows: Vec::new(),
            rows_skipped: 0,
            rows_read: 0,
            header,
            options,
        };
        let first = reader.read_chunk()?;
        reader.typing = Typing::plan(
            &reader.name,
            &reader.header,
            &reader.options,
            &first.columns,
        )?;
        reader.first = Some(first);
        Ok(reader)
    }

    pub fn columns(&self) -> &[String] {
        &self.header
    }

    pub fn schema_ref(&self) -> SchemaRef {
        self.typing.schema.clone()
    }

    fn bad(&mut self, line: u64, reason: String) -> Result<()> {
        if !self.options.skip_bad_rows {
            return Err(Error::Schema(format!(
                "line {line} of {}: {reason}; fix the file or pass on_bad_rows='skip' to skip \
                 such rows",
                self.name
            )));
        }
        self.rows_skipped += 1;
        if self.bad_rows.len() < KEEP_BAD_ROWS {
            self.bad_rows.push(BadRow { line, reason });
        }
        Ok(())
    }

    /// Up to `chunk_rows` rows of raw fields.
    fn read_chunk(&mut self) -> Result<Chunk> {
        let width = self.header.len();
        let mut builders: Vec<StringBuilder> = (0..width)
            .map(|_| {
                StringBuilder::with_capacity(self.options.chunk_rows, self.options.chunk_rows * 8)
            })
            .collect();
        let mut lines = Vec::with_capacity(self.options.chunk_rows.min(1 << 16));
        let mut record = std::mem::take(&mut self.record);
        while lines.len() < self.options.chunk_rows {
            let more = match self.records.read_byte_record(&mut record) {
                Ok(more) => more,
                Err(e) => {
                    return Err(Error::Schema(format!("cannot read {}: {e}", self.name)));
                }
            };
            if !more {
                self.done = true;
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record[0].is_empty() {
                continue; // blank line
            }
            if record.len() != width {
                let reason = format!("{} fields where the header has {width}", record.len());
                self.bad(line, reason)?;
                continue;
            }
            let mut fields = Vec::with_capacity(width);
            let mut bad = None;
            for (i, f) in record.iter().enumerate() {
                match decode_field(f, self.options.encoding) {
                    Some(s) => fields.push(s),
                    None => {
                        bad = Some(format!(
                            "column {:?} is not valid UTF-8: pass encoding='latin-1' (or 'auto')",
                            self.header[i]
                        ));
                        break;
                    }
                }
            }
            if let Some(reason) = bad {
                self.bad(line, reason)?;
                continue;
            }
            for (b, f) in builders.iter_mut().zip(&fields) {
                if f.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(f);
                }
            }
            lines.push(line);
        }
        self.record = record;
        Ok(Chunk {
            columns: builders.iter_mut().map(|b| b.finish()).collect(),
            lines,
        })
    }

    /// Types one chunk; rows that do not fit are reported or dropped.
    fn convert(&mut self, chunk: Chunk) -> Result<RecordBatch> {
        let rows = chunk.lines.len();
        let (columns, failures) = self.typing.columns(&chunk.columns);
        let mut keep = vec![true; rows];
        for &(r, c) in &failures {
            keep[r] = false;
            let reason = self.typing.misfit(c, chunk.columns[c].value(r), "dtypes");
            self.bad(chunk.lines[r], reason)?;
        }
        let batch = RecordBatch::try_new(self.typing.schema.clone(), columns)?;
        let batch = if failures.is_empty() {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(keep))?
        };
        self.rows_read += batch.num_rows() as u64;
        Ok(batch)
    }

    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let chunk = match self.first.take() {
                Some(c) => c,
                None if self.done => return Ok(None),
                None => self.read_chunk()?,
            };
            if chunk.lines.is_empty() {
                if self.done {
                    return Ok(None);
                }
                continue;
            }
            let batch = self.convert(chunk)?;
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
    }
}

/// A field as text in `encoding`; None when it is not valid UTF-8 and must be.
pub(super) fn decode_field(bytes: &[u8], encoding: Encoding) -> Option<std::borrow::Cow<'_, str>> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Into::into),
        Encoding::Latin1 if bytes.is_ascii() => std::str::from_utf8(bytes).ok().map(Into::into),
        Encoding::Latin1 => Some(latin1(bytes).into()),
        Encoding::Auto => Some(match std::str::from_utf8(bytes) {
            Ok(s) => s.into(),
            Err(_) => latin1(bytes).into(),
        }),
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

impl Iterator for CsvReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
            .transpose()
    }
}

impl RecordBatchReader for CsvReader {
    fn schema(&self) -> SchemaRef {
        self.typing.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_datetimes_are_read_directly_as_chrono_reads_them() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut cases: Vec<String> = [
            "2023-03-20 12:00:00.123456",
            "2024-02-29 23:59:59",
            "2023-02-29 00:00:00",
            "2023-03-20 24:00:00",
            "2016-12-31 23:59:60",
            "1969-12-31 23:59:59.999999999",
            "0000-01-01 00:00:00.1",
            "2023-03-20 12:00:00.",
            "2023-03-20 12:00:00.1234567891",
            "2023-3-20 12:00:00",
            "2023-03-20T12:00:00",
            "2023-03-20",
            " 2023-03-20 ",
            "+2023-03-20 12:00:00",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..50_000 {
            let separator = if next(2) == 0 { ' ' } else { 'T' };
            let mut b = format!(
                "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}",
                next(10_000),
                next(14),
                next(33),
                next(26),
                next(62),
                next(62)
            )
            .into_bytes();
            match next(4) {
                0 => {}
                1 => {
                    b.push(b'.');
                    for _ in 0..next(12) {
                        b.push(b'0' + next(10) as u8);
                    }
                }
                2 => b.truncate(10),
                _ => {
                    let i = next(b.len() as u64) as usize;
                    b[i] = b"0123456789-: T.x"[next(16) as usize];
                }
            }
            cases.push(String::from_utf8(b).unwrap());
        }
        for text in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
            let direct = time_format(text).unwrap();
            let mut chrono = direct.clone();
            match &mut chrono {
                Time::Format { iso, .. } if !matches!(iso, Iso::No) => *iso = Iso::No,
                other => panic!("{text} is not read directly: {other:?}"),
            }
            let mut read = 0;
            for case in &cases {
                let got = direct.parse(case);
                assert_eq!(got, chrono.parse(case), "{text:?} reading {case:?}");
                read += usize::from(got.is_some());
            }
            assert!(read > 5_000, "{text}: only {read} cases are datetimes");
        }
    }

    #[test]
    fn options_from_args_are_checked() {
        let dtypes = HashMap::from([("n".to_owned(), "int64".to_owned())]);
        let o = CsvOptions::from_args(None, None, "latin-1", Some(dtypes), "skip", 8, Some(";"))
            .unwrap();
        assert_eq!(o.delimiter, Some(b';'));
        assert!(o.skip_bad_rows);
        assert_eq!(o.dtypes["n"], DataType::Int64);
        assert_eq!(o.chunk_rows, 8);
        let err = |encoding, on_bad_rows, delimiter| {
            CsvOptions::from_args(None, None, encoding, None, on_bad_rows, 8, delimiter)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("auto", "ignore", None),
            "on_bad_rows must be 'error' or 'skip', got \"ignore\""
        );
        assert_eq!(
            err("auto", "error", Some("ab")),
            "delimiter must be one character, got \"ab\""
        );
        assert!(err("utf-16", "error", None).contains("utf-16"));
    }
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;

    fn read(text: &[u8], options: CsvOptions) -> Result<(CsvReader, Vec<RecordBatch>)> {
        let mut r = CsvReader::new(
            "test.csv".into(),
            Box::new(std::io::Cursor::new(text.to_vec())),
            options,
        )?;
        let mut out = Vec::new();
        while let Some(b) = r.next_batch()? {
            out.push(b);
        }
        Ok((r, out))
    }

    #[test]
    fn infers_types_and_datetimes() {
        let csv = b"Invoice,Quantity,InvoiceDate,Price,Customer ID\n\
489434,12,2009-12-01 07:45:00,6.95,13085.0\n\
C489449,-12,12/1/2010 8:26,2.1,\n";
        // Mixed datetime forms in one column are not one format: text.
        let (_, b) = read(csv, CsvOptions::default()).unwrap();
        let s = b[0].schema();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
        assert_eq!(s.field(2).data_type(), &DataType::Utf8);
        assert_eq!(s.field(3).data_type(), &DataType::Float64);
        assert_eq!(s.field(4).data_type(), &DataType::Float64);
        assert!(b[0].column(4).is_null(1));

        let csv = b"t,v\n12/1/2010 8:26,1\n12/13/2010 18:05,2\n";
        let (_, b) = read(csv, CsvOptions::default()).unwrap();
        let t = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(0), 1_291_191_960_000_000);
        assert_eq!(t.value(1), 1_292_263_500_000_000);
    }

    #[test]
    fn zoned_and_epoch_times() {
        let csv = b"t,v\n2024-01-01T10:00:00+02:00,1\n2024-01-01T08:00:01Z,2\n";
        let options = CsvOptions {
            time_column: Some("t".into()),
            time_format: Some("%Y-%m-%dT%H:%M:%S%#z".into()),
            ..Default::default()
        };
        let (_, b) = read(csv, options).unwrap();
        let t = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(1) - t.value(0), 1_000_000);
        let options = CsvOptions {
            time_column: Some("t".into()),
            time_format: Some("%d.%m.%Y".into()),
            ..Default::default()
        };
        let err = read(csv, options).err().unwrap().to_string();
        assert!(err.contains("line 2") && err.contains("%d.%m.%Y"), "{err}");

        let csv = b"t,v\n2024-01-01T10:00:00+02:00,1\n2024-01-01T08:00:01+00:00,2\n";
        let (_, b) = read(csv, CsvOptions::default()).unwrap();
        let t = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.timezone(), Some("UTC"));
        assert_eq!(t.value(1) - t.value(0), 1_000_000);

        let csv = b"ts,v\n1700000000000,1\n1700000000500,2\n";
        let options = CsvOptions {
            time_column: Some("ts".into()),
            ..Default::default()
        };
        let (_, b) = read(csv, options).unwrap();
        let t = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(0), 1_700_000_000_000_000);
        assert_eq!(t.value(1) - t.value(0), 500_000);
    }

    #[test]
    fn bad_rows_name_their_line_or_are_skipped() {
        let csv = b"a,b\n1,x\n2,y\n3\n4,z\nfive,w\n";
        let err = read(csv, CsvOptions::default()).err().unwrap().to_string();
        assert!(err.contains("line 4") && err.contains("1 fields"), "{err}");

        let options = CsvOptions {
            skip_bad_rows: true,
            chunk_rows: 2,
            ..Default::default()
        };
        let (r, b) = read(csv, options).unwrap();
        let rows: usize = b.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 3);
        assert_eq!(r.rows_skipped, 2);
        assert_eq!(r.bad_rows[0].line, 4);
        assert_eq!(r.bad_rows[1].line, 6);
        assert!(
            r.bad_rows[1].reason.contains("\"five\""),
            "{:?}",
            r.bad_rows
        );
    }

    #[test]
    fn latin1_and_strict_utf8() {
        let csv = b"name,v\ncaf\xe9,1\n";
        let (_, b) = read(csv, CsvOptions::default()).unwrap();
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "café");
        let options = CsvOptions {
            encoding: Encoding::Utf8,
            ..Default::default()
        };
        let err = read(csv, options).err().unwrap().to_string();
        assert!(err.contains("line 2") && err.contains("latin-1"), "{err}");
    }

    #[test]
    fn given_datetime_types_detect_their_form() {
        let csv = b"a,b,c\n12/1/2010 8:26,2010-12-01,1700000000\n";
        let dtypes = [
            (
                "a".to_owned(),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            ("b".to_owned(), DataType::Date32),
            (
                "c".to_owned(),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
        ]
        .into_iter()
        .collect();
        let options = CsvOptions {
            dtypes,
            ..Default::default()
        };
        let (_, b) = read(csv, options).unwrap();
        let a = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), 1_291_191_960_000_000);
        assert_eq!(
            b[0].column(1)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            14_944
        );
        let c = b[0].column(2).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(c.value(0), 1_700_000_000_000_000);
    }

    #[test]
    fn empty_and_missing_columns() {
        let err = read(b"", CsvOptions::default()).err().unwrap().to_string();
        assert!(err.contains("empty"), "{err}");
        let (_, b) = read(b"a,b\n", CsvOptions::default()).unwrap();
        assert!(b.is_empty());
        let options = CsvOptions {
            time_column: Some("when".into()),
            ..Default::default()
        };
        let err = read(b"a,b\n1,2\n", options).err().unwrap().to_string();
        assert!(
            err.contains("\"when\"") && err.contains("[\"a\", \"b\"]"),
            "{err}"
        );
    }
}
