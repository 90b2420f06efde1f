//! End-to-end tests of `#[derive(Record)]`: the schema it generates agrees with what serde
//! actually writes (JSON keys and CSV header), across modules, renames, skips, raw identifiers
//! and generics.

use etl::prelude::*;
use etl::record::{Field, Schema};

/// `(serde name, Rust name, type)` of each schema field.
fn fields(schema: &Schema) -> Vec<(&'static str, &'static str, &'static str)> {
    schema.fields.iter().map(|f| (f.name, f.rust_name, f.ty)).collect()
}

/// The keys serde_json writes for `value`, in order (`preserve_order` is on in etl).
fn json_keys<T: Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value).expect("serializes") {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

/// Serialize, deserialize, serialize again: both JSON texts must be equal.
fn json_round_trip<T: Record>(value: &T) -> T {
    let text = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
    back
}

/// Write `batch` as CSV through `Record::csv_header` / `write_csv_row`, read it back with serde.
fn csv_round_trip<T: Record>(batch: &[T]) -> (Vec<String>, Vec<T>) {
    let header = T::csv_header(batch);
    let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    out.write_record(&header).expect("header");
    for record in batch {
        record.write_csv_row(&header, &mut out).expect("row");
    }
    let bytes = out.into_inner().expect("flush");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let read_header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(read_header, header);
    let back = reader.deserialize().collect::<Result<Vec<T>, _>>().expect("rows deserialize");
    (header, back)
}

mod shop {
    pub mod orders {
        use etl::prelude::*;

        #[derive(Record, Serialize, Deserialize, Debug, Clone, PartialEq)]
        pub struct Order {
            pub id: i64,
            #[serde(rename = "type")]
            pub kind: String,
            #[serde(rename(serialize = "total_cents", deserialize = "total"))]
            pub total: u64,
            #[serde(skip)]
            pub cached: Option<String>,
            pub note: Option<String>,
        }
    }

    pub mod users {
        // The derive through its other path, and the trait not imported: the generated code
        // must use `::etl` paths only.
        #[derive(etl::Record, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        pub struct Order {
            pub user_id: i64,
            pub first_name: String,
            #[serde(rename = "LAST")]
            pub last_name: String,
            #[serde(skip_serializing, default)]
            pub password_hash: String,
            pub r#type: String,
            pub r#match: bool,
        }
    }
}

#[test]
fn schema_lists_serialized_fields_in_order() {
    use shop::orders::Order;
    let schema = Order::schema();
    assert_eq!(schema.name, "Order");
    assert!(!schema.is_dynamic());
    assert_eq!(
        fields(schema),
        [("id", "id", "i64"), ("type", "kind", "String"), ("total_cents", "total", "u64"), ("note", "note", "Option<String>"),]
    );
    assert_eq!(schema.fields[0], Field { name: "id", rust_name: "id", ty: "i64" });
    // One static per type.
    assert!(std::ptr::eq(Order::schema(), Order::schema()));
}

#[test]
fn same_name_in_two_modules_rename_all_and_raw_identifiers() {
    use shop::users::Order;
    assert_eq!(
        fields(Order::schema()),
        [
            ("userId", "user_id", "i64"),
            ("firstName", "first_name", "String"),
            ("LAST", "last_name", "String"),
            ("type", "type", "String"),
            ("match", "match", "bool"),
        ]
    );
    assert_eq!(shop::orders::Order::schema().fields.len(), 4);
}

#[test]
fn schema_names_are_the_json_keys_and_round_trip() {
    let order =
        shop::orders::Order { id: 7, kind: "retail".into(), total: 1_000_000_123, cached: Some("not serialized".into()), note: None };
    assert_eq!(json_keys(&order), shop::orders::Order::schema().field_names().collect::<Vec<_>>());
    let back: shop::orders::Order = serde_json::from_value(serde_json::json!({
        "id": 7, "type": "retail", "total": 1_000_000_123, "note": null
    }))
    .expect("deserializes with the deserialize name");
    assert_eq!(back, shop::orders::Order { cached: None, ..order.clone() });

    let user = shop::users::Order {
        user_id: 1,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        password_hash: "secret".into(),
        r#type: "admin".into(),
        r#match: true,
    };
    assert_eq!(json_keys(&user), shop::users::Order::schema().field_names().collect::<Vec<_>>());
    let back = json_round_trip(&user);
    assert_eq!(back.password_hash, "");
    assert_eq!(back.first_name, "Ada");
}

