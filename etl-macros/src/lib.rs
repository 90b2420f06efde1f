//! Procedural macros of [`etl`](https://docs.rs/etl): `#[derive(Record)]` now; `pipeline!` and
//! `#[stage]` later.
//!
//! This crate only wires the compiler's entry points; the work is done over `proc_macro2` in
//! plain modules (see `record.rs`) so it can be unit-tested without the compiler. Use the macros
//! through `etl` (`use etl::prelude::*;`), whose paths the generated code refers to.

mod record;

use proc_macro::TokenStream;

/// Implements `etl::record::Record` for a struct with named fields.
///
/// The schema lists each serialized field in declaration order with its serde name, its Rust
/// name and its type as text. Honoured serde attributes: `rename = "x"` and
/// `rename(serialize = "x")` on fields, `rename_all = "..."` (every serde case) on the struct,
/// `skip` / `skip_serializing` (left out of the schema). `flatten`, `transparent`, `into` and
/// `tag` are compile errors, as are enums, unions, tuple and unit structs, and lifetime
/// parameters. Type parameters are supported; the impl requires the struct to be
/// `Serialize + DeserializeOwned + Send + 'static`.
///
/// ```
/// use etl::prelude::*;
///
/// #[derive(Record, Serialize, Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Order {
///     order_id: i64,
///     #[serde(rename = "type")]
///     kind: String,
///     #[serde(skip)]
///     cached: Option<u64>,
/// }
///
/// let schema = Order::schema();
/// assert_eq!(schema.name, "Order");
/// assert_eq!(schema.field_names().collect::<Vec<_>>(), ["orderId", "type"]);
/// assert_eq!((schema.fields[1].rust_name, schema.fields[1].ty), ("kind", "String"));
/// ```
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::derive(input.into()).into()
}
