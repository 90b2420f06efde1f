//! Encoding a batch of records as JSONL or CSV bytes.
//!
//! [`Encoded`] is shared by the file-like sinks. It is on the hot path: the byte buffer and the
//! rejection list are reused from one batch to the next ([`Encoded::encode`]), JSON goes
//! straight into the buffer through `serde_json`, and CSV through one `csv::Writer` per batch.
//! A record that cannot be encoded is reported in [`Encoded::rejected`] and leaves no partial
//! line or row behind.

use crate::format::Format;
use crate::record::{Record, Schema};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A batch encoded as bytes, with the records that could not be encoded.
///
/// ```
/// use etl::format::Format;
/// use etl::format::Encoded;
/// let records: Vec<etl::Json> = vec![serde_json::from_str(r#"{"id":1,"name":"a,b"}"#).unwrap()];
/// let csv = Encoded::new(&records, Format::Csv, true);
/// assert_eq!(csv.bytes, b"id,name\n1,\"a,b\"\n");
/// let jsonl = Encoded::new(&records, Format::Jsonl, false);
/// assert_eq!(jsonl.bytes, b"{\"id\":1,\"name\":\"a,b\"}\n");
/// assert_eq!(jsonl.count, 1);
/// ```
#[derive(Debug, Default)]
pub struct Encoded {
    /// The encoded bytes (with a header row for CSV when asked).
    pub bytes: Vec<u8>,
    /// `(index, reason)` of records that could not be encoded; they left no partial row.
    pub rejected: Vec<(usize, String)>,
    /// How many records were encoded.
    pub count: usize,
    /// The CSV writer, kept from batch to batch: creating one allocates and zeroes an 8 KiB
    /// buffer, which cost more per 100-row batch than encoding the rows.
    csv: Option<csv::Writer<Output>>,
    /// The CSV header of the typed record type last encoded, built once rather than per batch
    /// (a typed record's header is its schema's field names: measured ~9 instructions per
    /// record with 100-row batches). Keyed by the schema, so that one `Encoded` may serve
    /// several record types.
    typed_header: Option<(&'static Schema, Vec<String>)>,
}

/// A CSV writer into a `Vec` that writes no header of its own (the header row comes from
/// [`Record::csv_header`]) and accepts rows of any length (dynamic records).
fn csv_writer(buffer: Vec<u8>) -> csv::Writer<Output> {
    csv::WriterBuilder::new().has_headers(false).flexible(true).from_writer(Output(Mutex::new(buffer)))
}

/// Where the CSV writer puts its bytes: a `Vec` that can be swapped in and out between batches
/// through the writer's `get_ref` (`csv::Writer` has no `get_mut`), so that one writer (and its
/// 8 KiB buffer) serves every batch. A `Mutex` rather than a `RefCell` so that sinks holding
/// it stay `Sync` (a pipeline's future must be `Send` to be spawned); `write` reaches the Vec
/// through `get_mut`, without locking.
#[derive(Debug, Default)]
struct Output(Mutex<Vec<u8>>);

impl Output {
    /// The Vec, for swapping and measuring. Nothing can panic while it is held (only a length
    /// is read or the Vec taken), so a poisoned lock still holds a consistent Vec.
    fn vec(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Encoded {
    /// Encode `records` in `format`; CSV gets a header row when `header` is true.
    ///
    /// ```
    /// use etl::format::Format;
    /// let records: Vec<etl::Json> = vec![serde_json::from_str(r#"{"id":1}"#).unwrap()];
    /// let e = etl::sink::Encoded::new(&records, Format::Csv, true);
    /// assert_eq!(e.bytes, b"id\n1\n");
    /// ```
    pub fn new<T: Record>(records: &[T], format: Format, header: bool) -> Encoded {
        let mut encoded = Encoded::default();
        encoded.encode(records, format, header);
        encoded
    }

    /// Encode `records` into this value, replacing what it held but reusing its allocations
    /// (call it once per batch on the same `Encoded`).
    ///
    /// ```
    /// use etl::format::Format;
    /// let rec = |s: &str| -> etl::Json { serde_json::from_str(s).unwrap() };
    /// let mut e = etl::sink::Encoded::default();
    /// e.encode(&[rec(r#"{"a":1}"#)], Format::Jsonl, false);
    /// e.encode(&[rec(r#"{"a":2}"#), rec(r#"{"a":3}"#)], Format::Jsonl, false);
    /// assert_eq!((e.bytes.as_slice(), e.count), (&b"{\"a\":2}\n{\"a\":3}\n"[..], 2));
    /// ```
    pub fn encode<T: Record>(&mut self, records: &[T], format: Format, header: bool) {
        match format {
            Format::Jsonl => self.encode_jsonl(records),
            Format::Csv => {
                let schema = T::schema();
                if schema.is_dynamic() {
                    let columns = T::csv_header(records);
                    self.encode_csv(records, &columns, header);
                    return;
                }
                let columns = match self.typed_header.take() {
                    Some((cached, columns)) if std::ptr::eq(cached, schema) => columns,
                    _ => T::csv_header(records),
                };
                self.encode_csv(records, &columns, header);
                self.typed_header = Some((schema, columns));
            }
        }
    }

    /// Encode `records` as JSON lines into this value (reusing its allocations).
    ///
    /// ```
    /// let mut e = etl::sink::Encoded::default();
    /// e.encode_jsonl(&["a"]);
    /// assert_eq!(e.bytes, b"\"a\"\n");
    /// ```
    pub fn encode_jsonl<T: serde::Serialize>(&mut self, records: &[T]) {
        self.clear();
        for (i, record) in records.iter().enumerate() {
            let start = self.bytes.len();
            match serde_json::to_writer(&mut self.bytes, record) {
                Ok(()) => {
                    self.bytes.push(b'\n');
                    self.count += 1;
                }
                Err(e) => {
                    self.bytes.truncate(start);
                    self.rejected.push((i, format!("cannot encode as JSON: {e}")));
                }
            }
        }
    }

    /// Encode `records` as CSV rows under the given `columns` (rather than
    /// [`Record::csv_header`] of this batch), with the header row first when `header` is true.
    /// Sinks that append several batches to one file use it to keep the file's header.
    ///
    /// ```
    /// let records: Vec<etl::Json> = vec![serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap()];
    /// let mut e = etl::sink::Encoded::default();
    /// e.encode_csv(&records, &["a".to_string(), "b".to_string()], false);
    /// assert_eq!(e.bytes, b"1,2\n");
    /// ```
    pub fn encode_csv<T: Record>(&mut self, records: &[T], columns: &[String], header: bool) {
        self.clear();
        if records.is_empty() {
            return;
        }
        // Rows are rarely refused (a value CSV cannot hold), so encode without tracking where
        // each row starts; if one is refused, start over on the path that can cut it out.
        if !self.encode_csv_rows(records, columns, header, false) {
            self.clear();
            self.encode_csv_rows(records, columns, header, true);
        }
    }

    /// Encode the rows; with `careful`, a refused row is cut out and listed in `rejected`,
    /// otherwise the first refused row stops the encoding and `false` is returned.
    fn encode_csv_rows<T: Record>(&mut self, records: &[T], columns: &[String], header: bool, careful: bool) -> bool {
        let mut writer = self.csv.take().unwrap_or_else(|| csv_writer(Vec::new()));
        // The writer holds no buffered bytes between batches (see below): swap our Vec in.
        *writer.get_ref().vec() = std::mem::take(&mut self.bytes);
        if header && !columns.is_empty() {
            if let Err(e) = writer.write_record(columns) {
                // Cannot happen with a Vec; if it did, no row of the batch could be trusted.
                self.bytes = Self::into_vec(Self::reset(writer, 0));
                self.rejected.extend((0..records.len()).map(|i| (i, format!("cannot encode the CSV header: {e}"))));
                return true;
            }
        }
        for (i, record) in records.iter().enumerate() {
            // Flushing moves the writer's buffered bytes into the Vec, so that its length is
            // exactly where this record starts (flushing into a Vec cannot fail).
            let start = if careful {
                let _ = writer.flush();
                writer.get_ref().vec().len()
            } else {
                0
            };
            match record.write_csv_row(columns, &mut writer) {
                Ok(()) => self.count += 1,
                Err(_) if !careful => {
                    self.bytes = Self::into_vec(Self::reset(writer, 0));
                    return false;
                }
                Err(e) => {
                    // The writer may hold part of the row (and believe a row is in progress):
                    // drop it, cut the Vec back, and carry on with a fresh writer.
                    writer = Self::reset(writer, start);
                    self.rejected.push((i, format!("cannot encode as CSV: {e}")));
                }
            }
        }
        if let Err(e) = writer.flush() {
            // Flushing into a Vec cannot fail; if it did, the writer's state is unknown.
            tracing::error!(error = %e, "flushing a csv writer into a Vec failed");
            self.bytes = Self::into_vec(writer);
            return true;
        }
        self.bytes = std::mem::take(&mut *writer.get_ref().vec());
        self.csv = Some(writer);
        true
    }

    /// The writer's Vec with everything flushed into it (flushing into a Vec cannot fail).
    fn into_vec(writer: csv::Writer<Output>) -> Vec<u8> {
        match writer.into_inner() {
            Ok(output) => output.0.into_inner().unwrap_or_else(PoisonError::into_inner),
            Err(e) => {
                tracing::error!(error = %e.error(), "flushing a csv writer into a Vec failed");
                Vec::new()
            }
        }
    }

    /// Replace `writer` by a fresh one over its Vec cut back to `len` bytes (dropping
    /// whatever part of a row it held).
    fn reset(writer: csv::Writer<Output>, len: usize) -> csv::Writer<Output> {
        let mut buffer = Self::into_vec(writer);
        buffer.truncate(len);
        csv_writer(buffer)
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.rejected.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Field, Schema};
    use crate::Json;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    fn rec(v: serde_json::Value) -> Json {
        serde_json::from_value(v).unwrap()
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Row {
        id: i64,
        name: String,
        score: Option<i64>,
    }

    impl Record for Row {
        fn schema() -> &'static Schema {
            static S: Schema = Schema {
                name: "Row",
                fields: &[
                    Field { name: "id", rust_name: "id", ty: "i64" },
                    Field { name: "name", rust_name: "name", ty: "String" },
                    Field { name: "score", rust_name: "score", ty: "Option<i64>" },
                ],
            };
            &S
        }
    }

    /// A record whose serialisation fails after writing part of itself.
    #[derive(Debug, Deserialize)]
    struct Flaky {
        id: i64,
        fail: bool,
    }

    impl Serialize for Flaky {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeStruct};
            let mut st = s.serialize_struct("Flaky", 2)?;
            st.serialize_field("id", &self.id)?;
            if self.fail {
                return Err(S::Error::custom("refused"));
            }
            st.serialize_field("fail", &self.fail)?;
            st.end()
        }
    }

