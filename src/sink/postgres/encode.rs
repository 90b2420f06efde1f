//! Pure parts of the PostgreSQL sink, no I/O: the table's columns and what each can hold, the
//! check of a record schema against them, the binary `COPY` encoding of records (a serde
//! serializer writing PostgreSQL's binary formats), the SQL text, and the classes of SQLSTATE
//! codes.

use serde::ser::{self, Impossible, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------
// Column types

/// What the sink can write into a column, from the column's (base) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Bool,
    /// `text`, `varchar`, `bpchar`, `name`, `citext`, enums (binary format: the text).
    Text,
    Json,
    Jsonb,
    Timestamptz,
    Timestamp,
    Date,
    Uuid,
    Bytea,
    /// A type whose binary format the sink does not write (arrays, ranges, `inet`, ...).
    Unsupported,
}

impl Kind {
    /// The kind of a column whose type (a domain's base type) is `typname`, of `typtype`
    /// (`b` base, `e` enum, `d` domain, ...).
    pub(super) fn of(typname: &str, typtype: &str) -> Kind {
        if typtype == "e" {
            return Kind::Text;
        }
        match typname {
            "int2" => Kind::Int2,
            "int4" => Kind::Int4,
            "int8" => Kind::Int8,
            "float4" => Kind::Float4,
            "float8" => Kind::Float8,
            "numeric" => Kind::Numeric,
            "bool" => Kind::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Kind::Text,
            "json" => Kind::Json,
            "jsonb" => Kind::Jsonb,
            "timestamptz" => Kind::Timestamptz,
            "timestamp" => Kind::Timestamp,
            "date" => Kind::Date,
            "uuid" => Kind::Uuid,
            "bytea" => Kind::Bytea,
            _ => Kind::Unsupported,
        }
    }
}

/// One column of the table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub name: String,
    /// The type as PostgreSQL writes it (`format_type`): `bigint`, `character varying(20)`.
    pub type_name: String,
    pub kind: Kind,
    pub not_null: bool,
    pub has_default: bool,
    /// A generated column (`GENERATED ALWAYS AS (...) STORED`): it cannot be written.
    pub generated: bool,
}

/// What a record field holds, from its Rust type as written (`Field::ty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    Int,
    Float,
    Bool,
    Text,
    /// Arrays, maps, nested structs, `serde_json::Value`: JSON.
    Nested,
    /// A type the sink cannot see through (a user struct with its own `Serialize`, `Uuid`,
    /// `DateTime`): checked value by value.
    Unknown,
}

/// `Option<T>` → (`T`, true); anything else → (itself, false). Whitespace removed.
pub(super) fn strip_option(ty: &str) -> (String, bool) {
    let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    for prefix in ["Option<", "std::option::Option<", "core::option::Option<", "::std::option::Option<"] {
        if let Some(inner) = ty.strip_prefix(prefix).and_then(|t| t.strip_suffix('>')) {
            return (inner.to_owned(), true);
        }
    }
    (ty, false)
}

/// The last path segment of a type, without its generic arguments: `std::string::String` →
/// `String`, `chrono::DateTime<Utc>` → `DateTime`.
fn base_name(ty: &str) -> &str {
    let head = ty.split('<').next().unwrap_or(ty);
    head.rsplit("::").next().unwrap_or(head).trim_start_matches('&').trim_start_matches("'static")
}

/// The kind of a field of Rust type `ty` (after [`strip_option`]).
pub(super) fn field_kind(ty: &str) -> FieldKind {
    if ty.starts_with('[') || ty.starts_with('(') {
        return FieldKind::Nested;
    }
    match base_name(ty) {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => FieldKind::Int,
        "f32" | "f64" => FieldKind::Float,
        "bool" => FieldKind::Bool,
        "String" | "str" | "char" | "Cow" | "Box<str>" | "Arc<str>" => FieldKind::Text,
        "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "IndexMap" | "HashSet" | "BTreeSet" | "Value" | "Map" | "Json" => FieldKind::Nested,
        _ => FieldKind::Unknown,
    }
}

