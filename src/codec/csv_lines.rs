//! `format="csv"`: each message holds one or more CSV lines (as
//! `f"{datetime},{temp1},{temp2}"`), typed with the CSV file reader's own
//! inference (`csv.rs` `Typing`). Types are inferred from the first frame
//! of the stream and pinned: later frames are read with the same types, so
//! a stream keeps one schema (a value that does not fit is that message's
//! DecodeError, naming the field and `schema=`). On the send side each row
//! is one line, fields written as the reader reads them back. With a
//! projection only the columns it names are split out and typed; every
//! line's fields are still counted.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;

use super::csv::{decode_field, CsvOptions, Encoding, Typing};
use super::frame::{emptied, BadMessage, FrameBuilder, MessageRef, Meta, Settle};
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

/// CSV messages gathered to be split and typed together: a full run on a
/// worker thread while the next messages arrive, the rest when the frame
/// is taken. The stream's first frame infers the types, so its runs wait,
/// decoded, for the frame's end.
#[derive(Default)]
pub(super) struct CsvRun {
    messages: CsvMessages,
    /// Decoded runs of the stream's first frame, not yet typed for it,
    /// each with the types its own rows give (or why they give none).
    decoded: Vec<(DecodedCsv, std::result::Result<Typed, String>)>,
    /// Messages holding a value that does not fit, refused at the frame's end.
    late: Vec<BadMessage>,
}

/// Messages not yet decoded: payloads end to end, where each ends, and
/// their metadata (with the rows their lines promise).
#[derive(Default)]
struct CsvMessages {
    payloads: Vec<u8>,
    ends: Vec<usize>,
    metas: Vec<Meta>,
}

/// Messages, or bytes of them, a CSV run gathers before it is decoded:
/// tens of milliseconds of work, worth a thread of its own.
const RUN_MESSAGES: usize = 32_768;
const RUN_BYTES: usize = 4 << 20;

/// The stream's columns and, once the first frame is read, their types.
#[derive(Default)]
pub(super) struct CsvStream {
    names: Option<Vec<String>>,
    typing: Option<Arc<Typing>>,
}

/// What decoding a run needs of the stream, as it stands when the run starts.
struct CsvContext {
    options: CsvLineOptions,
    names: Option<Vec<String>>,
    projection: Option<HashSet<String>>,
    /// The stream's types; None in its first frame (each run infers its own).
    typing: Option<Arc<Typing>>,
}

/// A run's messages that hold rows, split into text columns (those the
/// projection keeps) and typed.
struct DecodedCsv {
    metas: Vec<Meta>,
    /// Each message's payload, for the error of a message refused late.
    payloads: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// Index into `metas` of each row's message.
    row_message: Vec<u32>,
    text: Vec<StringArray>,
}

/// A decoded run's columns typed: with the stream's types, or in its first
/// frame with the types the run's own rows give (or why they give none).
enum RunTypes {
    Pinned(Typed),
    Own(std::result::Result<Typed, String>),
}

struct Typed {
    typing: Arc<Typing>,
    columns: Vec<ArrayRef>,
    /// (row, column) of each row's first value that does not fit.
    failures: Vec<(usize, usize)>,
}

impl Typed {
    fn new(typing: Arc<Typing>, text: &[StringArray]) -> Self {
        let (columns, failures) = typing.columns(text);
        Self {
            typing,
            columns,
            failures,
        }
    }
}

impl FrameBuilder {
    pub(super) fn push_csv(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let lines = payload.iter().filter(|&&b| b == b'\n').count() + 1;
        if lines == 1 && payload.is_empty() {
            return; // no lines
        }
        // What the loop reading a frame counts; the run's decode corrects it.
        let rows = lines - usize::from(self.text.csv.header);
        let meta = self.meta(m, rows);
        self.rows += rows;
        let run = self.csv_run.get_or_insert_with(CsvRun::default);
        let messages = &mut run.messages;
        messages.payloads.extend_from_slice(payload);
        messages.ends.push(messages.payloads.len());
        messages.metas.push(meta);
        if messages.metas.len() >= RUN_MESSAGES || messages.payloads.len() >= RUN_BYTES {
            let full = messages.take_full();
            // The names the run before pins are needed to start this one.
            self.settle();
            let context = self.csv_context();
            self.decode_aside(move || decode_csv_run(full, context));
        }
    }

