//! `#[derive(Record)]`: parsing of the user's struct and its serde attributes, and generation of
//! the `::etl::record::Record` impl.
//!
//! The work is split so later macros can reuse it:
//! * [`parse`] turns a [`syn::DeriveInput`] into a [`RecordDef`] — the struct's name, generics
//!   and serialised fields (serde name, Rust name, type text) — collecting *every* error;
//! * [`expand`] generates the impl from a [`RecordDef`];
//! * [`schema_callback`] is the extension point for the schema callback `macro_rules!`
//!   (DESIGN.md §3), which `pipeline!` will call to learn a record's fields.
//!
//! All of it runs on `proc_macro2` tokens, so it is unit-tested without the compiler.

mod case;

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Generics, Ident, LitStr, Type};

use case::RenameRule;

/// A struct that `#[derive(Record)]` accepted.
pub(crate) struct RecordDef {
    /// The struct's identifier, as written (possibly raw).
    pub(crate) ident: Ident,
    /// The struct's generics, as written.
    pub(crate) generics: Generics,
    /// The fields serde serialises, in declaration order (skipped fields are left out).
    pub(crate) fields: Vec<FieldDef>,
}

/// One serialised field of a [`RecordDef`].
pub(crate) struct FieldDef {
    /// The field's identifier, as written (possibly raw: `r#type`). Kept for
    /// [`schema_callback`], which will pass the user's tokens on to `pipeline!`.
    #[allow(dead_code)]
    pub(crate) ident: Ident,
    /// The name serde writes: after `rename` / `rename_all`, without `r#`.
    pub(crate) name: String,
    /// The Rust name without `r#`.
    pub(crate) rust_name: String,
    /// The field's type, kept for [`schema_callback`] like `ident`.
    #[allow(dead_code)]
    pub(crate) ty: Type,
    /// The field's type as text (`Vec<String>`, `Option<&'static str>`).
    pub(crate) ty_text: String,
}

/// Entry point of the derive: the impl, or `compile_error!`s for every problem found.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match parse(&input) {
        Ok(def) => {
            let mut out = expand(&def);
            out.extend(schema_callback(&def));
            out
        }
        Err(e) => e.to_compile_error(),
    }
}

/// Collects errors so that one expansion reports all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// What the struct-level serde attributes say.
#[derive(Default)]
struct ContainerAttrs {
    rename_all: Option<RenameRule>,
}

/// What a field's serde attributes say.
#[derive(Default)]
struct FieldAttrs {
    rename: Option<String>,
    skip: bool,
}

/// Check the input and extract its schema. Every error (shape, attributes, generics, name
/// collisions) is reported, each spanned on the user's token.
pub(crate) fn parse(input: &DeriveInput) -> syn::Result<RecordDef> {
    let mut errors = Errors::default();
    let container = container_attrs(&input.attrs, &mut errors);
    record_attrs(&input.attrs, &mut errors);
    check_generics(&input.generics, &mut errors);

    const SHAPE_HELP: &str = "help: use `struct Name { field: Type }`, or `etl::Json` for schemaless records";
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) => {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    format!("`#[derive(Record)]` needs a struct with named fields, not a tuple struct\n{SHAPE_HELP}"),
                ));
                None
            }
            Fields::Unit => {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    format!("`#[derive(Record)]` needs a struct with named fields, not a unit struct\n{SHAPE_HELP}"),
                ));
                None
            }
        },
        Data::Enum(e) => {
            errors.push(syn::Error::new(
                e.enum_token.span,
                format!("`#[derive(Record)]` needs a struct with named fields, not an enum\n{SHAPE_HELP}"),
            ));
            None
        }
        Data::Union(u) => {
            errors.push(syn::Error::new(
                u.union_token.span,
                format!("`#[derive(Record)]` needs a struct with named fields, not a union\n{SHAPE_HELP}"),
            ));
            None
        }
    };

    let mut fields: Vec<FieldDef> = Vec::new();
    if let Some(named) = named {
        for field in &named.named {
            let attrs = field_attrs(&field.attrs, &mut errors);
            record_attrs(&field.attrs, &mut errors);
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            if attrs.skip {
                continue;
            }
            let rust_name = ident.unraw().to_string();
            let name = match (attrs.rename, container.rename_all) {
                (Some(name), _) => name,
                (None, Some(rule)) => rule.apply_to_field(&rust_name),
                (None, None) => rust_name.clone(),
            };
            if let Some(first) = fields.iter().find(|f| f.name == name) {
                errors.push(syn::Error::new(
                    ident.span(),
                    format!(
                        "field `{rust_name}` is serialized as \"{name}\", like field `{}`: a record's field names must \
                         be unique\nhelp: rename one of them with `#[serde(rename = \"...\")]`",
                        first.rust_name
                    ),
                ));
            }
            fields.push(FieldDef { ty_text: type_text(&field.ty), ty: field.ty.clone(), ident, name, rust_name });
        }
        if fields.is_empty() {
            errors.push(syn::Error::new(
                input.ident.span(),
                "a record needs at least one serialized field (a schema without fields means a dynamic record)\n\
                 help: add a field, or use `etl::Json` for schemaless records",
            ));
        }
    }

    errors.finish(RecordDef { ident: input.ident.clone(), generics: input.generics.clone(), fields })
}

