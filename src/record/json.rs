//! `Json`: the dynamic record, an ordered JSON object with field-path access.

use super::{Record, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A schemaless record: an ordered JSON object. Field paths use dots: `length.new`.
///
/// ```
/// use etl::Json;
/// let mut r: Json = serde_json::from_str(r#"{"id":1,"length":{"new":42}}"#).unwrap();
/// assert_eq!(r.get("length.new"), Some(&serde_json::json!(42)));
/// r.rename("length.new", "length_new").unwrap();
/// assert_eq!(r.get("length_new"), Some(&serde_json::json!(42)));
/// assert!(r.get("length.new").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(pub Map<String, Value>);

/// A field-path operation on a [`Json`] record that cannot be done; the record is dead-lettered.
///
/// ```
/// let mut r = etl::Json::default();
/// assert!(matches!(r.rename("a", "b"), Err(etl::record::JsonPathError::Missing(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The path names no field of this record.
    #[error("field `{0}` is missing")]
    Missing(String),
    /// The target of a rename already exists.
    #[error("cannot rename onto `{0}`: the field already exists")]
    Exists(String),
    /// A path segment before the last one is not an object.
    #[error("`{0}` is not an object")]
    NotAnObject(String),
}

impl Json {
    /// An empty object.
    pub fn new() -> Json {
        Json(Map::new())
    }

    /// The value at a dotted path, if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut segments = path.split('.');
        let first = segments.next()?;
        segments.try_fold(self.0.get(first)?, |value, seg| value.as_object()?.get(seg))
    }

    /// The value at a dotted path, mutable.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Value> {
        let mut segments = path.split('.');
        let first = segments.next()?;
        segments.try_fold(self.0.get_mut(first)?, |value, seg| value.as_object_mut()?.get_mut(seg))
    }

    /// Remove and return the value at a dotted path.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        match path.rsplit_once('.') {
            None => self.0.shift_remove(path),
            Some((parent, last)) => self.get_mut(parent)?.as_object_mut()?.shift_remove(last),
        }
    }

    /// Set the value at a dotted path, creating intermediate objects; returns the old value.
    pub fn insert(&mut self, path: &str, value: Value) -> Result<Option<Value>, JsonPathError> {
        let (parent, last) = match path.rsplit_once('.') {
            None => return Ok(self.0.insert(path.to_owned(), value)),
            Some(split) => split,
        };
        let mut object = &mut self.0;
        for seg in parent.split('.') {
            let slot = object.entry(seg.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            object = slot.as_object_mut().ok_or_else(|| JsonPathError::NotAnObject(seg.to_owned()))?;
        }
        Ok(object.insert(last.to_owned(), value))
    }

    /// Move the value at `from` to `to`. A missing source or an existing target is an error, so
    /// that a rename never silently drops a value.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), JsonPathError> {
        if self.get(to).is_some() {
            return Err(JsonPathError::Exists(to.to_owned()));
        }
        if !from.contains('.') && !to.contains('.') {
            if !self.0.contains_key(from) {
                return Err(JsonPathError::Missing(from.to_owned()));
            }
            // Keep the field's position in the object (serde_json's map has no keyed insert at
            // an index, so rebuild it: one pass, no value copied).
            let fields = std::mem::take(&mut self.0);
            self.0 = fields.into_iter().map(|(k, v)| if k == from { (to.to_owned(), v) } else { (k, v) }).collect();
            return Ok(());
        }
        let value = self.remove(from).ok_or_else(|| JsonPathError::Missing(from.to_owned()))?;
        self.insert(to, value).map(|_| ())
    }

    /// Keep only the named top-level fields, in the order given; a missing one is an error.
    pub fn select(&mut self, fields: &[&str]) -> Result<(), JsonPathError> {
        let mut kept = Map::with_capacity(fields.len());
        for &field in fields {
            let value = self.get(field).cloned().ok_or_else(|| JsonPathError::Missing(field.to_owned()))?;
            kept.insert(field.to_owned(), value);
        }
        self.0 = kept;
        Ok(())
    }
}

impl From<Map<String, Value>> for Json {
    fn from(map: Map<String, Value>) -> Json {
        Json(map)
    }
}

