//! `format="csv"`: each message holds one or more CSV lines (as
//! `f"{datetime},{temp1},{temp2}"`), typed with the CSV file reader's own
//! inference (`csv.rs` `Typing`). Types are inferred from the first frame
//! of the stream and pinned: later frames are read with the same types, so
//! a stream keeps one schema (a value that does not fit is that message's
//! DecodeError, naming the field and `schema=`). On the send side each row
//! is one line, fields written as the reader reads them back.

use std::collections::HashMap;
use std::fmt::Write as _;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;

use super::csv::{decode_field, CsvOptions, Encoding, Typing};
use super::frame::{FrameBuilder, MessageRef, Meta};
use crate::error::{Error, Result};

/// How CSV lines are read.
#[derive(Clone, Debug)]
pub struct CsvLineOptions {
    /// The column names (None: from a header line, else column_1, column_2, ...).
    pub columns: Option<Vec<String>>,
    /// The first line of each message names the columns.
    pub header: bool,
    /// Types given by column name; the rest are inferred.
    pub dtypes: HashMap<String, DataType>,
    pub delimiter: u8,
    pub encoding: Encoding,
}

impl Default for CsvLineOptions {
    fn default() -> Self {
        Self {
            columns: None,
            header: false,
            dtypes: HashMap::new(),
            delimiter: b',',
            encoding: Encoding::Utf8,
        }
    }
}

impl CsvLineOptions {
    /// The options as callers name them: `schema` maps columns to dtype
    /// names (as `read_csv`'s `dtypes`), `delimiter` one character,
    /// `encoding` 'utf-8', 'latin-1' or 'auto'.
    pub fn from_args(
        columns: Option<Vec<String>>,
        header: bool,
        schema: Option<HashMap<String, String>>,
        delimiter: &str,
        encoding: &str,
    ) -> Result<Self> {
        let file =
            CsvOptions::from_args(None, None, encoding, schema, "error", 1, Some(delimiter))?;
        let options = Self {
            columns,
            header,
            dtypes: file.dtypes,
            delimiter: file.delimiter.unwrap_or(b','),
            encoding: file.encoding,
        };
        options.check()?;
        Ok(options)
    }

