//! Schema steps on dynamic records (`Json`), applied at run time on field paths: `rename`,
//! `select`, `drop`, and `into(Type)` ([`DecodeInto`]). A record without a named field, or one
//! that does not fit the type, is a per-record failure (dead-lettered with the error and the
//! record), never a panic and never a silent drop. On typed records, `pipeline!` checks these
//! steps at compile time instead.

use super::Operator;
use crate::batch::{Batch, Failure, FailureKind};
use crate::record::Json;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// Rename fields: `rename(a -> b, length.new -> length_new)`. Renaming onto an existing field,
/// or a missing field, fails the record.
///
/// ```
/// use etl::prelude::*;
/// use etl::operator::json::Rename;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let r: Json = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
/// let out = Rename::new(&[("a", "x")]).apply(Batch::from_records(vec![r])).await;
/// assert_eq!(serde_json::to_string(&out.records()[0]).unwrap(), r#"{"x":1,"b":2}"#);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Rename {
    pairs: Vec<(String, String)>,
}

impl Rename {
    /// Rename each `(from, to)` in order.
    pub fn new(pairs: &[(&str, &str)]) -> Rename {
        Rename { pairs: pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect() }
    }
}

impl Operator<Json> for Rename {
    type Out = Json;
    async fn apply(&mut self, batch: Batch<Json>) -> Batch<Json> {
        batch.try_for_each(|r| self.pairs.iter().try_for_each(|(from, to)| r.rename(from, to)))
    }
}

/// Keep only the named top-level fields, in that order: `select(id, title)`.
///
/// ```
/// use etl::prelude::*;
/// use etl::operator::json::Select;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let r: Json = serde_json::from_str(r#"{"a":1,"b":2,"c":3}"#).unwrap();
/// let out = Select::new(&["c", "a"]).apply(Batch::from_records(vec![r])).await;
/// assert_eq!(serde_json::to_string(&out.records()[0]).unwrap(), r#"{"c":3,"a":1}"#);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Select {
    fields: Vec<String>,
}

impl Select {
    /// Keep these fields.
    pub fn new(fields: &[&str]) -> Select {
        Select { fields: fields.iter().map(|f| (*f).to_owned()).collect() }
    }
}

impl Operator<Json> for Select {
    type Out = Json;
    async fn apply(&mut self, batch: Batch<Json>) -> Batch<Json> {
        let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        batch.try_for_each(|r| r.select(&fields))
    }
}

/// Remove the named fields (dotted paths allowed): `drop(meta, length.old)`. A missing field
/// fails the record, like `select` and `rename`: the three agree on what a field name means.
///
/// ```
/// use etl::prelude::*;
/// use etl::operator::json::DropFields;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let r: Json = serde_json::from_str(r#"{"a":1,"b":{"c":2,"d":3}}"#).unwrap();
/// let out = DropFields::new(&["a", "b.c"]).apply(Batch::from_records(vec![r])).await;
/// assert_eq!(serde_json::to_string(&out.records()[0]).unwrap(), r#"{"b":{"d":3}}"#);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct DropFields {
    fields: Vec<String>,
}

impl DropFields {
    /// Remove these fields.
    pub fn new(fields: &[&str]) -> DropFields {
        DropFields { fields: fields.iter().map(|f| (*f).to_owned()).collect() }
    }
}

impl Operator<Json> for DropFields {
    type Out = Json;
    async fn apply(&mut self, batch: Batch<Json>) -> Batch<Json> {
        batch.try_for_each(|r| {
            self.fields.iter().try_for_each(|f| r.remove(f).map(drop).ok_or_else(|| crate::record::JsonPathError::Missing(f.clone())))
        })
    }
}

/// Decode each record into `T` through serde: `into(T)` on `Json` records. A record that does
/// not fit (a field missing or of another type) leaves the batch as a
/// [`FailureKind::Decode`] failure with serde's error, carrying the raw bytes the source read
/// or, when the source kept none, the record as JSON; the batch goes on.
///
/// ```
/// use etl::prelude::*;
/// use etl::operator::json::DecodeInto;
///
/// #[derive(Debug, PartialEq, Deserialize)]
/// struct Row { a: i64 }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let rows: Vec<Json> = vec![serde_json::from_str(r#"{"a":1}"#).unwrap(), serde_json::from_str(r#"{"a":"x"}"#).unwrap()];
/// let out = DecodeInto::<Row>::new().apply(Batch::from_records(rows)).await;
/// assert_eq!(out.records(), [Row { a: 1 }]);
/// assert_eq!(&out.failures()[0].payload[..], br#"{"a":"x"}"#);
/// # });
/// ```
pub struct DecodeInto<T>(PhantomData<fn() -> T>);