/// The bytes of one CSV cell for a JSON value: strings as they are (borrowed), null as an empty
/// cell, numbers and booleans as JSON writes them, arrays and objects as JSON text.
fn csv_cell(value: Option<&Value>) -> std::borrow::Cow<'_, [u8]> {
    match value {
        None | Some(Value::Null) => std::borrow::Cow::Borrowed(b""),
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_bytes()),
        Some(other) => std::borrow::Cow::Owned(other.to_string().into_bytes()),
    }
}

impl Record for Json {
    fn schema() -> &'static Schema {
        &Schema::DYNAMIC
    }

    /// Every top-level key of the batch, in the order first seen.
    fn csv_header(batch: &[Self]) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut header = Vec::new();
        for key in batch.iter().flat_map(|r| r.0.keys()) {
            if seen.insert(key.as_str()) {
                header.push(key.clone());
            }
        }
        header
    }

    /// One cell per header column (a missing key is an empty cell). A key that is not a column
    /// is an error, so that a value is never silently left out of the file.
    fn write_csv_row<W: std::io::Write>(&self, header: &[String], out: &mut csv::Writer<W>) -> csv::Result<()> {
        let present = header.iter().filter(|column| self.0.contains_key(column.as_str())).count();
        if present < self.0.len() {
            let extra: Vec<&str> = self.0.keys().filter(|k| !header.contains(k)).map(String::as_str).collect();
            let message = format!("field(s) {extra:?} are not columns of this CSV file (columns: {header:?})");
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message).into());
        }
        out.write_record(header.iter().map(|column| csv_cell(self.0.get(column.as_str()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Json {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn keeps_key_order() {
        let r = rec(json!({"z": 1, "a": 2, "m": 3}));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"z":1,"a":2,"m":3}"#);
    }

    #[test]
    fn rename_keeps_position_and_refuses_collisions() {
        let mut r = rec(json!({"a": 1, "b": 2, "c": 3}));
        r.rename("b", "x").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"a":1,"x":2,"c":3}"#);
        assert_eq!(r.rename("a", "c"), Err(JsonPathError::Exists("c".into())));
        assert_eq!(r.get("a"), Some(&json!(1)), "a failed rename keeps the value");
        assert_eq!(r.rename("nope", "y"), Err(JsonPathError::Missing("nope".into())));
    }

    #[test]
    fn nested_paths() {
        let mut r = rec(json!({"length": {"old": 1, "new": 2}}));
        r.rename("length.new", "length_new").unwrap();
        assert_eq!(r.get("length_new"), Some(&json!(2)));
        assert_eq!(r.get("length"), Some(&json!({"old": 1})));
        r.insert("a.b.c", json!(true)).unwrap();
        assert_eq!(r.get("a.b.c"), Some(&json!(true)));
        assert_eq!(r.insert("length_new.x", json!(1)), Err(JsonPathError::NotAnObject("length_new".into())));
        assert!(r.get("length.old.deeper").is_none());
    }

    #[test]
    fn select_orders_and_checks() {
        let mut r = rec(json!({"a": 1, "b": 2, "c": 3}));
        r.select(&["c", "a"]).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"c":3,"a":1}"#);
        assert_eq!(r.select(&["b"]), Err(JsonPathError::Missing("b".into())));
    }

    #[test]
    fn csv_cells_keep_types() {
        let r = rec(json!({"id": 1000000123, "n": null, "s": "a,\"b\"", "o": {"k": 1}, "f": 1.5, "t": true}));
        let header = Json::csv_header(std::slice::from_ref(&r));
        let mut w = csv::Writer::from_writer(vec![]);
        r.write_csv_row(&header, &mut w).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "1000000123,,\"a,\"\"b\"\"\",\"{\"\"k\"\":1}\",1.5,true\n");
    }

    #[test]
    fn csv_header_is_the_union_of_keys_and_extra_keys_are_refused() {
        let batch = [rec(json!({"a": 1, "b": 2})), rec(json!({"b": 3, "c": 4}))];
        let header = Json::csv_header(&batch);
        assert_eq!(header, ["a", "b", "c"]);
        let mut w = csv::Writer::from_writer(vec![]);
        for r in &batch {
            r.write_csv_row(&header, &mut w).unwrap();
        }
        assert_eq!(String::from_utf8(w.into_inner().unwrap()).unwrap(), "1,2,\n,3,4\n");
        let mut w = csv::Writer::from_writer(vec![]);
        let err = rec(json!({"a": 1, "z": 9})).write_csv_row(&header, &mut w).unwrap_err();
        assert!(err.to_string().contains("\"z\""), "{err}");
    }
}
