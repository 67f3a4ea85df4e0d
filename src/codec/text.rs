//! Text columns: UTF-8 checks of text read as binary, and string views
//! (what Polars holds) made over the same buffers without a copy.

use std::sync::Arc;

use arrow_array::builder::make_view;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryViewArray, GenericBinaryArray, GenericStringArray, OffsetSizeTrait,
    RecordBatch, RecordBatchOptions, StringViewArray,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema, SchemaRef};

/// `batch`, its text read as binary, with `schema`'s types back once the
/// text is checked to be UTF-8: plain, and with string views when plain
/// text was read as binary (views made in the same pass as the check).
/// Arrow has checked the offsets.
pub(super) fn text_checked(
    batch: RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<(RecordBatch, Option<RecordBatch>), ArrowError> {
    let not_utf8 = |f: &Field| {
        ArrowError::InvalidArgumentError(format!(
            "column {:?} holds bytes that are not UTF-8",
            f.name()
        ))
    };
    let mut plain = Vec::with_capacity(batch.num_columns());
    let mut viewed = Vec::with_capacity(batch.num_columns());
    for (col, f) in batch.columns().iter().zip(schema.fields()) {
        let (text, views): (ArrayRef, Option<StringViewArray>) = match col.data_type() {
            DataType::Binary if f.data_type() == &DataType::Utf8 => {
                let (text, views) =
                    utf8_of_binary(col.as_binary::<i32>()).ok_or_else(|| not_utf8(f))?;
                (Arc::new(text), views)
            }
            DataType::LargeBinary if f.data_type() == &DataType::LargeUtf8 => {
                let (text, views) =
                    utf8_of_binary(col.as_binary::<i64>()).ok_or_else(|| not_utf8(f))?;
                (Arc::new(text), views)
            }
            DataType::BinaryView if f.data_type() == &DataType::Utf8View => {
                let binary = col.as_binary_view();
                if !views_are_utf8(binary) {
                    return Err(not_utf8(f));
                }
                // SAFETY: every value was just checked to be UTF-8.
                (
                    Arc::new(unsafe { binary.clone().to_string_view_unchecked() }),
                    None,
                )
            }
            _ => (col.clone(), None),
        };
        viewed.push(views.map(|v| Arc::new(v) as ArrayRef));
        plain.push(text);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let plain = RecordBatch::try_new_with_options(schema.clone(), plain, &options)?;
    let viewed = with_views(&plain, viewed);
    Ok((plain, viewed))
}

/// `binary` (offsets checked by arrow) as text, with its string views (as
/// `string_views` makes them) when under 4 GiB; None unless its bytes are
/// UTF-8 from the first offset to the last and every offset is on a
/// character boundary (arrow's own check, here in the pass making views).
fn utf8_of_binary<O: OffsetSizeTrait>(
    binary: &GenericBinaryArray<O>,
) -> Option<(GenericStringArray<O>, Option<StringViewArray>)> {
    let values = binary.values();
    let bytes = values.as_slice();
    let offsets = binary.value_offsets();
    let (first, last) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
    std::str::from_utf8(&bytes[first..last]).ok()?;
    // `at` <= `last` <= bytes.len(): arrow checked the offsets.
    let boundary = |at: usize| at == last || (bytes[at] as i8) >= -0x40;
    let views = if bytes.len() < u32::MAX as usize {
        let mut ok = boundary(first);
        let views: Vec<u128> = offsets
            .windows(2)
            .map(|w| {
                let end = w[1].as_usize();
                ok &= boundary(end);
                view_of(bytes, w[0].as_usize(), end)
            })
            .collect();
        if !ok {
            return None;
        }
        // SAFETY: each view describes a range of `values` (buffer 0) from
        // one character boundary to another of UTF-8; nulls are kept.
        Some(unsafe {
            StringViewArray::new_unchecked(
                ScalarBuffer::from(views),
                Arc::from([values.clone()]),
                binary.nulls().cloned(),
            )
        })
    } else {
        if !offsets.iter().all(|o| boundary(o.as_usize())) {
            return None;
        }
        None
    };
    // SAFETY: as above, every value is UTF-8.
    let text = unsafe {
        GenericStringArray::new_unchecked(
            binary.offsets().clone(),
            values.clone(),
            binary.nulls().cloned(),
        )
    };
    Some((text, views))
}

/// Whether every view (null or not, as arrow's own check) is UTF-8. A data
/// buffer that is UTF-8 as a whole is checked once; a view into it is then
/// UTF-8 when it starts and ends on character boundaries. Views into other
/// buffers are checked one by one. `views` has passed arrow's binary view
/// validation (bounds, prefixes, zero padding).
fn views_are_utf8(views: &BinaryViewArray) -> bool {
    const ASCII: u128 = 0x8080_8080_8080_8080_8080_8080;
    let buffers = views.data_buffers();
    let whole: Vec<bool> = buffers
        .iter()
        .map(|b| std::str::from_utf8(b).is_ok())
        .collect();
    let boundary = |b: &[u8], i: usize| b.get(i).is_none_or(|&c| (c as i8) >= -0x40);
    views.views().iter().all(|&v| {
        let len = v as u32 as usize;
        if len <= 12 {
            (v >> 32) & ASCII == 0 || std::str::from_utf8(&v.to_le_bytes()[4..4 + len]).is_ok()
        } else {
            let index = (v >> 64) as u32 as usize;
            let start = (v >> 96) as u32 as usize;
            let b = buffers[index].as_slice();
            if whole[index] {
                boundary(b, start) && boundary(b, start + len)
            } else {
                std::str::from_utf8(&b[start..start + len]).is_ok()
            }
        }
    })
}

/// `batch` with its top-level Utf8/LargeUtf8 columns as string views over
/// the same data buffers (columns of 4 GiB of text or more stay as they
/// are); None if no column changes.
pub fn batch_with_string_views(batch: &RecordBatch) -> Option<RecordBatch> {
    let views = batch
        .columns()
        .iter()
        .map(|c| -> Option<ArrayRef> {
            match c.data_type() {
                DataType::Utf8 => Some(Arc::new(string_views(c.as_string::<i32>()))),
                DataType::LargeUtf8 if c.as_string::<i64>().values().len() < u32::MAX as usize => {
                    Some(Arc::new(string_views(c.as_string::<i64>())))
                }
                _ => None,
            }
        })
        .collect();
    with_views(batch, views)
}

/// `batch` with the columns that have a view array (one per column) replaced
/// by it; None if none has.
fn with_views(batch: &RecordBatch, views: Vec<Option<ArrayRef>>) -> Option<RecordBatch> {
    if views.iter().all(Option::is_none) {
        return None;
    }
    let schema = batch.schema();
    let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .zip(views)
        .map(|((f, c), v)| match v {
            Some(v) => (
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
                v,
            ),
            None => (f.clone(), c.clone()),
        })
        .unzip();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(schema), columns, &options).ok()
}

/// `strings` as string views over its own data buffer (under 4 GiB): what
/// `StringViewArray::from` gives, without a builder call per string (a
/// short string's view comes from one 16-byte load where the buffer allows).
pub fn string_views<O: OffsetSizeTrait>(strings: &GenericStringArray<O>) -> StringViewArray {
    let data = strings.values();
    let bytes = data.as_slice();
    debug_assert!(bytes.len() < u32::MAX as usize);
    let views: Vec<u128> = strings
        .value_offsets()
        .windows(2)
        .map(|w| view_of(bytes, w[0].as_usize(), w[1].as_usize()))
        .collect();
    // SAFETY: every view describes a range of `data` that holds valid UTF-8
    // (a string of a valid StringArray), in buffer 0; nulls are kept.
    unsafe {
        StringViewArray::new_unchecked(
            ScalarBuffer::from(views),
            Arc::from([data.clone()]),
            strings.nulls().cloned(),
        )
    }
}

/// The view of `bytes[start..end]` in buffer 0 (`start <= end <= bytes.len()`).
#[inline]
fn view_of(bytes: &[u8], start: usize, end: usize) -> u128 {
    let len = end - start;
    if len > 12 {
        let prefix = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
        // length | prefix | buffer 0 | offset
        (len as u128) | (prefix as u128) << 32 | (start as u128) << 96
    } else if let Some(window) = bytes.get(start..start + 16) {
        // length | the string inline, zero-padded
        let raw = u128::from_le_bytes(window.try_into().unwrap());
        let mask = (1u128 << (8 * len)) - 1;
        (len as u128) | (raw & mask) << 32
    } else {
        make_view(&bytes[start..end], 0, start as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn string_views_match_arrows_conversion() {
        let mut values: Vec<Option<String>> = (0..40)
            .map(|n| Some("é".repeat(n / 2) + "x".repeat(n % 2).as_str()))
            .collect();
        values.insert(3, None);
        values.push(Some("tail".into())); // short, at the very end of the buffer
        let strings = StringArray::from(values.clone());
        for array in [strings.clone(), strings.slice(5, 30)] {
            let ours = string_views(&array);
            assert_eq!(ours, StringViewArray::from(&array));
            ours.to_data().validate_full().unwrap();
        }
        let large = arrow_array::LargeStringArray::from(values);
        assert_eq!(string_views(&large), StringViewArray::from(&large));
    }
}
