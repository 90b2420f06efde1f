//! `#[derive(Record)]`: parsing of the user's struct and its serde attributes, and generation of
//! the `::etl::record::Record` impl.
//!
//! The work is split so later macros can reuse it:
//! * [`parse`] turns a [`syn::DeriveInput`] into a [`RecordDef`] — the struct's name, generics
//!   and serialised fields (serde name, Rust name, type text) — collecting *every* error;
//! * [`expand`] generates the impl from a [`RecordDef`];
//! * [`schema_callback`] generates the schema callback `macro_rules!` (DESIGN.md §3), which
//!   `pipeline!` calls to learn a record's fields, and the `FieldType<N>` impls through which
//!   the record types `pipeline!` generates name the fields' types and serde helpers.
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
    /// The struct's visibility, given to its schema macro's alias.
    pub(crate) vis: syn::Visibility,
    /// The struct's generics, as written.
    pub(crate) generics: Generics,
    /// The fields serde serialises, in declaration order (skipped fields are left out).
    pub(crate) fields: Vec<FieldDef>,
    /// The Rust names of the fields serde skips (`skip`, `skip_serializing`): `into(Type)`
    /// fills them with `Default::default()`.
    pub(crate) skipped: Vec<String>,
}

/// One serialised field of a [`RecordDef`].
pub(crate) struct FieldDef {
    /// The field's identifier, as written (possibly raw: `r#type`).
    #[allow(dead_code)] // read by the unit tests
    pub(crate) ident: Ident,
    /// Its declaration position among all the struct's fields (skipped ones count): the `N`
    /// of `::etl::__private::FieldType<N>`.
    pub(crate) index: usize,
    /// The name serde writes: after `rename` / `rename_all`, without `r#`.
    pub(crate) name: String,
    /// The Rust name without `r#`.
    pub(crate) rust_name: String,
    /// The field's type.
    pub(crate) ty: Type,
    /// The field's type as text (`Vec<String>`, `Option<&'static str>`).
    pub(crate) ty_text: String,
    /// The serde options that generated record types carry over.
    pub(crate) serde: FieldSerde,
}

/// The serde options of a field that the record types `pipeline!` generates from it keep
/// (its name is decided by the pipeline). Paths are called through the
/// `::etl::__private::Field*` traits, implemented next to the struct, so they resolve in the
/// struct's scope wherever the pipeline is.
#[derive(Default, Clone)]
pub(crate) struct FieldSerde {
    /// `default`: `Default::default()` when missing.
    pub(crate) default: bool,
    /// `default = "path"`.
    pub(crate) default_with: Option<LitStr>,
    /// `skip_serializing_if = "path"`.
    pub(crate) skip_serializing_if: Option<LitStr>,
    /// `serialize_with = "path"`, or `with = "module"` (then `module::serialize`).
    pub(crate) serialize_with: Option<syn::ExprPath>,
    /// `deserialize_with = "path"`, or `with = "module"` (then `module::deserialize`).
    pub(crate) deserialize_with: Option<syn::ExprPath>,
    /// `skip_deserializing`.
    pub(crate) skip_deserializing: bool,
    /// `alias = "name"`, each.
    pub(crate) aliases: Vec<LitStr>,
}

