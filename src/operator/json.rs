//! Schema steps on dynamic records (`Json`), applied at run time on field paths: `rename`,
//! `select`, `drop`. A record without a named field is a per-record failure (dead-lettered with
//! the error), never a panic and never a silent drop. On typed records, `pipeline!` checks these
//! steps at compile time instead.

use super::Operator;
use crate::batch::Batch;
use crate::record::Json;

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
}
