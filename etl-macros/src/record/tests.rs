//! Unit tests of `#[derive(Record)]`: parsing, errors, generated code.

use super::expand::fnv1a;
use super::*;
use quote::quote;
use syn::Data;

fn parse_ok(tokens: TokenStream) -> RecordDef {
    match parse(&syn::parse2(tokens).expect("test input parses")) {
        Ok(def) => def,
        Err(e) => panic!("unexpected error: {:?}", e.texts()),
    }
}

fn errors(tokens: TokenStream) -> Vec<String> {
    match parse(&syn::parse2(tokens).expect("test input parses")) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn names(def: &RecordDef) -> Vec<(&str, &str, &str)> {
    def.fields.iter().map(|f| (f.name.as_str(), f.rust_name.as_str(), f.ty_text.as_str())).collect()
}

#[test]
fn plain_struct_in_declaration_order() {
    let def = parse_ok(quote! { struct Order { id: i64, customer: String, lines: Vec<Line> } });
    assert_eq!(def.ident, "Order");
    assert_eq!(names(&def), [("id", "id", "i64"), ("customer", "customer", "String"), ("lines", "lines", "Vec<Line>")]);
}

#[test]
fn field_rename_and_rename_serialize() {
    let def = parse_ok(quote! {
        struct S {
            #[serde(rename = "type")] kind: String,
            #[serde(rename(serialize = "out", deserialize = "in"))] a: u8,
            #[serde(rename(deserialize = "only_in"))] b: u8,
            #[serde(default, rename = "c2", skip_serializing_if = "Option::is_none")] c: Option<u8>,
        }
    });
    assert_eq!(
        def.fields.iter().map(|f| (f.name.as_str(), f.rust_name.as_str())).collect::<Vec<_>>(),
        [("type", "kind"), ("out", "a"), ("b", "b"), ("c2", "c")]
    );
}

#[test]
fn rename_all_applies_unless_field_renamed() {
    let def = parse_ok(quote! {
        #[derive(Serialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct S { user_id: i64, #[serde(rename = "X")] created_at: i64, r#type: String }
    });
    assert_eq!(def.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["userId", "X", "type"]);

    let def = parse_ok(quote! {
        #[serde(rename_all(serialize = "SCREAMING-KEBAB-CASE", deserialize = "snake_case"))]
        struct S { user_id: i64 }
    });
    assert_eq!(def.fields[0].name, "USER-ID");
}

#[test]
fn skip_and_skip_serializing_leave_the_schema() {
    let def = parse_ok(quote! {
        struct S {
            a: i64,
            #[serde(skip)] b: i64,
            #[serde(skip_serializing)] c: i64,
            #[serde(skip_deserializing)] d: i64,
        }
    });
    assert_eq!(def.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a", "d"]);
}

#[test]
fn raw_identifiers_are_unrawed() {
    let def = parse_ok(quote! { struct r#Match { r#type: String, r#match: u8 } });
    assert_eq!(names(&def), [("type", "type", "String"), ("match", "match", "u8")]);
    assert!(expand(&def).to_string().contains("name : \"Match\""));
}

#[test]
fn type_text_is_spaced_as_written() {
    let cases = [
        (quote!(i64), "i64"),
        (quote!(Vec<String>), "Vec<String>"),
        (quote!(Option<Vec<Option<u8>>>), "Option<Vec<Option<u8>>>"),
        (quote!(std::collections::HashMap<String, i64>), "std::collections::HashMap<String, i64>"),
        (quote!(::std::string::String), "::std::string::String"),
        (quote!(&'static str), "&'static str"),
        (quote!(&'a mut [u8]), "&'a mut [u8]"),
        (quote!(*const [u8]), "*const [u8]"),
        (quote!(impl Fn(u8)), "impl Fn(u8)"),
        (quote!([u8; 4]), "[u8; 4]"),
        (quote!((i64, String)), "(i64, String)"),
        (quote!(fn(i64) -> bool), "fn(i64) -> bool"),
        (quote!(Box<dyn Fn() + Send + 'static>), "Box<dyn Fn() + Send + 'static>"),
        (quote!(*const T), "*const T"),
        (quote!(<T as Iterator>::Item), "<T as Iterator>::Item"),
        (quote!(Box<dyn Iterator<Item = u8>>), "Box<dyn Iterator<Item = u8>>"),
    ];
    for (tokens, want) in cases {
        let ty: Type = syn::parse2(tokens).expect("type");
        assert_eq!(type_text(&ty), want);
    }
}

#[test]
fn expands_to_record_impl_with_static_schema() {
    let def = parse_ok(quote! { struct Order { #[serde(rename = "ID")] id: i64 } });
    let out = expand(&def).to_string();
    assert!(out.contains("impl :: etl :: record :: Record for Order"), "{out}");
    assert!(out.contains("fn schema () -> & 'static :: etl :: record :: Schema"), "{out}");
    assert!(out.contains("static SCHEMA : :: etl :: record :: Schema"), "{out}");
    assert!(out.contains(":: etl :: record :: Field { name : \"ID\" , rust_name : \"id\" , ty : \"i64\" }"), "{out}");
    assert!(!out.contains("where"), "no bounds for a non-generic struct: {out}");
}

#[test]
fn generics_get_a_whole_type_bound() {
    let def = parse_ok(quote! { struct Page<T: Clone, const N: usize> where T: Default { items: Vec<T> } });
    let out = expand(&def).to_string();
    assert!(out.contains("impl < T : Clone , const N : usize > :: etl :: record :: Record for Page < T , N >"), "{out}");
    assert!(out.contains("where T : Default , Page < T , N > : :: etl :: prelude :: Serialize"), "{out}");
    assert!(out.contains("for < '__etl_de > :: etl :: prelude :: Deserialize < '__etl_de >"), "{out}");
    assert!(out.contains(":: core :: marker :: Send + 'static"), "{out}");
}

#[test]
fn derive_emits_compile_error_not_panic() {
    let out = derive(quote! { enum E { A } }).to_string();
    assert!(out.starts_with(":: core :: compile_error !"), "{out}");
    let out = derive(quote! { not rust at all }).to_string();
    assert!(out.contains("compile_error"), "{out}");
}

#[test]
fn schema_callback_exports_a_hashed_macro_under_the_structs_name() {
    let def = parse_ok(quote! { pub(crate) struct S { a: i64, #[serde(skip)] b: u8, #[serde(rename = "C", default)] c: Vec<String> } });
    let out = schema_callback(&def, "salt").to_string();
    let exported = format!("__etl_record_S_{:016x}", fnv1a("salt"));
    assert!(out.contains(&format!("# [doc (hidden)] macro_rules ! {exported}")), "not exported from the crate: {out}");
    assert!(out.contains(&format!("pub (crate) use {exported} as S ;")), "{out}");
    let public = schema_callback(&parse_ok(quote! { pub struct S { a: i64 } }), "salt").to_string();
    assert!(public.contains(&format!("# [macro_export] # [allow (non_local_definitions)] macro_rules ! {exported}")), "{public}");
    assert!(public.contains(&format!("pub use {exported} as S ;")), "{public}");
    assert!(out.contains("impl :: etl :: __private :: FieldType < 0usize > for S { type Type = i64 ; }"), "{out}");
    assert!(out.contains("impl :: etl :: __private :: FieldType < 2usize > for S { type Type = Vec < String > ; }"), "{out}");
    assert!(!out.contains("FieldType < 1usize >"), "skipped fields have no type impl: {out}");
    // Both arms call back with the schema first, then the caller's tokens.
    assert!(out.contains("(:: $ ($ seg : ident) :: + ! { $ ($ rest : tt) * }) => { :: $ ($ seg) :: + ! { @ etl_record"), "{out}");
    assert!(out.contains("($ ($ seg : ident) :: + ! { $ ($ rest : tt) * }) => { $ ($ seg) :: + ! { @ etl_record"), "{out}");
    assert_ne!(fnv1a("a"), fnv1a("b"));
}

#[test]
fn schema_tokens_list_fields_options_and_skipped() {
    let def = parse_ok(quote! {
        struct S {
            id: i64,
            #[serde(skip)] cached: u8,
            #[serde(rename = "type", alias = "t", default)] kind: String,
            #[serde(with = "my_dates", skip_serializing_if = "Option::is_none", default = "none")] at: Option<i64>,
        }
    });
    let out = schema(&def).to_token_stream().to_string();
    assert_eq!(
        out,
        "@ etl_record { [(\"id\" , 0usize , \"id\" , \"i64\" , []) , \
         (\"kind\" , 2usize , \"type\" , \"String\" , [default , alias = \"t\"]) , \
         (\"at\" , 3usize , \"at\" , \"Option<i64>\" , [default_with , skip_serializing_if , serialize_with , deserialize_with])] , \
         [\"cached\"] }"
    );
    let all = derive(quote! { struct S { #[serde(with = "my_dates")] at: i64 } }).to_string();
    assert!(all.contains("my_dates :: serialize (value , serializer)"), "{all}");
    assert!(all.contains("my_dates :: deserialize (deserializer)"), "{all}");
}

#[test]
fn wrong_shapes_are_errors_with_help() {
    for (input, what) in [
        (quote! { enum E { A, B } }, "not an enum"),
        (quote! { union U { a: u8 } }, "not a union"),
        (quote! { struct T(i64, String); }, "not a tuple struct"),
        (quote! { struct U; }, "not a unit struct"),
    ] {
        let errs = errors(input);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("`#[derive(Record)]` needs a struct with named fields"), "{errs:?}");
        assert!(errs[0].contains(what), "{errs:?}");
        assert!(errs[0].contains("help: use `struct Name { field: Type }`, or `etl::Json`"), "{errs:?}");
    }
}

#[test]
fn error_spans_point_at_the_user_token() {
    let input: DeriveInput = syn::parse2(quote! { enum E { A } }).expect("parses");
    let Data::Enum(e) = &input.data else { unreachable!() };
    let Err(err) = parse(&input) else { panic!("an enum is an error") };
    // Spans of one `quote!` are all call_site outside the compiler; compare debug text instead.
    let span = err.iter().next().map(|d| format!("{:?}", d.span));
    assert_eq!(span, Some(format!("{:?}", e.enum_token.span)));
}

#[test]
fn all_errors_are_reported_together() {
    let errs = errors(quote! {
        #[serde(rename_all = "camelcase")]
        struct S<'a> {
            #[serde(flatten)] inner: Inner,
            #[serde(flatten)] more: Inner,
            #[record(x)] a: &'a str,
            #[serde(rename = "a")] b: i64,
        }
    });
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert!(errs[0].starts_with("unknown `rename_all` rule \"camelcase\"\nhelp: use one of \"lowercase\""), "{errs:#?}");
    assert!(errs[1].contains("does not support lifetime parameters"), "{errs:#?}");
    assert!(
        errs[2].starts_with("`#[serde(flatten)]` is not supported by Record: the fields are not known at compile time\nhelp:"),
        "{errs:#?}"
    );
    assert!(errs[3].contains("flatten"), "{errs:#?}");
    assert!(errs[4].contains("`#[record(...)]` takes no options yet"), "{errs:#?}");
    assert!(errs[5].contains("field `b` is serialized as \"a\", like field `a`"), "{errs:#?}");
}

#[test]
fn shape_changing_container_attrs_are_errors() {
    for attr in [quote!(transparent), quote!(into = "Other"), quote!(tag = "kind")] {
        let errs = errors(quote! { #[serde(#attr)] struct S { a: i64 } });
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("is not supported by Record"), "{errs:?}");
    }
}

#[test]
fn malformed_serde_attrs_are_errors_not_panics() {
    let errs = errors(quote! { struct S { #[serde(rename = 5)] a: i64, #[serde(rename(sideways = "x"))] b: i64 } });
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[1].contains("expected `serialize` or `deserialize`"), "{errs:?}");
}

#[test]
fn no_serialized_fields_is_an_error() {
    for input in [quote! { struct S {} }, quote! { struct S { #[serde(skip)] a: i64 } }] {
        let errs = errors(input);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("at least one serialized field"), "{errs:?}");
    }
}

#[test]
fn unrelated_serde_options_are_ignored() {
    let def = parse_ok(quote! {
        #[serde(deny_unknown_fields, bound(serialize = "T: Serialize"), crate = "serde", default)]
        struct S<T> {
            #[serde(default = "zero", with = "my_mod", alias = "x", bound = "T: Clone", borrow)] a: T,
            #[serde(serialize_with = "f", deserialize_with = "g", skip_serializing_if = "is_zero")] b: i64,
        }
    });
    assert_eq!(def.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}
