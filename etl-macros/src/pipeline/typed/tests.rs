use super::super::{check, parse, schema};
use super::*;
use quote::quote;

/// `Order { id: i64, customer: String, #[serde(rename = "cents", alias = "c")] amount_cents: i64 }`,
/// with a skipped field at position 2.
fn order() -> TokenStream {
    quote!(@etl_record { [
        ("id", 0usize, "id", "i64", []),
        ("customer", 1usize, "customer", "String", []),
        ("amount_cents", 3usize, "cents", "i64", [alias = "c"])
    ], ["cache"] })
}

/// `Payment { id: i64, amount: i64, #[serde(skip)] note: String }`.
fn payment() -> TokenStream {
    quote!(@etl_record { [("id", 0usize, "id", "i64", []), ("amount", 1usize, "amount", "i64", [])], ["note"] })
}

fn walk_with(input: TokenStream, schemas: &[TokenStream]) -> Outcome {
    let (ast, errors) = parse::parse(input);
    assert!(errors.is_empty(), "{:?}", errors.texts());
    let (steps, errors) = check::check(&ast);
    assert!(errors.is_empty(), "{:?}", errors.texts());
    let received: Vec<RecordSchema> = schemas.iter().map(|t| schema::split(t.clone()).expect("a schema").0.remove(0).schema).collect();
    let refs: Vec<&RecordSchema> = received.iter().collect();
    walk(&steps, &refs)
}

fn done(input: TokenStream, schemas: &[TokenStream]) -> Typed {
    match walk_with(input, schemas) {
        Outcome::Done(t) => t,
        Outcome::Need(p, _) => panic!("needs {}", p.to_token_stream()),
    }
}

fn errors(input: TokenStream) -> Vec<String> {
    done(input, &[order(), payment()]).errors.texts()
}

fn norm(t: impl ToTokens) -> String {
    t.to_token_stream().to_string().replace(' ', "")
}

