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
        Outcome::Need(p) => panic!("needs {}", p.to_token_stream()),
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
    let Outcome::Need(first) = walk_with(input.clone(), &[]) else { panic!("needs Order") };
    assert_eq!(norm(first), "Order");
    let Outcome::Need(second) = walk_with(input.clone(), &[order()]) else { panic!("needs Payment") };
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
    let Outcome::Need(p) = walk_with(quote!(iter(v) as shop::Page<i64> | select(n) | stdout()), &[]) else { panic!() };
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
    assert!(e[0].contains("no field `customer` in the record after `select`: an earlier `select` removed it"), "{e:?}");
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
    let Outcome::Need(p) = walk_with(quote!(iter(rows) | into(Payment) | rename(amount -> total) | stdout()), &[]) else { panic!() };
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
    assert!(rename.contains("struct__OrderRename1{"), "{rename}");
    assert!(rename.contains("#[serde(rename=\"buyer\")]buyer:<Orderas::etl::__private::FieldType<1usize>>::Type"), "{rename}");
    assert!(
        rename.contains("#[serde(rename=\"cents\",alias=\"c\")]amount_cents:<Orderas::etl::__private::FieldType<3usize>>::Type"),
        "kept fields keep their serde name and aliases: {rename}"
    );
    assert!(rename.contains("impl::etl::record::Recordfor__OrderRename1"), "{rename}");
    assert!(rename.contains("for<'__etl><Orderas::etl::__private::FieldType<0usize>>::Type:::core::clone::Clone"), "{rename}");
    let select = norm(&typed.items[1]);
    assert!(select.contains("struct__OrderSelect2{#[serde(rename=\"cents\",alias=\"c\")]amount_cents"), "{select}");
    // The conversions move fields by name, the old record destructured.
    assert_eq!(
        norm(typed.op(1).expect("rename op")),
        norm(quote!(.map(|__etl_record: Order| -> __OrderRename1 {
            let Order { id: __etl_0, customer: __etl_1, amount_cents: __etl_2, .. } = __etl_record;
            __OrderRename1 { id: __etl_0, buyer: __etl_1, amount_cents: __etl_2 }
        })))
    );
    assert_eq!(
        norm(typed.op(2).expect("select op")),
        norm(quote!(.map(|__etl_record: __OrderRename1| -> __OrderSelect2 {
            let __OrderRename1 { amount_cents: __etl_0, buyer: __etl_1, .. } = __etl_record;
            __OrderSelect2 { amount_cents: __etl_0, buyer: __etl_1 }
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
        op.starts_with(".map(|__etl_record:__OrderRename2|->Payment{let__OrderRename2{id:__etl_0,amount:__etl_1,..}=__etl_record;Payment{"),
        "{op}"
    );
    assert!(
        op.contains(&norm(quote!(amount: { #[allow(non_camel_case_types, dead_code)] enum amount {}
        ::etl::__private::into_field::<Payment, amount, <Payment as ::etl::__private::FieldType<1usize>>::Type, _>(__etl_1) }))),
        "{op}"
    );
    assert!(op.contains("note:::core::default::Default::default()"), "{op}");
}