    fn csv_context(&self) -> CsvContext {
        CsvContext {
            options: self.text.csv.clone(),
            names: self.csv.names.clone(),
            projection: self.projection.clone(),
            typing: self.csv.typing.clone(),
        }
    }

    /// Types the CSV rows gathered (inferring the types the first time),
    /// refusing the messages holding a value that does not fit.
    pub(super) fn flush_csv(&mut self) {
        self.settle();
        let Some(run) = self.csv_run.as_mut() else {
            return;
        };
        if !run.messages.metas.is_empty() {
            let rest = run.messages.take_full();
            let settle = decode_csv_run(rest, self.csv_context());
            settle(self);
        }
        let Some(run) = self.csv_run.take() else {
            return;
        };
        let mut late = run.late;
        if !run.decoded.is_empty() {
            self.type_first_frame(run.decoded, &mut late);
        }
        self.bad.extend(late);
    }

    /// Adds what a run decoded: its rows, once the stream's types are
    /// known; until then (the first frame) it waits for the frame's end.
    fn settle_csv(&mut self, names: Option<Vec<String>>, decoded: Option<(DecodedCsv, RunTypes)>) {
        self.csv.names = names;
        let run = self.csv_run.get_or_insert_with(CsvRun::default);
        match decoded {
            None => {}
            Some((decoded, RunTypes::Own(typed))) => run.decoded.push((decoded, typed)),
            Some((decoded, RunTypes::Pinned(typed))) => {
                let mut late = std::mem::take(&mut run.late);
                decoded.add_to(self, typed, &mut late);
                self.csv_run.get_or_insert_with(CsvRun::default).late = late;
            }
        }
    }

    /// The first frame's runs typed as one: with the types every run
    /// inferred for itself if they agree (what all their rows give), else
    /// with types inferred from all their rows.
    fn type_first_frame(
        &mut self,
        runs: Vec<(DecodedCsv, std::result::Result<Typed, String>)>,
        late: &mut Vec<BadMessage>,
    ) {
        let rows: usize = runs.iter().map(|(r, _)| r.row_message.len()).sum();
        let first = runs[0].1.as_ref().ok().map(|t| &t.typing);
        let agreed = first.filter(|first| {
            runs.iter()
                .all(|(_, typed)| typed.as_ref().is_ok_and(|t| t.typing.reads_as(first)))
        });
        let typing = match agreed {
            Some(t) => Ok(t.as_ref().clone().inferred_from(rows)),
            None => {
                let names = self.csv.names.as_deref().unwrap_or_default();
                let names = kept(names, self.projection.as_ref());
                let text: Vec<StringArray> = (0..names.len())
                    .map(|c| {
                        let parts: Vec<&dyn Array> =
                            runs.iter().map(|(r, _)| &r.text[c] as &dyn Array).collect();
                        let all =
                            arrow_select::concat::concat(&parts).expect("text columns concatenate");
                        all.as_string::<i32>().clone()
                    })
                    .collect();
                let options = CsvOptions {
                    dtypes: self.text.csv.dtypes.clone(),
                    ..CsvOptions::default()
                };
                Typing::plan("the CSV messages", &names, &options, &text)
            }
        };
        let typing = match typing {
            Ok(t) => Arc::new(t),
            Err(e) => {
                for (run, _) in &runs {
                    for (meta, &(s, end)) in run.metas.iter().zip(&run.spans) {
                        late.push(refused(meta, e.to_string(), &run.payloads[s..end]));
                    }
                }
                return;
            }
        };
        self.csv.typing = Some(typing.clone());
        for (run, typed) in runs {
            let typed = match typed {
                // The same types: the same columns and misfits.
                Ok(typed) if typed.typing.reads_as(&typing) => Typed {
                    typing: typing.clone(),
                    ..typed
                },
                _ => Typed::new(typing.clone(), &run.text),
            };
            run.add_to(self, typed, late);
        }
    }
}