#[test]
fn schemas_are_asked_for_in_order_and_once() {
    let input = quote!(iter(v) as Order | rename(amount_cents -> amount) | drop(customer) | into(shop::Payment) | select(id) | stdout());
    let Outcome::Need(first, _) = walk_with(input.clone(), &[]) else { panic!("needs Order") };
    assert_eq!(norm(first), "Order");
    let Outcome::Need(second, _) = walk_with(input.clone(), &[order()]) else { panic!("needs Payment") };
    assert_eq!(norm(second), "shop::Payment");
    let typed = done(input, &[order(), payment()]);
    assert!(typed.errors.is_empty(), "{:?}", typed.errors.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert_eq!(typed.ops.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(typed.items.len(), 3, "rename, drop and select generate types; into does not");
}

#[test]
fn json_and_undeclared_records_need_no_schema() {
    for input in [
        quote!(file(path = "in.jsonl") | rename(a -> b) | select(b) | stdout()),
        quote!(iter(v) as etl::Json | drop(a.b) | stdout()),
        quote!(iter(v) | rename(a -> b) | stdout()),
        quote!(iter(v) as Order | map(|o| o.id) | filter(|n| *n > 0) | stdout()),
    ] {
        let typed = done(input, &[]);
        assert!(typed.ops.is_empty() && typed.items.is_empty() && typed.errors.is_empty());
    }
    // `into` on `Json` is the run-time decoder (the table's generator): no op here.
    assert!(done(quote!(file(path = "x") | into(Order) | select(id) | stdout()), &[order()]).ops.len() == 1);
}

#[test]
fn generic_records_call_the_macro_by_the_bare_path() {
    let Outcome::Need(p, _) = walk_with(quote!(iter(v) as shop::Page<i64> | select(n) | stdout()), &[]) else { panic!() };
    assert_eq!(norm(p), "shop::Page<i64>", "the callback strips the arguments (schema::callback)");
}

#[test]
fn field_errors_with_help() {
    let e = errors(quote!(iter(v) as Order | select(id, amount_cent) | stdout()));
    assert_eq!(e, ["unknown field `amount_cent` in `select`: `Order` has no field `amount_cent`\nhelp: did you mean `amount_cents`?"]);
    let e = errors(quote!(iter(v) as Order | drop(zzz) | stdout()));
    assert_eq!(
        e,
        ["unknown field `zzz` in `drop`: `Order` has no field `zzz`\nhelp: the fields of `Order` are `id`, `customer`, `amount_cents`"]
    );
    let e = errors(quote!(iter(v) as Order | rename(amount_cents -> id) | stdout()));
    assert!(e[0].starts_with("cannot rename `amount_cents` to `id`: `Order` already has a field `id`\nhelp: "), "{e:?}");
    let e = errors(quote!(iter(v) as Order | rename(amount_cents -> a, amount_cents -> b) | stdout()));
    assert!(e[0].starts_with("field `amount_cents` is renamed twice\nhelp: this `rename` already renamed `amount_cents` to `a`"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | rename(id -> id) | stdout()));
    assert!(e[0].starts_with("`id` is renamed to itself"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | rename(amount_cents -> amount) | select(amount_cents) | stdout()));
    assert!(e[0].contains("an earlier `rename` renamed it to `amount`\nhelp: use its new name `amount`"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | select(id) | drop(customer) | stdout()));
    assert!(e[0].contains("no field `customer` in `Order after select(id)`: an earlier `select` removed it"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | select(id, id) | stdout()));
    assert!(e[0].starts_with("`id` is named twice in this `select`"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | drop(id, customer, amount_cents) | stdout()));
    assert!(e[0].starts_with("`drop` removes every field of `Order`"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | select(customer.name, "id") | stdout()));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("`select` on a typed record takes field names, not `customer.name`"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | select() | stdout()));
    assert_eq!(e, ["`select` needs at least one field to keep\nhelp: write e.g. `select(id, title)`; the fields of `Order` are `id`, `customer`, `amount_cents`"]);
    let e = errors(quote!(iter(v) as etl::Json | drop() | stdout()));
    assert_eq!(e, ["`drop` needs at least one field to remove\nhelp: write e.g. `drop(internal_id)`"]);
}

#[test]
fn all_errors_at_once_and_none_after_a_failed_step() {
    let e = errors(quote!(iter(v) as Order | select(idd, customr) | rename(nope -> x) | into(Payment) | stdout()));
    assert_eq!(e.len(), 2, "the select's two fields; nothing after it: {e:?}");
    let e = errors(quote!(iter(v) as (i64, String) | select(a) | stdout()));
    assert!(e[0].starts_with("`select` needs a record struct here"), "{e:?}");
}

#[test]
fn into_errors_name_the_field() {
    let e = errors(quote!(iter(v) as Order | into(Payment) | stdout()));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("`into(Payment)`: field `amount` of `Payment` is missing in `Order`\nhelp: "), "{e:?}");
    assert!(e[1].starts_with("`into(Payment)`: field `customer` has no place in `Payment`\nhelp: `Payment` has no field `customer`; remove it first with `drop(customer)`"), "{e:?}");
    assert!(e[2].contains("field `amount_cents` has no place"), "{e:?}");
    let e = errors(quote!(iter(v) as Order | drop(customer) | rename(amount_cents -> amont) | into(Payment) | stdout()));
    assert!(e[0].contains("help: did you mean to rename it first: `rename(amont -> amount)`?"), "{e:?}");
}

/// A source declares its default record type in its table entry: `Json` for `file`, `sse` and
/// `sqs`, whose schema steps and `into` then run at run time, as on `as Json`.
#[test]
fn json_sources_take_the_run_time_schema_steps() {
    for source in [quote!(file(path = "x")), quote!(sse(url = "http://x")), quote!(sqs(queue_url = "q")), quote!(iter(v) as etl::Json)] {
        let typed = done(quote!(#source | rename(a -> amount) | into(Payment) | select(id) | stdout()), &[payment()]);
        assert!(typed.errors.is_empty(), "{source}: {:?}", typed.errors.texts());
        assert_eq!(typed.ops.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3], "{source}: only the typed `select` after `into`");
    }
}

/// Records whose type the macro cannot see (`iter(rows)` of `Json` rows) are decoded at run
/// time, like `Json` records: `into` is the table's run-time operator, and the type after it
/// is known (a typed schema step may follow).
#[test]
fn into_on_records_of_an_unseen_type_decodes_at_run_time() {
    let typed = done(quote!(iter(rows) | select(a, b) | into(Payment) | rename(amount -> total) | stdout()), &[payment()]);
    assert!(typed.errors.is_empty(), "{:?}", typed.errors.texts());
    assert_eq!(typed.ops.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3], "select and into are the run-time operators");
    let Outcome::Need(p, _) = walk_with(quote!(iter(rows) | into(Payment) | rename(amount -> total) | stdout()), &[]) else { panic!() };
    assert_eq!(norm(p), "Payment");
}