/// Records are owned and `'static`, so lifetime parameters cannot be satisfied; type and const
/// parameters are supported (see [`expand`]).
fn check_generics(generics: &Generics, errors: &mut Errors) {
    for lt in generics.lifetimes() {
        errors.push(syn::Error::new(
            lt.lifetime.span(),
            "`#[derive(Record)]` does not support lifetime parameters: records are owned and `'static`\n\
             help: use owned types (`String` instead of `&str`, `Vec<u8>` instead of `&[u8]`)",
        ));
    }
}

/// `#[record(...)]` takes no options yet; report any use so a typo is not silently ignored.
fn record_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("record")) {
        errors.push(syn::Error::new(
            attr.span(),
            "`#[record(...)]` takes no options yet\nhelp: remove this attribute (field names come from `#[serde(...)]`)",
        ));
    }
}

/// Read the serde container attributes that change field names; reject those that make the
/// serialised shape differ from the struct's fields.
fn container_attrs(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                // `rename_all = "..."` or `rename_all(serialize = "...", deserialize = "...")`.
                if let Some(lit) = serialize_name(&meta)? {
                    match RenameRule::from_name(&lit.value()) {
                        Some(rule) => out.rename_all = Some(rule),
                        None => errors.push(syn::Error::new(
                            lit.span(),
                            format!("unknown `rename_all` rule \"{}\"\nhelp: use one of {}", lit.value(), RenameRule::names()),
                        )),
                    }
                }
                Ok(())
            } else if let Some(why) = ["transparent", "into", "tag"].into_iter().find(|k| meta.path.is_ident(k)) {
                errors.push(syn::Error::new(
                    meta.path.span(),
                    format!(
                        "`#[serde({why})]` is not supported by Record: the serialized fields would differ from the \
                         struct's fields\nhelp: remove it, or use `etl::Json` for records of another shape"
                    ),
                ));
                skip_value(&meta)
            } else {
                skip_value(&meta)
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// Read the serde field attributes that decide a field's name and presence.
fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if let Some(lit) = serialize_name(&meta)? {
                    out.rename = Some(lit.value());
                }
                Ok(())
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                out.skip = true;
                Ok(())
            } else if meta.path.is_ident("flatten") {
                errors.push(syn::Error::new(
                    meta.path.span(),
                    "`#[serde(flatten)]` is not supported by Record: the fields are not known at compile time\n\
                     help: write the inner struct's fields in this struct, or use `etl::Json` for schemaless records",
                ));
                Ok(())
            } else {
                skip_value(&meta)
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// The serialisation name of `key = "x"` or `key(serialize = "x", deserialize = "y")`;
/// `None` when only `deserialize` is given (the serialised name is then the default).
fn serialize_name(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let mut ser = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            ser = Some(inner.value()?.parse()?);
            Ok(())
        } else if inner.path.is_ident("deserialize") {
            let _: LitStr = inner.value()?.parse()?;
            Ok(())
        } else {
            Err(inner.error("expected `serialize` or `deserialize`"))
        }
    })?;
    Ok(ser)
}

/// Consume the value of a serde option that does not concern the schema (`default`,
/// `with = "..."`, `bound(...)`, ...), whatever its form.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: TokenStream = meta.input.step(|cursor| match cursor.token_tree() {
            Some((tt, rest)) => Ok((tt.into_token_stream(), rest)),
            None => Err(cursor.error("expected `(...)`")),
        })?;
    }
    Ok(())
}