impl CsvMessages {
    /// The messages gathered, leaving room for as many again.
    fn take_full(&mut self) -> CsvMessages {
        CsvMessages {
            payloads: emptied(&mut self.payloads),
            ends: emptied(&mut self.ends),
            metas: emptied(&mut self.metas),
        }
    }
}

impl DecodedCsv {
    /// Adds the rows typed as `typed` to the frame; the messages holding a
    /// value that does not fit go to `late`.
    fn add_to(self, b: &mut FrameBuilder, typed: Typed, late: &mut Vec<BadMessage>) {
        let Typed {
            typing,
            columns,
            failures,
        } = typed;
        let mut why_refused = vec![None; self.metas.len()];
        for &(r, c) in &failures {
            let message = self.row_message[r] as usize;
            if why_refused[message].is_none() {
                let first_row = self
                    .row_message
                    .partition_point(|&m| (m as usize) < message);
                why_refused[message] = Some(format!(
                    "line {} of the message: {}, or skip such messages with on_error='skip'",
                    r - first_row + 1,
                    typing.misfit(c, self.text[c].value(r), "schema")
                ));
            }
        }
        // Rows without columns when the projection leaves none.
        let options = RecordBatchOptions::new().with_row_count(Some(self.row_message.len()));
        let batch =
            match RecordBatch::try_new_with_options(typing.schema.clone(), columns, &options) {
                Ok(b) => b,
                Err(e) => panic!("CSV columns typed by one plan do not make a batch: {e}"),
            };
        let (batch, metas) = if failures.is_empty() {
            (batch, self.metas)
        } else {
            let keep: BooleanArray = self
                .row_message
                .iter()
                .map(|&m| Some(why_refused[m as usize].is_none()))
                .collect();
            let batch = filter_record_batch(&batch, &keep).expect("one mask per row");
            let mut metas = Vec::new();
            for ((meta, why), &(s, end)) in self.metas.into_iter().zip(why_refused).zip(&self.spans)
            {
                match why {
                    None => metas.push(meta),
                    Some(why) => late.push(refused(&meta, why, &self.payloads[s..end])),
                }
            }
            (batch, metas)
        };
        if batch.num_rows() > 0 {
            b.add_part(batch, metas);
        }
    }
}

fn refused(meta: &Meta, error: String, payload: &[u8]) -> BadMessage {
    BadMessage {
        topic: meta.topic.to_string(),
        partition: meta.partition,
        offset: meta.offset,
        error,
        payload: payload.to_vec(),
    }
}

/// A text column being built, rolled back when a message turns out bad.
struct TextColumn {
    data: Vec<u8>,
    offsets: Vec<i32>,
    valid: Vec<bool>,
    nulls: usize,
}

impl TextColumn {
    fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            data: Vec::with_capacity(rows * 8),
            offsets,
            valid: Vec::with_capacity(rows),
            nulls: 0,
        }
    }

    /// Appends a field (empty: null). It must be UTF-8.
    fn push(&mut self, field: &[u8]) {
        if field.is_empty() {
            self.nulls += 1;
        }
        self.data.extend_from_slice(field);
        self.offsets.push(self.data.len() as i32);
        self.valid.push(!field.is_empty());
    }

    fn truncate(&mut self, rows: usize) {
        self.nulls -= self.valid[rows..].iter().filter(|v| !**v).count();
        self.valid.truncate(rows);
        self.offsets.truncate(rows + 1);
        self.data.truncate(self.offsets[rows] as usize);
    }

    fn finish(self) -> StringArray {
        let nulls = (self.nulls > 0).then(|| NullBuffer::from(self.valid));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        // SAFETY: every field is UTF-8 (checked with its message, split at
        // ASCII delimiters), and the offsets grow from 0 to the data's end.
        unsafe { StringArray::new_unchecked(offsets, self.data.into(), nulls) }
    }
}