/// Whether a column of kind `column` can hold the values of a field of kind `field`.
pub(super) fn compatible(field: FieldKind, column: Kind) -> bool {
    use Kind::*;
    match (field, column) {
        (_, Unsupported) => false,
        (_, Json | Jsonb) | (FieldKind::Unknown, _) => true,
        (FieldKind::Int, Int2 | Int4 | Int8 | Float4 | Float8 | Numeric | Text) => true,
        (FieldKind::Float, Float4 | Float8 | Numeric | Text) => true,
        (FieldKind::Bool, Bool | Text) => true,
        (FieldKind::Text, Text | Numeric | Timestamptz | Timestamp | Date | Uuid) => true,
        _ => false,
    }
}

/// The column type `create = true` gives a field of Rust type `ty` (after [`strip_option`]).
pub(super) fn sql_type(ty: &str) -> &'static str {
    match base_name(ty) {
        "i8" | "i16" | "u8" => "smallint",
        "i32" | "u16" => "integer",
        "i64" | "u32" | "isize" => "bigint",
        "u64" | "usize" | "i128" | "u128" | "Decimal" | "BigDecimal" => "numeric",
        "f32" => "real",
        "f64" => "double precision",
        "bool" => "boolean",
        "String" | "str" | "char" | "Cow" => "text",
        "DateTime" | "OffsetDateTime" | "Zoned" | "Timestamp" => "timestamp with time zone",
        "NaiveDateTime" | "PrimitiveDateTime" => "timestamp without time zone",
        "NaiveDate" | "Date" => "date",
        "Uuid" => "uuid",
        "Bytes" | "ByteBuf" => "bytea",
        _ => "jsonb",
    }
}

// ---------------------------------------------------------------------------------------------
// SQL text

