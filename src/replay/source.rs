//! What a replay reads: a CSV file (read natively, in chunks) or any Arrow
//! stream (a frame, a Parquet scanner).

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::SchemaRef;

use crate::codec::csv::{BadRow, CsvOptions, CsvReader};
use crate::error::{Error, Result};

/// Where a replay's rows come from.
pub enum Source {
    Csv { path: String, options: CsvOptions },
    Stream(Box<dyn RecordBatchReader + Send>),
}

impl Source {
    pub(super) fn open(self) -> Result<Reader> {
        Ok(match self {
            Source::Csv { path, options } => {
                Reader::Csv(Box::new(CsvReader::open(&path, options)?))
            }
            Source::Stream(stream) => Reader::Stream(stream),
        })
    }
}

/// An opened source, read batch by batch.
pub(super) enum Reader {
    Csv(Box<CsvReader>),
    Stream(Box<dyn RecordBatchReader + Send>),
}

impl Reader {
    pub(super) fn schema(&self) -> SchemaRef {
        match self {
            Reader::Csv(r) => r.schema_ref(),
            Reader::Stream(r) => r.schema(),
        }
    }

    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Reader::Csv(r) => r.next_batch(),
            Reader::Stream(r) => r
                .next()
                .transpose()
                .map_err(|e| Error::Schema(format!("cannot read the replay source: {e}"))),
        }
    }

    /// A CSV source's rows skipped so far, and the first of them.
    pub(super) fn skipped(&self) -> Option<(u64, &[BadRow])> {
        match self {
            Reader::Csv(r) => Some((r.rows_skipped, &r.bad_rows)),
            Reader::Stream(_) => None,
        }
    }
}