/// A type as text, spaced as people write it: `Vec<String>`, `&'static str`, `[u8; 4]`,
/// `HashMap<String, i64>`, `fn(i64) -> bool`, `Box<dyn Fn() + Send>`.
pub(crate) fn type_text(ty: &Type) -> String {
    let mut out = String::new();
    write_tokens(ty.to_token_stream(), &mut out);
    out
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    // Whether the previous token ends a "word" (ident, literal, closing of a lifetime).
    let mut prev_word = false;
    // Whether a space must follow the previous token (after `,` `;` and spaced operators).
    let mut space_after = false;
    // Whether the previous token was a joint punct whose partner must stick to it (`'a`, `::`, `->`).
    let mut glued = false;
    // The previous token, when it was an identifier.
    let mut last_ident: Option<String> = None;
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        let this_ident = match &tt {
            TokenTree::Ident(i) => Some(i.to_string()),
            _ => None,
        };
        match tt {
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                if !glued && (prev_word || space_after) {
                    out.push(' ');
                }
                out.push_str(&tt.to_string());
                prev_word = true;
                space_after = false;
                glued = false;
            }
            TokenTree::Group(g) => {
                // `&mut [u8]`, `*const [u8]`: a keyword before a group is spaced; `Fn()` is not.
                let after_keyword = matches!(&last_ident, Some(k) if ["mut", "const", "dyn", "impl"].contains(&k.as_str()));
                if space_after || after_keyword {
                    out.push(' ');
                }
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(g.stream(), out);
                out.push_str(close);
                prev_word = true;
                space_after = false;
                glued = false;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                let next_is = |want: char, iter: &mut std::iter::Peekable<proc_macro2::token_stream::IntoIter>| matches!(iter.peek(), Some(TokenTree::Punct(n)) if n.as_char() == want);
                match c {
                    // A lifetime: `'` glued to its name, spaced like a word before it.
                    '\'' => {
                        if !glued && (prev_word || space_after) {
                            out.push(' ');
                        }
                        out.push('\'');
                        prev_word = false;
                        space_after = false;
                        glued = true;
                    }
                    ',' | ';' => {
                        out.push(c);
                        prev_word = false;
                        space_after = true;
                        glued = false;
                    }
                    // `->`, `+` and `=` are spaced on both sides.
                    '-' if p.spacing() == Spacing::Joint && next_is('>', &mut iter) => {
                        iter.next();
                        out.push_str(" -> ");
                        prev_word = false;
                        space_after = false;
                        glued = true;
                    }
                    '+' | '=' => {
                        out.push(' ');
                        out.push(c);
                        prev_word = false;
                        space_after = true;
                        glued = false;
                    }
                    _ => {
                        if space_after {
                            out.push(' ');
                        }
                        out.push(c);
                        prev_word = false;
                        space_after = false;
                        glued = c == ':' || c == '&' || c == '*' || c == '<' || c == '!' || c == '#';
                    }
                }
            }
        }
        last_ident = this_ident;
    }
}

/// Generate `impl ::etl::record::Record for S`. The schema is a `static` inside `schema()`.
///
/// Generic structs get one bound on the whole type instead of bounds per parameter, so
/// `struct Page<T> { items: Vec<T> }` works with whatever bounds serde's derive inferred:
/// `where Page<T>: Serialize + for<'de> Deserialize<'de> + Send + 'static` — the supertraits of
/// `Record`, spelled through `::etl` (`for<'de> Deserialize<'de>` is `DeserializeOwned`).
pub(crate) fn expand(def: &RecordDef) -> TokenStream {
    let ident = &def.ident;
    let record_name = ident.unraw().to_string();
    let mut generics = def.generics.clone();
    let (_, ty_generics, _) = def.generics.split_for_impl();
    if !def.generics.params.is_empty() {
        generics.make_where_clause().predicates.push(syn::parse_quote! {
            #ident #ty_generics: ::etl::prelude::Serialize
                + for<'__etl_de> ::etl::prelude::Deserialize<'__etl_de>
                + ::core::marker::Send
                + 'static
        });
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let fields = def.fields.iter().map(|f| {
        let (name, rust_name, ty) = (&f.name, &f.rust_name, &f.ty_text);
        quote! { ::etl::record::Field { name: #name, rust_name: #rust_name, ty: #ty } }
    });
    let span = Span::mixed_site();
    let schema = Ident::new("SCHEMA", span);
    quote! {
        #[automatically_derived]
        impl #impl_generics ::etl::record::Record for #ident #ty_generics #where_clause {
            fn schema() -> &'static ::etl::record::Schema {
                static #schema: ::etl::record::Schema = ::etl::record::Schema {
                    name: #record_name,
                    fields: &[#(#fields),*],
                };
                &#schema
            }
        }
    }
}

/// Extension point for the schema *callback macro* (DESIGN.md §3): a `macro_rules!` exported
/// under the struct's name that `pipeline!` calls to learn the record's fields.
///
/// It deliberately generates nothing yet; the issue that adds `pipeline!` fills it in from
/// `def` (each [`FieldDef`] keeps the user's `ident` and `ty` tokens for that), minding the
/// traps in LESSONS.md: call the `#[macro_export]`ed macro through a `pub use` alias placed
/// after it (rust#52234), match `$(::)? $($seg:ident)::+` rather than `$cb:path`, and put a hash
/// of the item in the exported name so same-named records in different modules do not collide.
pub(crate) fn schema_callback(def: &RecordDef) -> TokenStream {
    let _ = def;
    TokenStream::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(tokens: TokenStream) -> RecordDef {
        match parse(&syn::parse2(tokens).expect("test input parses")) {
            Ok(def) => def,
            Err(e) => panic!("unexpected error: {e}"),
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
    fn schema_callback_is_empty_for_now() {
        let def = parse_ok(quote! { struct S { a: i64 } });
        assert!(schema_callback(&def).is_empty());
        let out = derive(quote! { struct S { a: i64 } }).to_string();
        assert_eq!(out, expand(&def).to_string());
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
        assert_eq!(format!("{:?}", err.span()), format!("{:?}", e.enum_token.span));
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
}