impl<T> DecodeInto<T> {
    /// The decoder.
    pub fn new() -> DecodeInto<T> {
        DecodeInto(PhantomData)
    }
}

impl<T> Default for DecodeInto<T> {
    fn default() -> Self {
        DecodeInto::new()
    }
}

impl<T> std::fmt::Debug for DecodeInto<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodeInto<{}>", std::any::type_name::<T>())
    }
}

impl<T: DeserializeOwned + Send + 'static> Operator<Json> for DecodeInto<T> {
    type Out = T;
    async fn apply(&mut self, batch: Batch<Json>) -> Batch<T> {
        let parts = batch.into_parts();
        let mut records = Vec::with_capacity(parts.records.len());
        let mut meta = Vec::with_capacity(parts.records.len());
        let mut failures = parts.failures;
        for (record, m) in parts.records.into_iter().zip(parts.meta) {
            // With the source's bytes kept, the record can be consumed (its strings move into
            // `T`); without, it is read by reference so that a failure still holds it whole.
            let value = serde_json::Value::Object(record.0);
            let decoded = if m.raw.is_some() {
                serde_json::from_value(value).map_err(|e| (e, None))
            } else {
                T::deserialize(&value).map_err(|e| (e, Some(value)))
            };
            match decoded {
                Ok(t) => {
                    records.push(t);
                    meta.push(m);
                }
                Err((e, record)) => {
                    let error = format!("into `{}`: {e}", std::any::type_name::<T>());
                    failures.push(Failure::of_record(&record, m, FailureKind::Decode, error));
                }
            }
        }
        Batch::new(records, meta, failures, parts.ack, parts.origin).with_positions(parts.positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[tokio::test]
    async fn records_missing_a_field_fail_alone() {
        let batch = Batch::from_records(vec![rec(r#"{"a":1}"#), rec(r#"{"b":1}"#), rec(r#"{"a":2,"x":0}"#)]);
        let out = Rename::new(&[("a", "x")]).apply(batch).await;
        assert_eq!(out.len(), 1, "a rename onto an existing field fails too");
        let errors: Vec<&str> = out.failures().iter().map(|f| f.error.as_str()).collect();
        assert_eq!(errors, ["field `a` is missing", "cannot rename onto `x`: the field already exists"]);
        assert_eq!(&out.failures()[1].payload[..], br#"{"a":2,"x":0}"#, "the record as it came in");

        let out = DropFields::new(&["a"]).apply(Batch::from_records(vec![rec(r#"{"b":1}"#)])).await;
        assert_eq!(out.failures()[0].error, "field `a` is missing");
        let out = Select::new(&["a"]).apply(Batch::from_records(vec![rec(r#"{"b":1}"#)])).await;
        assert_eq!(out.failures().len(), 1);
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Row {
        a: i64,
        b: String,
    }

    #[tokio::test]
    async fn records_that_do_not_fit_fail_alone_with_what_came_in() {
        let batch = Batch::from_records(vec![rec(r#"{"a":1,"b":"x"}"#), rec(r#"{"a":"two","b":"y"}"#), rec(r#"{"a":3}"#)]);
        let out = DecodeInto::<Row>::new().apply(batch).await;
        assert_eq!(out.records(), [Row { a: 1, b: "x".into() }]);
        assert_eq!(out.meta().len(), 1);
        let failures = out.failures();
        assert_eq!(failures.len(), 2);
        assert!(failures.iter().all(|f| f.kind == FailureKind::Decode));
        assert!(failures[0].error.contains("invalid type: string \"two\", expected i64"), "{}", failures[0].error);
        assert_eq!(&failures[0].payload[..], br#"{"a":"two","b":"y"}"#);
        assert!(failures[1].error.contains("missing field `b`"), "{}", failures[1].error);

        // The source's raw bytes, when it kept them, are the payload.
        let raw = bytes::Bytes::from_static(b"{\"a\": \"two\"}");
        let meta = vec![crate::record::Meta::default().with_raw(raw.clone())];
        let batch = Batch::new(vec![rec(r#"{"a":"two"}"#)], meta, Vec::new(), crate::ack::Ack::none(), "memory".into());
        let out = DecodeInto::<Row>::new().apply(batch).await;
        assert_eq!(out.failures()[0].payload, raw);
    }
}