    impl Record for Flaky {
        fn schema() -> &'static Schema {
            static S: Schema = Schema {
                name: "Flaky",
                fields: &[Field { name: "id", rust_name: "id", ty: "i64" }, Field { name: "fail", rust_name: "fail", ty: "bool" }],
            };
            &S
        }
    }

    #[test]
    fn jsonl_one_object_per_line() {
        let e = Encoded::new(&[rec(json!({"id": 1, "s": "é\n"})), rec(json!({"id": 2}))], Format::Jsonl, true);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "{\"id\":1,\"s\":\"é\\n\"}\n{\"id\":2}\n");
        assert_eq!(e.count, 2);
        assert!(e.rejected.is_empty());
    }

    #[test]
    fn integers_stay_integers_and_none_is_empty() {
        let rows = [Row { id: 1_000_000_000, name: "a".into(), score: None }, Row { id: 2, name: "b".into(), score: Some(3_000_000_000) }];
        let e = Encoded::new(&rows, Format::Csv, true);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "id,name,score\n1000000000,a,\n2,b,3000000000\n");
        let dynamic = [rec(json!({"id": 1_000_000_123, "v": null})), rec(json!({"id": 7, "v": 5}))];
        let e = Encoded::new(&dynamic, Format::Csv, false);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "1000000123,\n7,5\n");
        let e = Encoded::new(&dynamic, Format::Jsonl, false);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "{\"id\":1000000123,\"v\":null}\n{\"id\":7,\"v\":5}\n");
    }

    #[test]
    fn awkward_strings_are_quoted() {
        let rows = [Row { id: 1, name: "a,b \"q\"\nline2 🦀 שלום".into(), score: Some(1) }];
        let e = Encoded::new(&rows, Format::Csv, true);
        let text = String::from_utf8(e.bytes.clone()).unwrap();
        assert_eq!(text, "id,name,score\n1,\"a,b \"\"q\"\"\nline2 🦀 שלום\",1\n");
        let mut reader = csv::Reader::from_reader(&e.bytes[..]);
        let back: Vec<Row> = reader.deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn failing_records_leave_no_partial_row() {
        let rows = [Flaky { id: 1, fail: false }, Flaky { id: 2, fail: true }, Flaky { id: 3, fail: false }];
        let e = Encoded::new(&rows, Format::Csv, true);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "id,fail\n1,false\n3,false\n");
        assert_eq!(e.count, 2);
        assert_eq!(e.rejected.len(), 1);
        assert_eq!(e.rejected[0].0, 1);
        assert!(e.rejected[0].1.contains("refused"), "{}", e.rejected[0].1);

        let e = Encoded::new(&rows, Format::Jsonl, false);
        assert_eq!(String::from_utf8(e.bytes).unwrap(), "{\"id\":1,\"fail\":false}\n{\"id\":3,\"fail\":false}\n");
        assert_eq!(e.rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn nested_values_in_typed_csv_are_rejected() {
        #[derive(Serialize, Deserialize)]
        struct Nested {
            id: i64,
            tags: Vec<String>,
        }
        impl Record for Nested {
            fn schema() -> &'static Schema {
                static S: Schema = Schema {
                    name: "Nested",
                    fields: &[
                        Field { name: "id", rust_name: "id", ty: "i64" },
                        Field { name: "tags", rust_name: "tags", ty: "Vec<String>" },
                    ],
                };
                &S
            }
        }
        let e = Encoded::new(&[Nested { id: 1, tags: vec!["x".into()] }], Format::Csv, true);
        // csv flattens sequences, so either it is a row or it is rejected: never a partial row.
        let text = String::from_utf8(e.bytes).unwrap();
        assert!(text.starts_with("id,tags\n"));
        assert_eq!(e.count + e.rejected.len(), 1);
        if e.count == 0 {
            assert_eq!(text, "id,tags\n");
        }
    }

    #[test]
    fn large_rows_and_buffer_reuse() {
        let big = "x".repeat(20_000);
        let rows = [Flaky { id: 1, fail: false }, Flaky { id: 2, fail: true }];
        let mut e = Encoded::default();
        e.encode(&rows, Format::Csv, false);
        assert_eq!(e.bytes, b"1,false\n");
        let rows = [Row { id: 1, name: big.clone(), score: None }, Row { id: 2, name: "b".into(), score: None }];
        e.encode(&rows, Format::Csv, false);
        assert_eq!(e.bytes.len(), 2 + big.len() + 2 + 5);
        assert_eq!(e.count, 2);
        assert!(e.rejected.is_empty());
    }

    #[test]
    fn empty_batch_is_empty() {
        let e = Encoded::new::<Row>(&[], Format::Csv, true);
        assert!(e.bytes.is_empty());
        assert_eq!(e.count, 0);
    }
}