#[test]
fn csv_header_is_the_serde_names_and_rows_round_trip() {
    let users = vec![
        shop::users::Order {
            user_id: 1,
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            password_hash: String::new(),
            r#type: "admin".into(),
            r#match: true,
        },
        shop::users::Order {
            user_id: 1_000_000_123,
            first_name: "Grace, \"Amazing\"".into(),
            last_name: "Hopper".into(),
            password_hash: String::new(),
            r#type: "user".into(),
            r#match: false,
        },
    ];
    let (header, back) = csv_round_trip(&users);
    assert_eq!(header, ["userId", "firstName", "LAST", "type", "match"]);
    assert_eq!(back, users);
    // The header does not depend on the batch: an empty batch has it too.
    assert_eq!(shop::users::Order::csv_header(&[]), header);
}

/// Every serde case, checked against what serde itself writes.
mod cases {
    use etl::prelude::*;

    macro_rules! case_struct {
        ($name:ident, $rule:literal) => {
            #[derive(Record, Serialize, Deserialize, Default)]
            #[serde(rename_all = $rule)]
            pub struct $name {
                pub outcome: u8,
                pub very_tasty: u8,
                pub z42_b: u8,
                pub r#type: u8,
            }
        };
    }
    case_struct!(Lower, "lowercase");
    case_struct!(Upper, "UPPERCASE");
    case_struct!(Pascal, "PascalCase");
    case_struct!(Camel, "camelCase");
    case_struct!(Snake, "snake_case");
    case_struct!(ScreamingSnake, "SCREAMING_SNAKE_CASE");
    case_struct!(Kebab, "kebab-case");
    case_struct!(ScreamingKebab, "SCREAMING-KEBAB-CASE");

    #[derive(Record, Serialize, Deserialize, Default)]
    #[serde(rename_all(serialize = "kebab-case", deserialize = "UPPERCASE"))]
    pub struct SerializeOnly {
        pub very_tasty: u8,
    }
}

#[test]
fn rename_all_matches_serde_for_every_case() {
    fn check<T: Record + Default>(want: &[&str]) {
        let names: Vec<&str> = T::schema().field_names().collect();
        assert_eq!(names, want, "{}", T::schema().name);
        assert_eq!(super_json_keys(&T::default()), want, "{}", T::schema().name);
    }
    fn super_json_keys<T: Serialize>(value: &T) -> Vec<String> {
        json_keys(value)
    }
    check::<cases::Lower>(&["outcome", "very_tasty", "z42_b", "type"]);
    check::<cases::Upper>(&["OUTCOME", "VERY_TASTY", "Z42_B", "TYPE"]);
    check::<cases::Pascal>(&["Outcome", "VeryTasty", "Z42B", "Type"]);
    check::<cases::Camel>(&["outcome", "veryTasty", "z42B", "type"]);
    check::<cases::Snake>(&["outcome", "very_tasty", "z42_b", "type"]);
    check::<cases::ScreamingSnake>(&["OUTCOME", "VERY_TASTY", "Z42_B", "TYPE"]);
    check::<cases::Kebab>(&["outcome", "very-tasty", "z42-b", "type"]);
    check::<cases::ScreamingKebab>(&["OUTCOME", "VERY-TASTY", "Z42-B", "TYPE"]);
    check::<cases::SerializeOnly>(&["very-tasty"]);
}

mod generic {
    use etl::prelude::*;

