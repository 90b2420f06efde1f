//! Records: typed user structs ([`Record`]) and the dynamic [`Json`] object, with their
//! per-record metadata ([`Meta`]) kept beside them, never inside.

mod json;
mod meta;

pub use etl_macros::Record;
pub use json::{Json, JsonPathError};
pub use meta::{Extra, FileInfo, Meta, Position};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Schema metadata of a record type: its fields in serialisation order.
///
/// ```
/// use etl::record::{Field, Schema};
/// static FIELDS: [Field; 1] = [Field { name: "id", rust_name: "id", ty: "i64" }];
/// let s = Schema { name: "Order", fields: &FIELDS };
/// assert_eq!(s.field_names().collect::<Vec<_>>(), ["id"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The record type's name.
    pub name: &'static str,
    /// The fields, in the order serde writes them. Empty for dynamic records.
    pub fields: &'static [Field],
}

impl Schema {
    /// The schema of dynamic records, whose fields are only known per record.
    pub const DYNAMIC: Schema = Schema { name: "Json", fields: &[] };

    /// Field names as serde (and so every sink) sees them.
    pub fn field_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }

    /// True for records whose fields are known only at run time ([`Json`]).
    pub fn is_dynamic(&self) -> bool {
        self.fields.is_empty()
    }
}

/// One field of a [`Schema`].
///
/// ```
/// let f = etl::record::Field { name: "type", rust_name: "kind", ty: "String" };
/// assert_ne!(f.name, f.rust_name); // #[serde(rename = "type")] kind: String
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The name serde uses (after `#[serde(rename)]`): column names, JSON keys.
    pub name: &'static str,
    /// The Rust field name, used by the DSL.
    pub rust_name: &'static str,
    /// The Rust type, as written.
    pub ty: &'static str,
}

/// A record that flows through a pipeline: serialisable, with schema metadata.
///
/// `#[derive(Record)]` implements it for structs with named fields; [`Json`] implements it for
/// schemaless pipelines. Implementing it by hand:
///
/// ```
/// use etl::record::{Field, Record, Schema};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: i64 }
/// impl Record for Order {
///     fn schema() -> &'static Schema {
///         static S: Schema = Schema { name: "Order", fields: &[Field { name: "id", rust_name: "id", ty: "i64" }] };
///         &S
///     }
/// }
/// assert_eq!(Order::schema().fields.len(), 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an etl record",
    label = "not a record",
    note = "add `#[derive(Record, Serialize, Deserialize)]` to the struct, or use `etl::Json` for schemaless records"
)]
pub trait Record: Serialize + DeserializeOwned + Send + 'static {
    /// The schema of this record type ([`Schema::DYNAMIC`] for [`Json`]).
    fn schema() -> &'static Schema;

    /// The CSV header for a batch of these records. Typed records use their schema; dynamic
    /// records use the keys of the first record. For typed records (whose schema is not
    /// dynamic) the header must depend on the schema only: sinks build it once and reuse it.
    fn csv_header(batch: &[Self]) -> Vec<String> {
        let _ = batch;
        Self::schema().field_names().map(str::to_owned).collect()
    }

    /// Write this record as one CSV row under `header`. Typed records rely on `csv`'s serde
    /// support (nested values are a per-record error); dynamic records write one cell per
    /// header column.
    fn write_csv_row<W: std::io::Write>(&self, header: &[String], out: &mut csv::Writer<W>) -> csv::Result<()> {
        let _ = header;
        out.serialize(self)
    }
}