#[test]
fn closures_reading_a_field_renamed_away_or_removed() {
    let e = errors(quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| o.amount_cents > 0) | stdout()));
    assert_eq!(e, ["no field `amount_cents` on the record here: an earlier `rename` renamed it to `amount`\nhelp: write `o.amount`"]);
    let e = errors(quote!(
        iter(v) as Order
            | select(id)
            | map(|o: Order| {
                println!("{}", o.customer);
                o.id
            })
            | stdout()
    ));
    assert!(e[0].starts_with("no field `customer` on the record here: an earlier `select` removed it"), "{e:?}");
    // Fields that exist, methods, another binding, a shadowed parameter: not the macro's business.
    for ok in [
        quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| o.amount > 0 && o.id.is_positive()) | stdout()),
        quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|o| { let o = &o.amount; *o > 0 }) | stdout()),
        quote!(iter(v) as Order | rename(amount_cents -> amount) | filter(|x| other.amount_cents > x.amount) | stdout()),
        quote!(iter(v) as Order | rename(amount_cents -> amount) | map(|o| o.amount) | filter(|o| o.amount_cents > 0) | stdout()),
    ] {
        assert!(errors(ok.clone()).is_empty(), "{ok}");
    }
}

#[test]
fn generated_type_keeps_serde_names_and_is_typed_through_the_record() {
    let typed = done(quote!(iter(v) as Order | rename(customer -> buyer) | select(amount_cents, buyer) | stdout()), &[order()]);
    assert!(typed.errors.is_empty());
    let rename = norm(&typed.items[0]);
    assert!(rename.contains("structOrder_after_rename{"), "{rename}");
    assert!(rename.contains("name:\"Orderafterrename(customer->buyer)\""), "the schema says what made it: {rename}");
    assert!(rename.contains("#[serde(rename=\"buyer\")]buyer:<Orderas::etl::__private::FieldType<1usize>>::Type"), "{rename}");
    assert!(
        rename.contains("#[serde(rename=\"cents\",alias=\"c\")]amount_cents:<Orderas::etl::__private::FieldType<3usize>>::Type"),
        "kept fields keep their serde name and aliases: {rename}"
    );
    assert!(rename.contains("impl::etl::record::RecordforOrder_after_rename"), "{rename}");
    assert!(rename.contains("for<'__etl><Orderas::etl::__private::FieldType<0usize>>::Type:::core::clone::Clone"), "{rename}");
    let select = norm(&typed.items[1]);
    assert!(select.contains("structOrder_after_select{#[serde(rename=\"cents\",alias=\"c\")]amount_cents"), "{select}");
    // The conversions move fields by name, the old record destructured.
    assert_eq!(
        norm(typed.op(1).expect("rename op")),
        norm(quote!(.map(|__etl_record: Order| -> Order_after_rename {
            let Order { id: __etl_0, customer: __etl_1, amount_cents: __etl_2, .. } = __etl_record;
            Order_after_rename { id: __etl_0, buyer: __etl_1, amount_cents: __etl_2 }
        })))
    );
    assert_eq!(
        norm(typed.op(2).expect("select op")),
        norm(quote!(.map(|__etl_record: Order_after_rename| -> Order_after_select {
            let Order_after_rename { amount_cents: __etl_0, buyer: __etl_1, .. } = __etl_record;
            Order_after_select { amount_cents: __etl_0, buyer: __etl_1 }
        })))
    );
}

#[test]
fn serde_helpers_are_called_through_the_record() {
    let rec = quote!(@etl_record { [("amount", 0usize, "amount", "i64", [default_with, skip_serializing_if, serialize_with, deserialize_with, skip_deserializing])], [] });
    let typed = done(quote!(iter(v) as shop::Price | rename(amount -> total) | stdout()), &[rec]);
    let item = norm(&typed.items[0]);
    for want in [
        "default=\"<shop::Priceas::etl::__private::FieldDefault<0>>::default\"",
        "skip_serializing_if=\"<shop::Priceas::etl::__private::FieldSkipIf<0>>::skip_serializing_if\"",
        "serialize_with=\"<shop::Priceas::etl::__private::FieldSerializeWith<0>>::serialize_with\"",
        "deserialize_with=\"<shop::Priceas::etl::__private::FieldDeserializeWith<0>>::deserialize_with\"",
        "skip_deserializing",
    ] {
        assert!(item.contains(&want.replace(' ', "")), "{want} in {item}");
    }
}