    /// Checks what can be checked before a message arrives.
    pub fn check(&self) -> Result<()> {
        if let Some(columns) = &self.columns {
            for (i, c) in columns.iter().enumerate() {
                if columns[..i].contains(c) {
                    return Err(Error::Config(format!("columns names {c:?} twice")));
                }
            }
            if let Some(missing) = self.dtypes.keys().find(|d| !columns.contains(d)) {
                return Err(Error::Config(format!(
                    "schema names column {missing:?}, which is not in columns={columns:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The options a fuzz input's first byte picks: a header line, named
/// columns, the delimiter, the encoding, a pinned type.
pub fn csv_line_options(flags: u8) -> CsvLineOptions {
    CsvLineOptions {
        header: flags & 1 != 0,
        columns: (flags & 2 != 0).then(|| vec!["a".into(), "b".into(), "c".into()]),
        delimiter: if flags & 4 != 0 { b';' } else { b',' },
        encoding: [Encoding::Utf8, Encoding::Latin1, Encoding::Auto][((flags >> 3) % 3) as usize],
        dtypes: if flags & 0x40 != 0 {
            HashMap::from([("a".to_owned(), DataType::Int64)])
        } else {
            HashMap::new()
        },
    }
}

/// CSV rows gathered from messages, typed together when a frame is taken.
pub(super) struct CsvRun {
    fields: Vec<StringBuilder>,
    /// Index into `metas` of each row's message.
    row_message: Vec<u32>,
    metas: Vec<Meta>,
    /// Each message's payload, for the error of a message refused late.
    payloads: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// The stream's columns and, once the first frame is read, their types.
#[derive(Default)]
pub(super) struct CsvStream {
    names: Option<Vec<String>>,
    typing: Option<Typing>,
    record: csv::ByteRecord,
}

impl FrameBuilder {
    pub(super) fn push_csv(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        if let Some(text) = self.plain_lines(payload) {
            return self.push_plain_lines(m, payload, text);
        }
        match self.csv_records(payload) {
            Ok(records) => {
                let records = records.unwrap_or_default();
                if records.is_empty() {
                    return;
                }
                let rows = records.len();
                let run = self.csv_run_for(m, payload, rows);
                let index = run.metas.len() as u32 - 1;
                for record in records {
                    for (builder, field) in run.fields.iter_mut().zip(record) {
                        match field {
                            Some(f) => builder.append_value(f),
                            None => builder.append_null(),
                        }
                    }
                    run.row_message.push(index);
                }
            }
            Err(error) => self.reject(m, error),
        }
    }

    /// The run the message's `rows` go to, with the message entered.
    fn csv_run_for(&mut self, m: &MessageRef<'_>, payload: &[u8], rows: usize) -> &mut CsvRun {
        let meta = self.meta(m, rows);
        self.rows += rows;
        let width = self.csv.names.as_ref().map_or(0, Vec::len);
        let run = self.csv_run.get_or_insert_with(|| CsvRun {
            fields: (0..width).map(|_| StringBuilder::new()).collect(),
            row_message: Vec::new(),
            metas: Vec::new(),
            payloads: Vec::new(),
            spans: Vec::new(),
        });
        run.metas.push(meta);
        let start = run.payloads.len();
        run.payloads.extend_from_slice(payload);
        run.spans.push((start, run.payloads.len()));
        run
    }

    /// The payload as text when it is plain lines: no quotes, no carriage
    /// returns, no header, text as the encoding reads it. Such lines (what
    /// `f"{a},{b}"` writes) are split in place; the rest go through the
    /// csv reader, whose setup alone costs more than splitting a line.
    fn plain_lines<'p>(&self, payload: &'p [u8]) -> Option<&'p str> {
        let options = &self.text.csv;
        if options.header
            || !options.delimiter.is_ascii()
            || options.delimiter == b'"'
            || payload.iter().any(|&b| b == b'"' || b == b'\r')
            || (options.encoding == Encoding::Latin1 && !payload.is_ascii())
        {
            return None;
        }
        std::str::from_utf8(payload).ok()
    }

    fn push_plain_lines(&mut self, m: &MessageRef<'_>, payload: &[u8], text: &str) {
        let delimiter = self.text.csv.delimiter as char;
        let lines = || text.split('\n').filter(|l| !l.is_empty());
        let Some(first) = lines().next() else {
            return; // no lines
        };
        let width = match (&self.csv.names, &self.text.csv.columns) {
            (Some(names), _) => names.len(),
            (None, Some(columns)) => columns.len(),
            (None, None) => first.split(delimiter).count(),
        };
        let mut rows = 0;
        for (i, line) in text.split('\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let fields = line.split(delimiter).count();
            if fields != width {
                let names = self
                    .csv
                    .names
                    .clone()
                    .unwrap_or_else(|| self.text.csv.columns.clone().unwrap_or_default());
                self.reject(m, wrong_width(i + 1, fields, &names, width));
                return;
            }
            rows += 1;
        }
        if self.csv.names.is_none() {
            self.csv.names = Some(match &self.text.csv.columns {
                Some(c) => c.clone(),
                None => (1..=width).map(|i| format!("column_{i}")).collect(),
            });
        }
        let run = self.csv_run_for(m, payload, rows);
        let index = run.metas.len() as u32 - 1;
        for line in lines() {
            for (builder, field) in run.fields.iter_mut().zip(line.split(delimiter)) {
                if field.is_empty() {
                    builder.append_null();
                } else {
                    builder.append_value(field);
                }
            }
            run.row_message.push(index);
        }
    }

    /// The fields of each data line of a message (None: empty), or why it
    /// cannot be read. Pins the column names from the first message.
    fn csv_records(
        &mut self,
        payload: &[u8],
    ) -> std::result::Result<Option<Vec<Vec<Option<String>>>>, String> {
        let options = &self.text.csv;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(payload);
        let mut record = std::mem::take(&mut self.csv.record);
        let mut out = Vec::new();
        let mut line = 0;
        let mut header_seen = !options.header;
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    return Err(format!(
                        "line {} of the message is not CSV ({e}): fix the producer, or skip \
                         such messages with on_error='skip'",
                        line + 1
                    ))
                }
            }
            line += 1;
            if record.len() == 1 && record[0].is_empty() {
                continue; // a blank line
            }
            let mut fields = Vec::with_capacity(record.len());
            for (i, f) in record.iter().enumerate() {
                let Some(text) = decode_field(f, options.encoding) else {
                    return Err(format!(
                        "field {} on line {line} of the message is not UTF-8: pass \
                         encoding='latin-1' (or 'auto': UTF-8, else Latin-1)",
                        i + 1
                    ));
                };
                fields.push(text.into_owned());
            }
            if !header_seen {
                header_seen = true;
                let found: Vec<String> = fields.iter().map(|f| f.trim().to_owned()).collect();
                match (&options.columns, &self.csv.names) {
                    // columns= names them: the header line is only skipped.
                    (Some(_), _) => {}
                    (None, Some(names)) if *names != found => {
                        return Err(format!(
                            "the header line names the columns {found:?}, the stream's first \
                             message named {names:?}: one stream has one header"
                        ))
                    }
                    (None, Some(_)) => {}
                    (None, None) => {
                        if let Some(missing) = options.dtypes.keys().find(|d| !found.contains(d)) {
                            return Err(format!(
                                "schema names column {missing:?}, which the header line \
                                 {found:?} does not"
                            ));
                        }
                        self.csv.names = Some(found);
                    }
                }
                continue;
            }
            let names = self
                .csv
                .names
                .get_or_insert_with(|| match &options.columns {
                    Some(c) => c.clone(),
                    None => (1..=fields.len()).map(|i| format!("column_{i}")).collect(),
                });
            if fields.len() != names.len() {
                return Err(wrong_width(line, fields.len(), names, names.len()));
            }
            out.push(
                fields
                    .into_iter()
                    .map(|f| (!f.is_empty()).then_some(f))
                    .collect(),
            );
        }
        self.csv.record = record;
        Ok(Some(out))
    }

    /// Types the CSV rows gathered (inferring the types the first time),
    /// refusing the messages holding a value that does not fit.
    pub(super) fn flush_csv(&mut self) {
        let Some(mut run) = self.csv_run.take() else {
            return;
        };
        let columns: Vec<StringArray> = run.fields.iter_mut().map(|b| b.finish()).collect();
        let names = self.csv.names.clone().unwrap_or_default();
        if self.csv.typing.is_none() {
            let options = CsvOptions {
                dtypes: self.text.csv.dtypes.clone(),
                ..CsvOptions::default()
            };
            match Typing::plan("the CSV messages", &names, &options, &columns) {
                Ok(t) => self.csv.typing = Some(t),
                Err(e) => {
                    for (i, meta) in run.metas.iter().enumerate() {
                        let (s, end) = run.spans[i];
                        self.reject_late(meta, e.to_string(), &run.payloads[s..end]);
                    }
                    return;
                }
            }
        }
        let typing = self.csv.typing.as_ref().expect("typed above");
        let (typed, failures) = typing.columns(&columns);
        let mut refused = vec![None; run.metas.len()];
        for &(r, c) in &failures {
            let message = run.row_message[r] as usize;
            if refused[message].is_none() {
                let first_row = run.row_message.partition_point(|&m| (m as usize) < message);
                refused[message] = Some(format!(
                    "line {} of the message: {}, or skip such messages with on_error='skip'",
                    r - first_row + 1,
                    typing.misfit(c, columns[c].value(r), "schema")
                ));
            }
        }
        let schema = typing.schema.clone();
        let batch = match RecordBatch::try_new(schema, typed) {
            Ok(b) => b,
            Err(e) => panic!("CSV columns typed by one plan do not make a batch: {e}"),
        };
        let (batch, metas) = if failures.is_empty() {
            (batch, run.metas)
        } else {
            let keep: BooleanArray = run
                .row_message
                .iter()
                .map(|&m| Some(refused[m as usize].is_none()))
                .collect();
            let batch = filter_record_batch(&batch, &keep).expect("one mask per row");
            let mut metas = Vec::new();
            for (i, (meta, why)) in run.metas.into_iter().zip(refused).enumerate() {
                match why {
                    None => metas.push(meta),
                    Some(why) => {
                        let (s, end) = run.spans[i];
                        self.reject_late(&meta, why, &run.payloads[s..end]);
                    }
                }
            }
            (batch, metas)
        };
        if batch.num_rows() > 0 {
            self.add_part(batch, metas);
        }
    }
}

fn wrong_width(line: usize, fields: usize, names: &[String], width: usize) -> String {
    format!(
        "line {line} of the message has {fields} fields where {width} columns {names:?} are \
         expected: name every field with columns=[...], or skip such messages with \
         on_error='skip'"
    )
}

/// CSV lines of rows: fields written as the CSV reader reads them back
/// (datetimes as `2023-03-20 12:00:00.123456`, nulls empty), quoted only
/// where they hold the delimiter, a quote or a line break.
pub(super) struct CsvRows<'a> {
    fields: Vec<ArrayFormatter<'a>>,
    nulls: Vec<&'a dyn Array>,
    delimiter: u8,
}

const DATETIME: &str = "%Y-%m-%d %H:%M:%S%.f";
const DATETIME_ZONED: &str = "%Y-%m-%d %H:%M:%S%.f%:z";
const OPTIONS: FormatOptions<'static> = FormatOptions::new()
    .with_null("")
    .with_date_format(Some("%Y-%m-%d"))
    .with_datetime_format(Some(DATETIME))
    .with_timestamp_format(Some(DATETIME))
    .with_timestamp_tz_format(Some(DATETIME_ZONED));

impl<'a> CsvRows<'a> {
    pub(super) fn new(batch: &'a RecordBatch, delimiter: u8) -> Result<Self> {
        let fields = batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .map(|(c, f)| {
                ArrayFormatter::try_new(c.as_ref(), &OPTIONS).map_err(|e| {
                    Error::Schema(format!(
                        "column {:?} of type {} cannot be written as CSV ({e}): cast it or \
                         use format='arrow'",
                        f.name(),
                        f.data_type()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            fields,
            nulls: batch.columns().iter().map(|c| c.as_ref()).collect(),
            delimiter,
        })
    }

    /// Rows `start..start + len`, one line each, joined by '\n'.
    pub(super) fn lines(&self, start: usize, len: usize) -> Vec<u8> {
        let mut out = String::with_capacity(len * 16 * self.fields.len());
        let mut field = String::new();
        let delimiter = self.delimiter as char;
        for row in start..start + len {
            if row > start {
                out.push('\n');
            }
            for (i, f) in self.fields.iter().enumerate() {
                if i > 0 {
                    out.push(delimiter);
                }
                if self.nulls[i].is_null(row) {
                    continue;
                }
                field.clear();
                let _ = write!(field, "{}", f.value(row));
                if field.contains([delimiter, '"', '\n', '\r']) {
                    out.push('"');
                    out.push_str(&field.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&field);
                }
            }
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::msg;
    use crate::codec::FormatHint;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_schema::TimeUnit;

    fn builder(options: CsvLineOptions) -> FrameBuilder {
        let mut b = FrameBuilder::new(FormatHint::Csv, false, None);
        b.text.csv = options;
        b
    }

    fn named(columns: &[&str]) -> CsvLineOptions {
        CsvLineOptions {
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn sensor_lines_are_typed_as_the_file_reader_types_them() {
        let mut b = builder(named(&["timestamp", "temp1", "temp2"]));
        b.push(msg(b"2023-03-20 12:00:00.123456,21.5,3", 0, None));
        b.push(msg(
            b"2023-03-20 12:00:01.5,22,4\n2023-03-20 12:00:02,23.25,5",
            1,
            None,
        ));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.num_rows(), 3);
        let t = out.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            out.schema().field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(t.value(1) - t.value(0), 1_376_544);
        assert_eq!(out.column(1).as_primitive::<Float64Type>().value(1), 22.0);
        assert_eq!(out.column(2).as_primitive::<Int64Type>().value(2), 5);
        // Pinned: the next frame has the same types, and a misfit names its field.
        b.push(msg(b"2023-03-20 12:00:03,24,6.5", 2, None));
        assert!(b.take_frame().unwrap().is_none());
        let bad = b.take_bad();
        assert_eq!(bad[0].offset, 2);
        assert!(
            bad[0]
                .error
                .contains("\"6.5\" in column \"temp2\" is not an integer")
                && bad[0].error.contains("schema={\"temp2\": 'str'}"),
            "{}",
            bad[0].error
        );
    }

    #[test]
    fn wrong_field_counts_and_headers() {
        let mut b = builder(named(&["a", "b"]));
        b.push(msg(b"1,2", 0, None));
        b.push(msg(b"1,2\n3", 1, None));
        let out = b.take_frame().unwrap().unwrap();
        assert_eq!(out.num_rows(), 1);
        let bad = b.take_bad();
        assert!(
            bad[0]
                .error
                .contains("line 2 of the message has 1 fields where 2 columns"),
            "{}",
            bad[0].error
        );
        let mut b = builder(CsvLineOptions {
            header: true,
            ..Default::default()
        });
        b.push(msg(b"x,y\n1,2", 0, None));
        b.push(msg(b"y,x\n3,4", 1, None));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.schema().field(1).name(), "y");
        assert!(b.take_bad()[0].error.contains("one stream has one header"));
        let mut b = builder(CsvLineOptions::default());
        b.push(msg(b"1,\"a,b\"", 0, None));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.schema().field(1).name(), "column_2");
        assert_eq!(out.column(1).as_string::<i32>().value(0), "a,b");
    }

    #[test]
    fn rows_written_read_back() {
        let batch = crate::codec::test_support::sample();
        let rows = CsvRows::new(&batch, b',').unwrap();
        let text = String::from_utf8(rows.lines(0, 2)).unwrap();
        assert_eq!(text.lines().count(), 2);
        let mut b = builder(CsvLineOptions {
            columns: Some(
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            ),
            ..Default::default()
        });
        for r in 0..batch.num_rows() {
            b.push(msg(&rows.lines(r, 1), r as i64, None));
        }
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert!(!b.has_bad(), "{:?}", b.take_bad());
        assert_eq!(out.num_rows(), batch.num_rows());
        for (a, e) in out.columns().iter().zip(batch.columns()) {
            let e = arrow_cast::cast(e, a.data_type()).unwrap();
            assert_eq!(a.as_ref(), e.as_ref());
        }
    }
}