/// `name` as a quoted identifier: `"name"`, with `"` doubled.
pub(super) fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."table"`.
pub(super) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

fn column_list<'a>(columns: impl IntoIterator<Item = &'a str>) -> String {
    columns.into_iter().map(quote).collect::<Vec<_>>().join(", ")
}

/// `COPY target (columns) FROM STDIN (FORMAT binary)`.
pub(super) fn copy_sql<'a>(target: &str, columns: impl IntoIterator<Item = &'a str>) -> String {
    format!("COPY {target} ({}) FROM STDIN (FORMAT binary)", column_list(columns))
}

/// The name of the session's staging table of upserts into `schema.table`: the same table
/// always gets the same name, two tables never share one (a hash of the qualified name).
pub(super) fn stage_name(schema: &str, table: &str) -> String {
    // FNV-1a, 64 bits: stable across runs and Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes().chain([0]).chain(table.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("etl_stage_{hash:016x}")
}

/// A column name for the staging table's row number that no column of the table has.
pub(super) fn row_number_column(columns: &[Column]) -> String {
    let mut name = String::from("etl_row");
    while columns.iter().any(|c| c.name == name) {
        name.push('_');
    }
    name
}

/// The staging table of upserts: every writable column of the table (no constraints, so that
/// a batch that leaves a `NOT NULL` column to its default can be staged) and a row number that
/// says which of two rows with the same key came last. Emptied at every commit.
pub(super) fn create_stage_sql(stage: &str, columns: &[Column], row_number: &str) -> String {
    let mut sql = format!("CREATE TEMPORARY TABLE IF NOT EXISTS {} (", quote(stage));
    for c in columns.iter().filter(|c| !c.generated) {
        let _ = write!(sql, "{} {}, ", quote(&c.name), c.type_name);
    }
    let _ = write!(sql, "{} bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS", quote(row_number));
    sql
}

/// Move the staged rows into the table: for each key, the last staged row wins; an existing
/// row with that key is updated (its other columns of `columns`), a new key is inserted. Then
/// empty the staging table for the next batch of the same transaction.
pub(super) fn merge_sql(target: &str, stage: &str, row_number: &str, columns: &[&str], keys: &[&str]) -> String {
    let cols = column_list(columns.iter().copied());
    let key_list = column_list(keys.iter().copied());
    let updates: Vec<String> = columns.iter().filter(|c| !keys.contains(c)).map(|c| format!("{0} = EXCLUDED.{0}", quote(c))).collect();
    let action = if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(", ")) };
    format!(
        "INSERT INTO {target} ({cols}) SELECT {cols} FROM (SELECT DISTINCT ON ({key_list}) {cols} FROM pg_temp.{stage} \
         ORDER BY {key_list}, {row} DESC) AS etl_staged ON CONFLICT ({key_list}) DO {action}; DELETE FROM pg_temp.{stage}",
        stage = quote(stage),
        row = quote(row_number),
    )
}

/// `CREATE TABLE IF NOT EXISTS` for `create = true`: one column per field (types from
/// [`sql_type`], `NOT NULL` unless the field is an `Option`), the upsert keys as primary key.
pub(super) fn create_table_sql(target: &str, fields: &[(&str, &str)], keys: &[String]) -> String {
    let mut parts: Vec<String> = fields
        .iter()
        .map(|(name, ty)| {
            let (inner, optional) = strip_option(ty);
            format!("{} {}{}", quote(name), sql_type(&inner), if optional { "" } else { " NOT NULL" })
        })
        .collect();
    if !keys.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", column_list(keys.iter().map(String::as_str))));
    }
    format!("CREATE TABLE IF NOT EXISTS {target} ({})", parts.join(", "))
}

// ---------------------------------------------------------------------------------------------
// SQLSTATE classes

/// What an error of the database means for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// The data of a row was refused (22 data exception, 23 integrity constraint, 44 check
    /// option, P0001 raised by a trigger): the row is dead-lettered, the others written.
    Data,
    /// The connection or the transaction failed for a reason of the moment (08 connection,
    /// 40001 serialization, 40P01 deadlock, 53 resources, 57 operator intervention, 55P03 lock
    /// not available, 25006 read-only after a fail-over): roll back, write again.
    Retryable,
    /// A retry cannot help (42 undefined table or column, no privilege, 28 authentication,
    /// 3D no such database, ...): the run stops.
    Permanent,
}

/// The class of SQLSTATE `code`.
pub(super) fn classify(code: &str) -> Class {
    match code {
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "58030" | "25006" | "25P02" | "25P03" => Class::Retryable,
        "P0001" => Class::Data,
        _ => match code.get(..2) {
            Some("22" | "23" | "44") => Class::Data,
            Some("08" | "53" | "40") => Class::Retryable,
            _ => Class::Permanent,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

pub(super) use crate::config::redact;

// ---------------------------------------------------------------------------------------------
// Binary COPY

/// The header of a binary `COPY` stream: signature, flags, header extension length.
pub(super) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer of a binary `COPY` stream: a field count of -1.
pub(super) const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// A column the sink writes: its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub name: String,
    pub type_name: String,
    pub kind: Kind,
}

/// The columns of one `COPY`, in order, and which of them are upsert keys.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    pub targets: Vec<Target>,
    /// Position of each column by name.
    index: HashMap<String, usize>,
    /// Positions of the key columns (upsert): a record without one is refused.
    keys: Vec<usize>,
}

impl Plan {
    pub(super) fn new(targets: Vec<Target>, keys: &[String]) -> Plan {
        let index: HashMap<String, usize> = targets.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let keys = keys.iter().filter_map(|k| index.get(k).copied()).collect();
        Plan { targets, index, keys }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.name.as_str())
    }

    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        match self.targets.get(hint) {
            Some(t) if t.name == name => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }
}

/// Where one cell of the row being encoded is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Missing,
    Null,
    /// A range of the row's scratch buffer.
    Value(usize, usize),
}

/// Encodes records into the rows of a binary `COPY`, reusing its buffers from batch to batch.
/// A record that cannot be encoded leaves nothing behind and is reported with the reason.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    /// The encoded rows, one after the other (no header, no trailer).
    pub body: Vec<u8>,
    /// Per encoded row: the record's index in the batch and its bytes in `body`.
    pub rows: Vec<(usize, std::ops::Range<usize>)>,
    scratch: Vec<u8>,
    cells: Vec<Cell>,
}

impl Encoder {
    /// Forget the previous batch (keep the buffers).
    pub(super) fn clear(&mut self) {
        self.body.clear();
        self.rows.clear();
    }

    /// Encode `record` (index `index` in its batch) as one row of `plan`'s columns.
    pub(super) fn push<T: Serialize + ?Sized>(&mut self, plan: &Plan, index: usize, record: &T) -> Result<(), String> {
        self.scratch.clear();
        self.cells.clear();
        self.cells.resize(plan.targets.len(), Cell::Missing);
        record
            .serialize(RowSerializer { plan, scratch: &mut self.scratch, cells: &mut self.cells, key: None, next: 0 })
            .map_err(|e| e.0)?;
        if let Some(&missing) = plan.keys.iter().find(|&&k| self.cells[k] == Cell::Missing) {
            return Err(format!("the record has no field `{}`, a key of the upsert", plan.targets[missing].name));
        }
        let start = self.body.len();
        let count = i16::try_from(plan.targets.len()).map_err(|_| "more than 32767 columns".to_owned())?;
        self.body.extend_from_slice(&count.to_be_bytes());
        for cell in &self.cells {
            match *cell {
                Cell::Missing | Cell::Null => self.body.extend_from_slice(&(-1i32).to_be_bytes()),
                Cell::Value(from, to) => {
                    let len = i32::try_from(to - from).map_err(|_| "a value larger than 2 GiB".to_owned())?;
                    self.body.extend_from_slice(&len.to_be_bytes());
                    self.body.extend_from_slice(&self.scratch[from..to]);
                }
            }
        }
        self.rows.push((index, start..self.body.len()));
        Ok(())
    }
}

/// An encoding failure: the reason a record is refused.
#[derive(Debug)]
pub(super) struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        EncodeError(msg.to_string())
    }
}

const NOT_A_ROW: &str = "the postgres sink writes records that serialize as a struct or a map, one field per column";

/// Serializes a whole record: a struct or a map whose fields are columns.
struct RowSerializer<'a> {
    plan: &'a Plan,
    scratch: &'a mut Vec<u8>,
    cells: &'a mut Vec<Cell>,
    /// The key of the map entry being serialized.
    key: Option<String>,
    /// Where the next field is expected (typed records come in column order).
    next: usize,
}

impl RowSerializer<'_> {
    fn field<V: Serialize + ?Sized>(&mut self, name: &str, value: &V) -> Result<(), EncodeError> {
        let Some(position) = self.plan.position(name, self.next) else {
            return Err(EncodeError(format!("field `{name}` is not a column of the table")));
        };
        self.next = position + 1;
        if self.cells[position] != Cell::Missing {
            return Err(EncodeError(format!("field `{name}` appears twice in the record")));
        }
        let target = &self.plan.targets[position];
        let start = self.scratch.len();
        let null = match target.kind {
            Kind::Json | Kind::Jsonb => {
                if target.kind == Kind::Jsonb {
                    self.scratch.push(1); // jsonb's binary format version
                }
                let text = self.scratch.len();
                serde_json::to_writer(&mut *self.scratch, value).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?;
                // A JSON null (None, unit) is SQL NULL; nulls inside arrays and objects stay.
                &self.scratch[text..] == b"null"
            }
            _ => value.serialize(CellSerializer { target, out: &mut *self.scratch })?,
        };
        self.cells[position] = if null {
            self.scratch.truncate(start);
            Cell::Null
        } else {
            Cell::Value(start, self.scratch.len())
        };
        Ok(())
    }
}

impl<'a> ser::Serializer for RowSerializer<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Impossible<(), EncodeError>;
    type SerializeTuple = Impossible<(), EncodeError>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_i8(self, _: i8) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_i16(self, _: i16) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_i32(self, _: i32) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_i64(self, _: i64) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_u8(self, _: u8) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_u16(self, _: u16) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_u32(self, _: u32) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_u64(self, _: u64) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_f32(self, _: f32) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_f64(self, _: f64) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_char(self, _: char) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_str(self, _: &str) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<(), EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError(NOT_A_ROW.into()))
    }
}

impl ser::SerializeStruct for RowSerializer<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), EncodeError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl ser::SerializeMap for RowSerializer<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        let key = serde_json::to_value(key).map_err(|e| EncodeError(e.to_string()))?;
        match key {
            serde_json::Value::String(s) => {
                self.key = Some(s);
                Ok(())
            }
            other => Err(EncodeError(format!("a map key that is not a string ({other}): {NOT_A_ROW}"))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        let key = self.key.take().ok_or_else(|| EncodeError("a map value without its key".into()))?;
        self.field(&key, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Serializes one value into its column's binary format. Returns whether the value is NULL.
struct CellSerializer<'a> {
    target: &'a Target,
    out: &'a mut Vec<u8>,
}

impl CellSerializer<'_> {
    fn refuse(&self, what: &str) -> EncodeError {
        EncodeError(format!("column `{}` ({}) cannot hold {what}", self.target.name, self.target.type_name))
    }

    fn out_of_range(&self, value: impl std::fmt::Display) -> EncodeError {
        EncodeError(format!("value {value} is out of range for column `{}` ({})", self.target.name, self.target.type_name))
    }

    fn int(self, v: i128) -> Result<bool, EncodeError> {
        match self.target.kind {
            Kind::Int2 => {
                let v = i16::try_from(v).map_err(|_| self.out_of_range(v))?;
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Kind::Int4 => {
                let v = i32::try_from(v).map_err(|_| self.out_of_range(v))?;
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Kind::Int8 => {
                let v = i64::try_from(v).map_err(|_| self.out_of_range(v))?;
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Kind::Float4 => self.out.extend_from_slice(&(v as f32).to_be_bytes()),
            Kind::Float8 => self.out.extend_from_slice(&(v as f64).to_be_bytes()),
            Kind::Numeric => {
                let text = v.to_string();
                numeric(&text, self.out).map_err(|e| EncodeError(format!("column `{}`: {e}", self.target.name)))?;
            }
            Kind::Text => {
                let _ = write!(Utf8(self.out), "{v}");
            }
            _ => return Err(self.refuse("an integer")),
        }
        Ok(false)
    }

    fn float(self, v: f64, single: Option<f32>) -> Result<bool, EncodeError> {
        match self.target.kind {
            Kind::Float4 => {
                let f = single.unwrap_or(v as f32);
                if v.is_finite() && !f.is_finite() {
                    return Err(self.out_of_range(v));
                }
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Kind::Float8 => self.out.extend_from_slice(&v.to_be_bytes()),
            Kind::Numeric => {
                if v.is_infinite() {
                    return Err(self.out_of_range(v));
                }
                let text = match single {
                    Some(f) => f.to_string(),
                    None => v.to_string(),
                };
                numeric(&text, self.out).map_err(|e| EncodeError(format!("column `{}`: {e}", self.target.name)))?;
            }
            Kind::Text => {
                let _ = match single {
                    Some(f) => write!(Utf8(self.out), "{f}"),
                    None => write!(Utf8(self.out), "{v}"),
                };
            }
            _ => return Err(self.refuse("a floating-point number")),
        }
        Ok(false)
    }

    fn text(self, v: &str) -> Result<bool, EncodeError> {
        let name = &self.target.name;
        match self.target.kind {
            Kind::Text => {
                if v.contains('\0') {
                    return Err(EncodeError(format!(
                        "column `{name}`: the text contains a NUL character (\\u0000), which PostgreSQL text cannot store"
                    )));
                }
                self.out.extend_from_slice(v.as_bytes());
            }
            Kind::Numeric => numeric(v, self.out).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?,
            Kind::Timestamptz => {
                let micros = timestamp(v, true).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?;
                self.out.extend_from_slice(&micros.to_be_bytes());
            }
            Kind::Timestamp => {
                let micros = timestamp(v, false).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?;
                self.out.extend_from_slice(&micros.to_be_bytes());
            }
            Kind::Date => {
                let days = date(v).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?;
                self.out.extend_from_slice(&days.to_be_bytes());
            }
            Kind::Uuid => {
                let bytes = uuid(v).map_err(|e| EncodeError(format!("column `{name}`: {e}")))?;
                self.out.extend_from_slice(&bytes);
            }
            _ => return Err(self.refuse("text")),
        }
        Ok(false)
    }
}

/// `fmt::Write` into a byte buffer.
struct Utf8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl<'a> ser::Serializer for CellSerializer<'a> {
    type Ok = bool;
    type Error = EncodeError;
    type SerializeSeq = Impossible<bool, EncodeError>;
    type SerializeTuple = Impossible<bool, EncodeError>;
    type SerializeTupleStruct = Impossible<bool, EncodeError>;
    type SerializeTupleVariant = Impossible<bool, EncodeError>;
    type SerializeMap = Impossible<bool, EncodeError>;
    type SerializeStruct = Impossible<bool, EncodeError>;
    type SerializeStructVariant = Impossible<bool, EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<bool, EncodeError> {
        match self.target.kind {
            Kind::Bool => self.out.push(u8::from(v)),
            Kind::Text => self.out.extend_from_slice(if v { b"true" } else { b"false" }),
            _ => return Err(self.refuse("a boolean")),
        }
        Ok(false)
    }
    fn serialize_i8(self, v: i8) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<bool, EncodeError> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<bool, EncodeError> {
        self.int(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<bool, EncodeError> {
        match i128::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => match self.target.kind {
                Kind::Numeric | Kind::Text => self.text_number(&v.to_string()),
                _ => Err(self.out_of_range(v)),
            },
        }
    }
    fn serialize_f32(self, v: f32) -> Result<bool, EncodeError> {
        self.float(f64::from(v), Some(v))
    }
    fn serialize_f64(self, v: f64) -> Result<bool, EncodeError> {
        self.float(v, None)
    }
    fn serialize_char(self, v: char) -> Result<bool, EncodeError> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<bool, EncodeError> {
        self.text(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<bool, EncodeError> {
        match self.target.kind {
            Kind::Bytea => self.out.extend_from_slice(v),
            _ => return Err(self.refuse("bytes")),
        }
        Ok(false)
    }
    fn serialize_none(self) -> Result<bool, EncodeError> {
        Ok(true)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, EncodeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, EncodeError> {
        Ok(true)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, EncodeError> {
        Ok(true)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<bool, EncodeError> {
        self.text(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<bool, EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, EncodeError> {
        Err(self.nested())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(self.nested())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(self.nested())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(self.nested())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(self.nested())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(self.nested())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, EncodeError> {
        Err(self.nested())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(self.nested())
    }
}

impl CellSerializer<'_> {
    fn nested(&self) -> EncodeError {
        EncodeError(format!(
            "column `{}` ({}) cannot hold a nested value (an array or an object): use a json or jsonb column",
            self.target.name, self.target.type_name
        ))
    }

    fn text_number(self, v: &str) -> Result<bool, EncodeError> {
        match self.target.kind {
            Kind::Text => self.out.extend_from_slice(v.as_bytes()),
            _ => numeric(v, self.out).map_err(|e| EncodeError(format!("column `{}`: {e}", self.target.name)))?,
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------
// Binary formats of text values

/// Write `text` (a decimal number: `-12.50`, `1e-3`, `NaN`) in `numeric`'s binary format:
/// digit count, weight, sign, display scale, then base-10000 digits.
pub(super) fn numeric(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let bad = || format!("`{text}` is not a decimal number");
    let t = text.trim();
    if t.eq_ignore_ascii_case("nan") {
        out.extend_from_slice(&[0, 0, 0, 0, 0xc0, 0, 0, 0]);
        return Ok(());
    }
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if exponent.unsigned_abs() > 100_000 {
        return Err(format!("`{text}` is out of range for numeric"));
    }
    // value = digits × 10^(exp10)
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let exp10 = exponent - frac.len() as i32;
    let dscale = (-exp10).max(0);
    // Digits before the decimal point.
    let point = digits.len() as i32 + exp10;
    let lead = (4 - point.rem_euclid(4)) % 4;
    let mut padded: Vec<u8> = std::iter::repeat_n(0u8, lead as usize).chain(digits.iter().copied()).collect();
    let point = point + lead;
    while (padded.len() as i32) < point || padded.len() % 4 != 0 {
        padded.push(0);
    }
    let mut groups: Vec<i16> = padded.chunks(4).map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(*d))).collect();
    let mut weight = point / 4 - 1;
    // A point before the first digit (0.000123): the groups before it are implicit zeros.
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let (Ok(ndigits), Ok(weight), Ok(dscale)) = (i16::try_from(groups.len()), i16::try_from(weight), u16::try_from(dscale)) else {
        return Err(format!("`{text}` is out of range for numeric"));
    };
    if dscale > 0x3fff {
        return Err(format!("`{text}` has too many decimal places for numeric"));
    }
    let sign: u16 = if negative && !groups.is_empty() { 0x4000 } else { 0 };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

fn digits(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} `{s}`"));
    }
    s.parse().map_err(|_| format!("bad {what} `{s}`"))
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn parse_date(s: &str) -> Result<i64, String> {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(format!("`{s}` is not a date (YYYY-MM-DD)"));
    }
    let (y, m, d) = (digits(&s[..4], "year")?, digits(&s[5..7], "month")?, digits(&s[8..10], "day")?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if y == 0 || !(1..=12).contains(&m) || d == 0 || d > month_days[(m - 1) as usize] {
        return Err(format!("`{s}` is not a valid date"));
    }
    Ok(days_from_civil(i64::from(y), m, d))
}

/// A `date` column's value: `YYYY-MM-DD` (or `infinity`, `-infinity`) → days since 2000-01-01.
pub(super) fn date(s: &str) -> Result<i32, String> {
    match s {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let days = parse_date(s)? - PG_EPOCH_DAYS;
    i32::try_from(days).map_err(|_| format!("`{s}` is out of range for date"))
}

/// A timestamp in RFC 3339 form (`2026-11-30T12:00:00.123456Z`, `2026-11-30 12:00:00+02:00`;
/// `infinity`, `-infinity`) → microseconds since 2000-01-01 00:00 UTC. Fractions beyond
/// microseconds are rounded. With `zone` (a `timestamptz` column) the UTC offset is required;
/// without (a `timestamp` column) it is optional, and a given offset converts to UTC.
pub(super) fn timestamp(s: &str, zone: bool) -> Result<i64, String> {
    match s {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let not = || format!("`{s}` is not an RFC 3339 timestamp (2026-11-30T12:00:00Z)");
    if s.len() < 19 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return Err(not());
    }
    let days = parse_date(&s[..10]).map_err(|_| not())?;
    let sep = s.as_bytes()[10];
    let time = &s[11..19];
    if !matches!(sep, b'T' | b't' | b' ') || time.as_bytes()[2] != b':' || time.as_bytes()[5] != b':' {
        return Err(not());
    }
    let (h, m, sec) = (digits(&time[..2], "hour")?, digits(&time[3..5], "minute")?, digits(&time[6..8], "second")?);
    if h > 23 || m > 59 || sec > 59 {
        return Err(format!("`{s}` has an invalid time of day"));
    }
    let mut rest = &s[19..];
    let mut micros: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if end == 0 {
            return Err(not());
        }
        let digits_str = &fraction[..end];
        // Round to microseconds (half away from zero, as PostgreSQL does).
        let mut value: i64 = 0;
        for (i, b) in digits_str.bytes().take(7).enumerate() {
            if i < 6 {
                value = value * 10 + i64::from(b - b'0');
            } else if b >= b'5' {
                value += 1;
            }
        }
        for _ in digits_str.len().min(6)..6 {
            value *= 10;
        }
        micros = value;
        rest = &fraction[end..];
    }
    let offset_seconds: i64 = match rest {
        "" if zone => return Err(format!("`{s}` has no UTC offset (add `Z` or `+HH:MM`): a timestamptz needs one")),
        "" => 0,
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(not()),
            };
            let o = &rest[1..];
            let (oh, om) = match o.len() {
                2 => (digits(o, "offset")?, 0),
                4 => (digits(&o[..2], "offset")?, digits(&o[2..], "offset")?),
                5 if o.as_bytes()[2] == b':' => (digits(&o[..2], "offset")?, digits(&o[3..], "offset")?),
                _ => return Err(not()),
            };
            if oh > 23 || om > 59 {
                return Err(format!("`{s}` has an invalid UTC offset"));
            }
            sign * i64::from(oh * 3600 + om * 60)
        }
    };
    let seconds = (days - PG_EPOCH_DAYS) * 86_400 + i64::from(h * 3600 + m * 60 + sec) - offset_seconds;
    Ok(seconds * 1_000_000 + micros)
}

/// A UUID in its text forms (hyphenated or not, optionally in braces) → its 16 bytes.
pub(super) fn uuid(s: &str) -> Result<[u8; 16], String> {
    let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
    let hex: Vec<u8> = inner.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || inner.len() - hex.len() > 4 {
        return Err(format!("`{s}` is not a UUID"));
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
            _ => return Err(format!("`{s}` is not a UUID")),
        }
    }
    Ok(out)
}