/// A run's messages split into fields, in order: the column names pinned
/// by the first message with rows (or its header line).
struct Splitter<'a> {
    options: &'a CsvLineOptions,
    names: Option<Vec<String>>,
    projection: Option<&'a HashSet<String>>,
    /// Per field of a line, its column in `fields` (None: left out), up to
    /// the last field kept; made with the columns, once the names are known.
    slots: Option<Vec<Option<usize>>>,
    fields: Vec<TextColumn>,
    rows: usize,
    /// Rows to make room for: the run's messages.
    capacity: usize,
    record: csv::ByteRecord,
}

/// Splits and types a run's messages (on any thread); returns what to add
/// to the builder.
fn decode_csv_run(messages: CsvMessages, context: CsvContext) -> Settle {
    let CsvMessages {
        payloads,
        ends,
        metas: all,
    } = messages;
    let promised: usize = all.iter().map(|m| m.rows).sum();
    let mut split = Splitter {
        options: &context.options,
        names: context.names.clone(),
        projection: context.projection.as_ref(),
        slots: None,
        fields: Vec::new(),
        rows: 0,
        capacity: all.len(),
        record: csv::ByteRecord::new(),
    };
    let mut early = Vec::new();
    let mut metas = Vec::new();
    let mut spans = Vec::new();
    let mut row_message = Vec::new();
    let mut start = 0;
    for (mut meta, end) in all.into_iter().zip(ends) {
        let payload = &payloads[start..end];
        let span = (start, end);
        start = end;
        let before = split.rows;
        match split.message(payload) {
            Ok(0) => {}
            Ok(rows) => {
                meta.rows = rows;
                row_message.extend(std::iter::repeat_n(metas.len() as u32, rows));
                metas.push(meta);
                spans.push(span);
            }
            Err(error) => {
                split.roll_back(before);
                early.push(refused(&meta, error, payload));
            }
        }
    }
    let rows = split.rows;
    let names = split.names;
    let text: Vec<StringArray> = split.fields.into_iter().map(TextColumn::finish).collect();
    let decoded = (rows > 0).then(|| {
        let types = match &context.typing {
            Some(typing) => RunTypes::Pinned(Typed::new(typing.clone(), &text)),
            None => {
                let options = CsvOptions {
                    dtypes: context.options.dtypes.clone(),
                    ..CsvOptions::default()
                };
                let names = kept(names.as_deref().unwrap_or_default(), split.projection);
                let typed = Typing::plan("the CSV messages", &names, &options, &text)
                    .map(|t| Typed::new(Arc::new(t), &text))
                    .map_err(|e| e.to_string());
                RunTypes::Own(typed)
            }
        };
        let decoded = DecodedCsv {
            metas,
            payloads,
            spans,
            row_message,
            text,
        };
        (decoded, types)
    });
    Box::new(move |b: &mut FrameBuilder| {
        b.rows = (b.rows + rows).saturating_sub(promised);
        b.bad.extend(early);
        b.settle_csv(names, decoded);
    })
}