#[test]
fn into_moves_each_field_through_a_type_check_and_defaults_skipped_fields() {
    let typed =
        done(quote!(iter(v) as Order | drop(customer) | rename(amount_cents -> amount) | into(Payment) | stdout()), &[order(), payment()]);
    assert!(typed.errors.is_empty());
    let op = norm(typed.op(3).expect("into op"));
    assert!(
        op.starts_with(
            ".map(|__etl_record:Order_after_rename|->Payment{letOrder_after_rename{id:__etl_0,amount:__etl_1,..}=__etl_record;Payment{"
        ),
        "{op}"
    );
    assert!(
        op.contains(&norm(quote!(amount: { #[allow(non_camel_case_types, dead_code)] enum amount {}
        ::etl::__private::into_field::<Payment, amount, <Payment as ::etl::__private::FieldType<1usize>>::Type, _>(__etl_1) }))),
        "{op}"
    );
    assert!(op.contains("note:::core::default::Default::default()"), "{op}");
}

#[test]
fn generated_types_are_named_after_the_step_once_each() {
    let typed = done(quote!(iter(v) as Order | rename(customer -> buyer) | rename(buyer -> client) | drop(client) | stdout()), &[order()]);
    assert!(typed.errors.is_empty());
    let names: Vec<String> = typed
        .items
        .iter()
        .map(|i| norm(i).split("struct").nth(1).unwrap_or_default().split('{').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["Order_after_rename", "Order_after_rename_2", "Order_after_drop"]);
}

#[test]
fn closures_reading_an_unknown_field_of_a_generated_type() {
    let e = errors(quote!(iter(v) as Order | select(id, amount_cents) | filter(|o| o.amount_cent > 0) | stdout()));
    assert_eq!(e, ["no field `amount_cent` on `Order after select(id, amount_cents)`\nhelp: did you mean `amount_cents`?"]);
    let e = errors(quote!(iter(v) as Order | select(id) | inspect(|o| println!("{}", o.zzz)) | stdout()));
    assert_eq!(e, ["no field `zzz` on `Order after select(id)`\nhelp: its fields are `id`"]);
    // On the user's own struct, rustc reports it (a field serde skips is still a Rust field).
    let into = quote!(iter(v) as Order | drop(customer) | rename(amount_cents -> amount) | into(Payment) | filter(|p| p.note.is_empty()) | stdout());
    assert!(errors(into).is_empty());
    assert!(errors(quote!(iter(v) as Order | filter(|o| o.cache.is_none()) | select(id) | stdout())).is_empty());
}

#[test]
fn closures_reading_a_field_of_json_records() {
    let typed = done(quote!(file(path = "in.jsonl") | rename(a -> b) | filter(|o| o.status != "test") | stdout()), &[]);
    let e = typed.errors.texts();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("no field `status`: the records here are `etl::Json` (schemaless)\nhelp: read it with `o.get(\"status\")`"),
        "{e:?}"
    );
    assert!(
        e[0].contains("`as Order` after the source, with `#[derive(Record, Serialize, Deserialize)] struct Order { status: .., .. }`"),
        "{e:?}"
    );
    // Methods, tuple fields, records of a type the macro cannot see, after a `map`: rustc's.
    for ok in [
        quote!(file(path = "in.jsonl") | filter(|o| o.get("status").is_some() && o.0.len() > 1) | stdout()),
        quote!(iter(rows) | filter(|o| o.status != "test") | stdout()),
        quote!(file(path = "in.jsonl") | map(|o| Row::from(o)) | filter(|o| o.status != "test") | stdout()),
        quote!(file(path = "in.jsonl") as Order | filter(|o| o.status != "test") | stdout()),
    ] {
        assert!(done(ok.clone(), &[order()]).errors.is_empty(), "{ok}");
    }
}

#[test]
fn the_record_type_after_each_step_for_the_graph() {
    let typed = done(
        quote!(iter(v) as Order | filter(|o| true) | select(id, amount_cents) | map(|o| o) | rename(amount_cents -> amount) | into(Payment) | map(|p| p.id) as i64 | stdout()),
        &[order(), payment()],
    );
    assert!(typed.errors.is_empty(), "{:?}", typed.errors.texts());
    let shown: Vec<String> = (0..8)
        .map(|i| match typed.record(i) {
            Described::Name(n) => n,
            Described::Type { ty, name } => format!("{name} ({})", norm(ty)),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "Order (Order)",
            "Order (Order)",
            "Order after select(id, amount_cents) (Order_after_select)",
            "?",
            "Order after rename(amount_cents -> amount) (Order_after_rename)",
            "Payment (Payment)",
            "i64 (i64)",
            "i64 (i64)"
        ]
    );
    let typed = done(quote!(file(path = "x") | drop(a) | map(|r| r) as (i64, String) | my::sink()), &[]);
    let shown: Vec<String> = (0..4)
        .map(|i| match typed.record(i) {
            Described::Name(n) => n,
            Described::Type { name, .. } => name,
        })
        .collect();
    assert_eq!(shown, ["Json", "Json", "(i64, String)", "(i64, String)"]);
}