    /// Type and const parameters, a user where clause, and bounds inferred by serde.
    #[derive(Record, Serialize, Deserialize, Debug, PartialEq)]
    pub struct Page<T, const N: usize>
    where
        T: Clone,
    {
        pub page: u32,
        pub items: Vec<T>,
    }

    /// A generic parameter used only in a skipped field.
    #[derive(Record, Serialize, Deserialize)]
    pub struct Tagged<M: Default> {
        pub id: i64,
        #[serde(skip)]
        pub marker: M,
    }
}

#[test]
fn generic_structs_are_records() {
    type P = generic::Page<String, 2>;
    assert_eq!(fields(P::schema()), [("page", "page", "u32"), ("items", "items", "Vec<T>")]);
    // The schema does not depend on the parameters.
    assert_eq!(P::schema(), generic::Page::<i64, 3>::schema());
    let page = P { page: 1, items: vec!["a".into(), "b".into()] };
    assert_eq!(json_round_trip(&page), page);

    // Usable where `Record` is required, e.g. by a pipeline.
    fn is_record<R: Record>() -> &'static str {
        R::schema().name
    }
    assert_eq!(is_record::<P>(), "Page");
    type T = generic::Tagged<Vec<u8>>;
    assert_eq!(fields(T::schema()), [("id", "id", "i64")]);
    let back = json_round_trip(&T { id: 3, marker: vec![1] });
    assert_eq!((back.id, back.marker), (3, vec![]));
}

#[test]
fn derived_records_flow_through_a_pipeline() {
    #[derive(Record, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Reading {
        #[serde(rename = "sensor")]
        sensor_id: String,
        value: f64,
    }
    let input = vec![Reading { sensor_id: "a".into(), value: 1.5 }, Reading { sensor_id: "b".into(), value: -2.0 }];
    let out = etl::sink::collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            Pipeline::from(etl::source::iter(input.clone()))
                .filter(|r: &Reading| r.value > 0.0)
                .to(out.sink())
                .handle_signals(false)
                .run()
                .await
        })
        .expect("pipeline runs");
    assert_eq!(out.records(), vec![input[0].clone()]);
}

/// Receives what a record's schema macro sends: `@etl_record { .. }` then the caller's tokens.
macro_rules! schema_text {
    (@etl_record $schema:tt) => {
        stringify!($schema)
    };
}

#[test]
fn records_export_their_schema_macro_under_their_name() {
    // By path, as `pipeline!` calls it for `as shop::orders::Order`.
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let orders = flat(shop::orders::Order! { schema_text! {} });
    assert!(orders.starts_with("{ [(\"id\", 0usize, \"id\", \"i64\", [])"), "{orders}");
    assert!(orders.contains("(\"kind\", 1usize, \"type\", \"String\", [])"), "{orders}");
    assert!(orders.ends_with("[\"cached\"] }"), "skipped fields listed apart: {orders}");
    // After `use`: importing the struct imports its schema macro; the same-named record of
    // another module sends its own fields.
    use shop::users::Order;
    let users = flat(Order! { schema_text! {} });
    assert!(users.contains("(\"user_id\", 0usize, \"userId\", \"i64\", [])"), "{users}");
    assert!(users.ends_with("[\"password_hash\"] }"), "{users}");
    // Field types by declaration position (the skipped `cached` at 3 counts), for the record
    // types `pipeline!` generates: each position names the type of the field declared there.
    use etl::__private::FieldType;
    use std::any::TypeId;
    type O = shop::orders::Order;
    assert_eq!(TypeId::of::<<O as FieldType<0>>::Type>(), TypeId::of::<i64>());
    assert_eq!(TypeId::of::<<O as FieldType<1>>::Type>(), TypeId::of::<String>());
    assert_eq!(TypeId::of::<<O as FieldType<2>>::Type>(), TypeId::of::<u64>());
    assert_eq!(TypeId::of::<<O as FieldType<4>>::Type>(), TypeId::of::<Option<String>>());
    assert_eq!(TypeId::of::<<shop::users::Order as FieldType<5>>::Type>(), TypeId::of::<bool>(), "`r#match`, after the skipped field");
}