/// Entry point of the derive: the impl, or `compile_error!`s for every problem found.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match parse(&input) {
        Ok(def) => {
            // Two records with the same name (in different modules) must export differently
            // named macros: the salt is the item's text and where it stands in the crate.
            let salt = format!("{} {:?}", input.to_token_stream(), input.ident.span());
            let mut out = expand(&def);
            out.extend(schema_callback(&def, &salt));
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
    serde: FieldSerde,
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
    let mut skipped: Vec<String> = Vec::new();
    if let Some(named) = named {
        for (index, field) in named.named.iter().enumerate() {
            let attrs = field_attrs(&field.attrs, &mut errors);
            record_attrs(&field.attrs, &mut errors);
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            let rust_name = ident.unraw().to_string();
            if attrs.skip {
                skipped.push(rust_name);
                continue;
            }
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
            fields.push(FieldDef {
                ty_text: type_text(&field.ty),
                ty: field.ty.clone(),
                ident,
                index,
                name,
                rust_name,
                serde: attrs.serde,
            });
        }
        if fields.is_empty() {
            errors.push(syn::Error::new(
                input.ident.span(),
                "a record needs at least one serialized field (a schema without fields means a dynamic record)\n\
                 help: add a field, or use `etl::Json` for schemaless records",
            ));
        }
    }

    errors.finish(RecordDef { ident: input.ident.clone(), vis: input.vis.clone(), generics: input.generics.clone(), fields, skipped })
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
            } else if meta.path.is_ident("skip_deserializing") {
                out.serde.skip_deserializing = true;
                Ok(())
            } else if meta.path.is_ident("default") {
                if meta.input.peek(syn::Token![=]) {
                    out.serde.default_with = Some(expr_path_lit(&meta)?.0);
                } else {
                    out.serde.default = true;
                }
                Ok(())
            } else if meta.path.is_ident("skip_serializing_if") {
                out.serde.skip_serializing_if = Some(expr_path_lit(&meta)?.0);
                Ok(())
            } else if meta.path.is_ident("serialize_with") {
                out.serde.serialize_with = Some(expr_path_lit(&meta)?.1);
                Ok(())
            } else if meta.path.is_ident("deserialize_with") {
                out.serde.deserialize_with = Some(expr_path_lit(&meta)?.1);
                Ok(())
            } else if meta.path.is_ident("with") {
                let (_, module) = expr_path_lit(&meta)?;
                let mut ser = module.clone();
                ser.path.segments.push(Ident::new("serialize", Span::call_site()).into());
                let mut de = module;
                de.path.segments.push(Ident::new("deserialize", Span::call_site()).into());
                out.serde.serialize_with = Some(ser);
                out.serde.deserialize_with = Some(de);
                Ok(())
            } else if meta.path.is_ident("alias") {
                out.serde.aliases.push(meta.value()?.parse()?);
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

/// `key = "path"`: the literal and the path it holds (spanned on the literal, as serde does).
fn expr_path_lit(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<(LitStr, syn::ExprPath)> {
    let lit: LitStr = meta.value()?.parse()?;
    let path = lit.parse::<syn::ExprPath>()?;
    Ok((lit, path))
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

/// The schema *callback macro* (DESIGN.md §3) and the field traits it relies on.
///
/// * `impl ::etl::__private::FieldType<N> for S { type Type = <field N's type>; }` for each
///   serialised field (`N` is its declaration position), and the `Field*With` / `FieldSkipIf`
///   / `FieldDefault` impls that call the field's serde helper paths: the record types that
///   `pipeline!` generates name their field types and serde helpers through them, so both
///   resolve in the struct's scope wherever the pipeline is written.
/// * `#[macro_export] macro_rules! __etl_record_S_<hash>` (a plain local `macro_rules!` unless
///   the struct is `pub`), re-exported next to the struct as `S` (macros have their own
///   namespace), with the struct's visibility: importing the struct imports its schema. Called as `S! { path::to::callback! { tokens } }`, it expands to
///   `path::to::callback! { @etl_record { ... } tokens }`, the schema prepended.
///
/// The traps of this pattern (LESSONS.md): a macro-expanded `#[macro_export]` macro cannot be
/// named by an absolute path (rust#52234), hence the alias placed after it; a `$cb:path` cannot
/// be invoked, hence `$($seg:ident)::+`; same-named records in different modules would collide
/// at the crate root, hence the hash of the item (`salt`) in the exported name.
pub(crate) fn schema_callback(def: &RecordDef, salt: &str) -> TokenStream {
    let ident = &def.ident;
    let (impl_generics, ty_generics, where_clause) = def.generics.split_for_impl();
    let mut impls = Vec::new();
    for f in &def.fields {
        let n = f.index;
        let ty = &f.ty;
        let head = |tr: TokenStream| quote!(#[automatically_derived] impl #impl_generics #tr for #ident #ty_generics #where_clause);
        let h = head(quote!(::etl::__private::FieldType<#n>));
        impls.push(quote!(#h { type Type = #ty; }));
        if let Some(path) = &f.serde.serialize_with {
            let h = head(quote!(::etl::__private::FieldSerializeWith<#n>));
            impls.push(quote! {
                #h {
                    fn serialize_with<__S: ::etl::__private::serde::Serializer>(value: &Self::Type, serializer: __S)
                        -> ::core::result::Result<__S::Ok, __S::Error> { #path(value, serializer) }
                }
            });
        }
        if let Some(path) = &f.serde.deserialize_with {
            let h = head(quote!(::etl::__private::FieldDeserializeWith<#n>));
            impls.push(quote! {
                #h {
                    fn deserialize_with<'de, __D: ::etl::__private::serde::Deserializer<'de>>(deserializer: __D)
                        -> ::core::result::Result<Self::Type, __D::Error> { #path(deserializer) }
                }
            });
        }
        if let Some(path) = f.serde.skip_serializing_if.as_ref().and_then(|l| l.parse::<syn::ExprPath>().ok()) {
            let h = head(quote!(::etl::__private::FieldSkipIf<#n>));
            impls.push(quote!(#h { fn skip_serializing_if(value: &Self::Type) -> bool { #path(value) } }));
        }
        if let Some(path) = f.serde.default_with.as_ref().and_then(|l| l.parse::<syn::ExprPath>().ok()) {
            let h = head(quote!(::etl::__private::FieldDefault<#n>));
            impls.push(quote!(#h { fn default() -> Self::Type { #path() } }));
        }
    }
    let schema = schema_tokens(def);
    let name = ident.unraw().to_string();
    let exported = Ident::new(&format!("__etl_record_{name}_{:016x}", fnv1a(salt)), Span::call_site());
    let vis = &def.vis;
    // Only a `pub` record needs its macro outside the crate: others get a plain local
    // `macro_rules!`, imported within the crate by the `use` below. (A `#[macro_export]` in a
    // function body also draws rustc's `non_local_definitions` warning on the user's code.)
    let export = match vis {
        syn::Visibility::Public(_) => quote!(#[macro_export] #[allow(non_local_definitions)]),
        _ => quote!(),
    };
    quote! {
        const _: () = { #(#impls)* };
        #[doc(hidden)]
        #export
        macro_rules! #exported {
            (:: $($seg:ident)::+ ! { $($rest:tt)* }) => { :: $($seg)::+ ! { #schema $($rest)* } };
            ($($seg:ident)::+ ! { $($rest:tt)* }) => { $($seg)::+ ! { #schema $($rest)* } };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #exported as #ident;
    }
}

/// The schema block a record's callback macro prepends:
/// `@etl_record { "Name", <type parameters>, [(rust_name, index, serde_name, type, [options]), ...], [skipped, ...] }`.
/// Read back by `pipeline::schema::RecordSchema::parse`.
pub(crate) fn schema_tokens(def: &RecordDef) -> TokenStream {
    let name = def.ident.unraw().to_string();
    let params = def.generics.type_params().count();
    let fields = def.fields.iter().map(|f| {
        let (rust_name, index, serde_name, ty) = (&f.rust_name, f.index, &f.name, &f.ty_text);
        let s = &f.serde;
        let mut options = Vec::new();
        if s.default {
            options.push(quote!(default));
        }
        if s.default_with.is_some() {
            options.push(quote!(default_with));
        }
        if s.skip_serializing_if.is_some() {
            options.push(quote!(skip_serializing_if));
        }
        if s.serialize_with.is_some() {
            options.push(quote!(serialize_with));
        }
        if s.deserialize_with.is_some() {
            options.push(quote!(deserialize_with));
        }
        if s.skip_deserializing {
            options.push(quote!(skip_deserializing));
        }
        for alias in &s.aliases {
            let alias = alias.value();
            options.push(quote!(alias = #alias));
        }
        quote!((#rust_name, #index, #serde_name, #ty, [#(#options),*]))
    });
    let skipped = &def.skipped;
    quote!(@etl_record { #name, #params, [#(#fields),*], [#(#skipped),*] })
}

/// FNV-1a, 64 bits: a hash that is the same on every build (unlike `DefaultHasher`'s).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
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
        let out = schema_tokens(&def).to_string();
        assert_eq!(
            out,
            "@ etl_record { \"S\" , 0usize , [(\"id\" , 0usize , \"id\" , \"i64\" , []) , \
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