impl Splitter<'_> {
    /// Appends a message's rows; how many, or why it cannot be read (then
    /// the caller rolls the columns back).
    fn message(&mut self, payload: &[u8]) -> std::result::Result<usize, String> {
        match self.plain_lines(payload) {
            Some(text) => self.plain(text),
            None => self.records(payload),
        }
    }

    fn roll_back(&mut self, rows: usize) {
        for f in &mut self.fields {
            f.truncate(rows);
        }
        self.rows = rows;
    }

    /// Where each field of a line goes, and the columns: made once the
    /// names are known.
    fn columns(&mut self) -> (&[Option<usize>], &mut [TextColumn]) {
        let slots = self.slots.get_or_insert_with(|| {
            let names = self.names.as_deref().unwrap_or_default();
            let mut kept = 0;
            let mut slots: Vec<Option<usize>> = names
                .iter()
                .map(|n| {
                    self.projection.is_none_or(|p| p.contains(n)).then(|| {
                        kept += 1;
                        kept - 1
                    })
                })
                .collect();
            // Fields after the last one kept need not be split out.
            while slots.last() == Some(&None) {
                slots.pop();
            }
            self.fields = (0..kept)
                .map(|_| TextColumn::with_capacity(self.capacity))
                .collect();
            slots
        });
        (slots, &mut self.fields)
    }

    /// The payload as text when it is plain lines: no quotes, no carriage
    /// returns, no header, text as the encoding reads it. Such lines (what
    /// `f"{a},{b}"` writes) are split in place; the rest go through the
    /// csv reader, whose setup alone costs more than splitting a line.
    fn plain_lines<'p>(&self, payload: &'p [u8]) -> Option<&'p str> {
        let options = self.options;
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

    fn plain(&mut self, text: &str) -> std::result::Result<usize, String> {
        let delimiter = self.options.delimiter;
        let lines = || text.as_bytes().split(|&b| b == b'\n');
        let Some(first) = lines().find(|l| !l.is_empty()) else {
            return Ok(0); // no lines
        };
        let fields_of = |line: &[u8]| line.iter().filter(|&&b| b == delimiter).count() + 1;
        let width = match (&self.names, &self.options.columns) {
            (Some(names), _) => names.len(),
            (None, Some(columns)) => columns.len(),
            (None, None) => fields_of(first),
        };
        for (i, line) in lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let fields = fields_of(line);
            if fields != width {
                let names = self
                    .names
                    .clone()
                    .unwrap_or_else(|| self.options.columns.clone().unwrap_or_default());
                return Err(wrong_width(i + 1, fields, &names, width));
            }
        }
        if self.names.is_none() {
            self.names = Some(match &self.options.columns {
                Some(c) => c.clone(),
                None => (1..=width).map(|i| format!("column_{i}")).collect(),
            });
        }
        let (slots, columns) = self.columns();
        let mut rows = 0;
        for line in lines() {
            if line.is_empty() {
                continue;
            }
            for (slot, field) in slots.iter().zip(line.split(|&b| b == delimiter)) {
                if let Some(c) = *slot {
                    columns[c].push(field);
                }
            }
            rows += 1;
        }
        self.rows += rows;
        Ok(rows)
    }

    /// The data lines of a message that is not plain lines, through the
    /// csv reader. Pins the column names from the first message.
    fn records(&mut self, payload: &[u8]) -> std::result::Result<usize, String> {
        let options = self.options;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(payload);
        let mut record = std::mem::take(&mut self.record);
        let mut rows = 0;
        let mut line = 0;
        let mut header_seen = !options.header;
        let result = loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break Ok(rows),
                Err(e) => {
                    break Err(format!(
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
            if !header_seen {
                header_seen = true;
                let mut found = Vec::with_capacity(record.len());
                let mut not_text = None;
                for (i, f) in record.iter().enumerate() {
                    match decode_field(f, options.encoding) {
                        Some(text) => found.push(text.trim().to_owned()),
                        None => {
                            not_text = Some(i);
                            break;
                        }
                    }
                }
                if let Some(i) = not_text {
                    break Err(not_utf8(i, line));
                }
                match (&options.columns, &self.names) {
                    // columns= names them: the header line is only skipped.
                    (Some(_), _) => {}
                    (None, Some(names)) if *names != found => {
                        break Err(format!(
                            "the header line names the columns {found:?}, the stream's first \
                             message named {names:?}: one stream has one header"
                        ))
                    }
                    (None, Some(_)) => {}
                    (None, None) => {
                        if let Some(missing) = options.dtypes.keys().find(|d| !found.contains(d)) {
                            break Err(format!(
                                "schema names column {missing:?}, which the header line \
                                 {found:?} does not"
                            ));
                        }
                        self.names = Some(found);
                    }
                }
                continue;
            }
            let names = self.names.get_or_insert_with(|| match &options.columns {
                Some(c) => c.clone(),
                None => (1..=record.len()).map(|i| format!("column_{i}")).collect(),
            });
            if record.len() != names.len() {
                break Err(wrong_width(line, record.len(), names, names.len()));
            }
            // Only the fields kept are decoded; a row cut short is rolled back.
            let (slots, columns) = self.columns();
            let mut not_text = None;
            for (i, (slot, field)) in slots.iter().zip(record.iter()).enumerate() {
                let Some(c) = *slot else { continue };
                match decode_field(field, options.encoding) {
                    Some(text) => columns[c].push(text.as_bytes()),
                    None => {
                        not_text = Some(i);
                        break;
                    }
                }
            }
            if let Some(i) = not_text {
                break Err(not_utf8(i, line));
            }
            self.rows += 1;
            rows += 1;
        };
        self.record = record;
        result
    }
}

fn not_utf8(field: usize, line: usize) -> String {
    format!(
        "field {} on line {line} of the message is not UTF-8: pass encoding='latin-1' (or \
         'auto': UTF-8, else Latin-1)",
        field + 1
    )
}

/// The names a projection keeps, in the stream's order (all without one).
fn kept(names: &[String], projection: Option<&HashSet<String>>) -> Vec<String> {
    let wanted = |n: &&String| projection.is_none_or(|p| p.contains(*n));
    names.iter().filter(wanted).cloned().collect()
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
    fn runs_decoded_aside_read_as_one_run() {
        // The first run's temperatures are whole numbers, the later ones not:
        // the frame's types are those of all its rows.
        let n = 2 * RUN_MESSAGES + 100;
        let line = |i: usize| match i {
            i if i < RUN_MESSAGES + 10 => format!("2023-03-20 12:00:{:02},{},{i}", i % 60, i % 30),
            i => format!("2023-03-20 12:00:{:02}.5,{}.25,{i}", i % 60, i % 30),
        };
        let mut b = builder(named(&["t", "temp", "n"]));
        for i in 0..n {
            let value = if i == 40_000 {
                "1,2".to_owned()
            } else {
                line(i)
            };
            b.push(msg(value.as_bytes(), i as i64, None));
        }
        let frame = b.take_frame().unwrap().unwrap();
        assert!(frame.batches.len() >= 3, "a part per run");
        let out = frame.concat().unwrap();
        assert_eq!(out.num_rows(), n - 1);
        let types: Vec<_> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Float64,
                DataType::Int64
            ]
        );
        let numbers = out.column(2).as_primitive::<Int64Type>();
        assert_eq!(
            numbers.values().iter().sum::<i64>(),
            (0..n as i64).sum::<i64>() - 40_000
        );
        let last = out.column(1).as_primitive::<Float64Type>().value(n - 2);
        assert_eq!(last, ((n - 1) % 30) as f64 + 0.25);
        let bad = b.take_bad();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].offset, 40_000);
        assert!(
            bad[0].error.contains("2 fields where 3 columns"),
            "{}",
            bad[0].error
        );
        // Types pinned: a misfit is refused when the frame is taken, after
        // the lines of the wrong width, as when the rows were split then.
        for i in n..2 * n {
            let value = match i - n {
                40_000 => "2023-03-20 12:00:00,x,1".to_owned(),
                50_000 => "1,2".to_owned(),
                _ => line(i),
            };
            b.push(msg(value.as_bytes(), i as i64, None));
        }
        assert_eq!(b.take_frame().unwrap().unwrap().num_rows(), n - 2);
        let bad: Vec<_> = b.take_bad().into_iter().map(|m| m.offset).collect();
        assert_eq!(bad, [n as i64 + 50_000, n as i64 + 40_000]);
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn a_projection_types_only_the_columns_asked_with_the_same_values() {
        let read = |options: &CsvLineOptions, payloads: &[Vec<u8>], projection: Option<&[&str]>| {
            let mut b = builder(options.clone());
            b.projection = projection.map(|p| p.iter().map(|c| c.to_string()).collect());
            for (i, p) in payloads.iter().enumerate() {
                b.push(msg(p, i as i64, None));
            }
            let out = b.take_frame().unwrap().unwrap().concat().unwrap();
            let bad: Vec<_> = b
                .take_bad()
                .into_iter()
                .map(|m| (m.offset, m.error))
                .collect();
            (out, bad)
        };
        let line = |i: usize| match i % 3 {
            // Plain lines, split in place; temperatures whole numbers in the
            // first run only, so the runs' own types disagree.
            0 if i < RUN_MESSAGES => format!("2023-03-20 12:00:{:02},{},{i},c {i}", i % 60, i % 30),
            0 => format!("2023-03-20 12:00:{:02},{}.5,{i},code {i}", i % 60, i % 30),
            // Quoted: through the csv reader.
            1 => format!("2023-03-20 12:00:{:02},\"{}\",{i},\"a,{i}\"", i % 60, i % 7),
            _ => format!("2023-03-20 12:00:{:02},{},{i},", i % 60, i % 30),
        };
        let lines = |n: usize| -> Vec<Vec<u8>> {
            (0..n)
                .map(|i| match i {
                    // Wrong widths stay errors, whatever the projection.
                    7 => b"1,2".to_vec(),
                    // Past the last column asked, still counted.
                    9 => format!("{},extra", line(i)).into_bytes(),
                    i => line(i).into_bytes(),
                })
                .collect()
        };
        let named = named(&["t", "temp", "n", "s"]);
        let header = CsvLineOptions {
            header: true,
            ..Default::default()
        };
        let with_header = |n: usize| -> Vec<Vec<u8>> {
            let lines = lines(n);
            let head = |p: &[u8]| [b"t,temp,n,s\n".as_slice(), p].concat();
            lines.iter().map(|p| head(p)).collect()
        };
        // Enough messages for runs decoded aside, typed as one at the frame's end.
        let many = 2 * RUN_MESSAGES + 100;
        for (options, payloads) in [
            (&named, lines(40)),
            (&header, with_header(40)),
            (&named, lines(many)),
        ] {
            let (all, all_bad) = read(options, &payloads, None);
            assert_eq!(all.num_columns(), 4);
            assert_eq!(all.num_rows(), payloads.len() - 2);
            let float = payloads.len() > RUN_MESSAGES;
            assert_eq!(all.column(1).data_type() == &DataType::Float64, float);
            for wanted in [
                &["n"][..],
                &["s", "t"],
                &["temp", "nope"],
                &[],
                &["n", "s", "t", "temp"],
            ] {
                let (got, bad) = read(options, &payloads, Some(wanted));
                let keep: Vec<usize> = (0..4)
                    .filter(|&i| wanted.contains(&all.schema().field(i).name().as_str()))
                    .collect();
                assert_eq!(got, all.project(&keep).unwrap(), "{wanted:?}");
                assert_eq!(bad, all_bad, "{wanted:?}");
            }
        }
        let (_, bad) = read(&named, &lines(40), Some(&["n"]));
        let offsets: Vec<i64> = bad.iter().map(|(offset, _)| *offset).collect();
        assert_eq!(offsets, [7, 9]);
        assert!(
            bad[1].1.contains("5 fields where 4 columns"),
            "{}",
            bad[1].1
        );
        // Types pinned by the first frame: a value that does not fit a column
        // asked is refused; in a column left out it is not read.
        for (wanted, refused) in [("temp", true), ("n", false)] {
            let mut b = builder(named.clone());
            b.projection = Some(HashSet::from([wanted.to_owned()]));
            for (i, p) in lines(40).iter().enumerate() {
                b.push(msg(p, i as i64, None));
            }
            assert_eq!(b.take_frame().unwrap().unwrap().num_rows(), 38);
            b.take_bad();
            b.push(msg(b"2023-03-20 12:00:03,x,3,y", 40, None));
            let got = b.take_frame().unwrap();
            let bad = b.take_bad();
            assert_eq!((got.is_none(), bad.len()), (refused, usize::from(refused)));
            if refused {
                assert!(
                    bad[0].error.contains("\"x\" in column \"temp\""),
                    "{}",
                    bad[0].error
                );
            }
        }
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
