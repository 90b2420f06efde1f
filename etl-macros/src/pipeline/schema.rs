//! Record schemas as the callback macros of `#[derive(Record)]` hand them to `pipeline!`.
//!
//! `pipeline!` cannot see the fields of `Order` in `iter(v) as Order | rename(..)`; the derive
//! exports a `macro_rules!` under the struct's name (see `record::schema_callback`) that calls
//! back `::etl::__private::pipeline_with_schema! { @etl_record { .. } <input> }`. This module
//! reads those blocks back ([`split`], in the format of [`crate::wire`]) and emits the call of
//! the next callback ([`callback`]).
//!
//! Several types may be needed (the source's, then `into(Type)`'s): each round fetches one
//! more, prepending its block, so the blocks arrive newest first.

use crate::diagnostic::Diagnostic;
use crate::wire::{RecordSchema, TAG};
use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use quote::quote;
use syn::parse::{Parse, Parser};

/// A schema as received: parsed, and its tokens to send on in the next round.
pub struct Received {
    /// The schema.
    pub schema: RecordSchema,
    /// Its `@etl_record { .. }` tokens, as they came.
    pub tokens: TokenStream,
}

/// Split `@etl_record { .. } @etl_record { .. } <pipeline>` into the schemas, oldest first
/// (the order they were asked for), and the pipeline's own tokens.
pub fn split(input: TokenStream) -> Result<(Vec<Received>, TokenStream), Diagnostic> {
    let mut tokens: Vec<TokenTree> = input.into_iter().collect();
    let mut schemas = Vec::new();
    let mut at = 0;
    while let [TokenTree::Punct(p), TokenTree::Ident(tag), TokenTree::Group(g), ..] = &tokens[at..] {
        if p.as_char() != '@' || tag != TAG || g.delimiter() != Delimiter::Brace {
            break;
        }
        let block: TokenStream = tokens[at..at + 3].iter().cloned().collect();
        let schema = RecordSchema::parse.parse2(block.clone()).map_err(|e| {
            Diagnostic::new(
                e.span(),
                format!("etl: a record's schema macro sent a schema this `pipeline!` cannot read ({e})"),
                "use the same version of `etl` for the record and the pipeline",
            )
        })?;
        schemas.push(Received { schema, tokens: block });
        at += 3;
    }
    schemas.reverse();
    Ok((schemas, tokens.drain(at..).collect()))
}

/// How many schema macros a pipeline can call with a fallback: `etl::__private::no_schema`
/// has a name for each round (`__etl_schema_0` ..). Past them (a pipeline of more record
/// types), the macro is called by the type's own name, with rustc's error if it has none.
pub const FALLBACKS: usize = 8;

/// The call of the schema macro of the record type at `path` that brings its schema to
/// `pipeline_with_schema!`, with the schemas already received (`sent`, their tokens, oldest
/// first) and the pipeline's tokens.
///
/// The macro has the type's name (see `record::schema_callback`), but a type that does not
/// derive `Record` has none, and rustc would only say "cannot find macro `Order`". So it is
/// called under an alias, `__etl_schema_N`, imported twice: explicitly from the type's path
/// (`use Order as __etl_schema_N;`, which brings the macro when there is one) in an inner
/// block, and by a glob from `::etl::__private::no_schema`, whose `__etl_schema_N` is
/// `__pipeline_no_schema!` (the error that the type must derive `Record`), in the outer one.
/// The inner block's import is found first: the type's macro when it has one, the error
/// otherwise. (In one block, rustc refuses a macro-expanded import that shadows a glob. `N`
/// is the round, so that a later round's glob is never found before an earlier round's
/// import. The call is a `let`'s value, an expression, so that it cannot define items and the
/// imports resolve without it.) Past [`FALLBACKS`] rounds, and for a path `use` refuses, the
/// macro is called by the type's own name.
pub fn callback(path: &syn::Path, sent: &[TokenStream], input: TokenStream) -> TokenStream {
    // The macro is named by the type's path without generic arguments: `Page<i64>` → `Page!`.
    let mut path = path.clone();
    for seg in &mut path.segments {
        seg.arguments = syn::PathArguments::None;
    }
    let round = sent.len();
    let sent = sent.iter().rev();
    let span = path.segments.last().map_or_else(Span::call_site, |s| s.ident.span());
    let body = quote!({
        ::etl::__private::pipeline_with_schema! { #(#sent)* #input }
    });
    if round >= FALLBACKS || cannot_be_imported(&path) {
        let mut bang = proc_macro2::Punct::new('!', proc_macro2::Spacing::Alone);
        bang.set_span(span);
        let mut call = quote!(#path);
        call.extend([TokenTree::Punct(bang)]);
        return quote!(#call #body);
    }
    let alias = Ident::new(&format!("__etl_schema_{round}"), span);
    let run = Ident::new("__etl_run", Span::mixed_site());
    quote!({
        #[allow(unused_imports)]
        use ::etl::__private::no_schema::*;
        {
            #[allow(unused_imports)]
            use #path as #alias;
            let #run = #alias! #body;
            #run
        }
    })
}

/// Whether `path` is one that `use` refuses: `Self`, or what looks like a type parameter (`T`,
/// `U2`: one capital letter, maybe digits), which cannot be imported (rustc would add two errors
/// about the import to the one that the type has no schema). Such a type's macro is called by
/// its name: a struct `T` that derives `Record` still works, one that does not gets rustc's
/// "cannot find macro `T`".
fn cannot_be_imported(path: &syn::Path) -> bool {
    let Some(first) = path.segments.first() else { return true };
    let name = first.ident.to_string();
    let mut chars = name.chars();
    let type_parameter = path.leading_colon.is_none()
        && path.segments.len() == 1
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_digit());
    name == "Self" || type_parameter
}

/// The error for a record type (at `path`) whose fields `step` needs, and that has no schema
/// macro: it is not a `#[derive(Record)]` struct.
pub fn not_a_record(path: &syn::Path, step: &str) -> Diagnostic {
    let name = path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    Diagnostic::spanned(
        path,
        format!("`{name}` must derive `Record`: `{step}` needs its fields at compile time"),
        format!(
            "add `#[derive(Record, Serialize, Deserialize)]` to `struct {name}` (a type alias has no fields to give: name the struct itself)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    #[test]
    fn blocks_split_from_the_pipeline_oldest_first() {
        let a = quote!(@etl_record { [("id", 0usize, "id", "i64", []), ("kind", 2usize, "type", "String", [default, alias = "k"])], ["cached"] });
        let b = quote!(@etl_record { [("n", 0usize, "N", "T", [serialize_with, deserialize_with])], [] });
        // Newest first on the wire: `b` was fetched after `a`.
        let (received, rest) = split(quote!(#b #a iter(v) as Order | stdout())).expect("reads");
        assert_eq!(rest.to_string(), quote!(iter(v) as Order | stdout()).to_string());
        assert_eq!(received[0].tokens.to_string(), a.to_string());
        let schemas: Vec<RecordSchema> = received.into_iter().map(|r| r.schema).collect();
        assert_eq!(schemas[0].skipped, ["cached"]);
        assert_eq!((schemas[0].fields[1].rust_name.as_str(), schemas[0].fields[1].serde_name.as_str()), ("kind", "type"));
        assert!(schemas[1].fields[0].options.serialize_with && schemas[1].fields[0].options.deserialize_with);
        assert_eq!(schemas[0].to_token_stream().to_string(), a.to_string());
    }

    /// The derive writes the schema with the same type the pipeline reads it with.
    #[test]
    fn the_derive_and_the_pipeline_agree_on_the_format() {
        let input: syn::DeriveInput = syn::parse2(quote! {
            struct S { id: i64, #[serde(skip)] c: u8, #[serde(rename = "type", alias = "t", default, with = "m")] kind: String }
        })
        .expect("parses");
        let Ok(def) = crate::record::parse(&input) else { panic!("a record") };
        let sent = crate::record::schema(&def);
        let (received, rest) = split(sent.to_token_stream()).expect("reads");
        assert!(rest.is_empty());
        assert_eq!(received[0].schema, sent);
        assert_eq!(sent.skipped, ["c"]);
        assert!(sent.fields[1].options.default && sent.fields[1].options.serialize_with && sent.fields[1].options.aliases == ["t"]);
    }

    #[test]
    fn a_garbled_schema_is_an_error_not_a_panic() {
        let Err(e) = split(quote!(@etl_record { "Order", [] } iter(v) | stdout())) else { panic!("garbled") };
        assert!(e.message.contains("cannot read"), "{e}");
    }

    #[test]
    fn callback_calls_the_types_macro_with_what_was_sent() {
        let path: syn::Path = syn::parse_quote!(shop::Page<i64>);
        let out = callback(&path, &[quote!(@etl_record { A }), quote!(@etl_record { B })], quote!(iter(v) | stdout()));
        let run = Ident::new("__etl_run", Span::mixed_site());
        assert_eq!(
            out.to_string(),
            quote!({
                #[allow(unused_imports)]
                use ::etl::__private::no_schema::*;
                {
                    #[allow(unused_imports)]
                    use shop::Page as __etl_schema_2;
                    let #run = __etl_schema_2! { ::etl::__private::pipeline_with_schema! { @etl_record { B } @etl_record { A } iter(v) | stdout() } };
                    #run
                }
            })
            .to_string()
        );
        // Past the fallbacks, by the type's own name; so is what looks like a type parameter.
        let sent = vec![quote!(@etl_record { A }); FALLBACKS];
        let out = callback(&path, &sent, quote!(iter(v) | stdout())).to_string();
        assert!(out.starts_with("shop :: Page ! { :: etl :: __private :: pipeline_with_schema !"), "{out}");
        for path in [syn::parse_quote!(T), syn::parse_quote!(U2), syn::parse_quote!(Self)] {
            let out = callback(&path, &[], quote!(iter(v) | stdout())).to_string();
            assert!(!out.contains("use"), "{out}");
        }
        for path in [syn::parse_quote!(Tx), syn::parse_quote!(m::T), syn::parse_quote!(Order)] {
            assert!(callback(&path, &[], quote!(iter(v) | stdout())).to_string().contains("use"), "{}", path.to_token_stream());
        }
    }

    #[test]
    fn a_type_without_schema_macro_must_derive_record() {
        let path: syn::Path = syn::parse_quote!(shop::Order);
        let d = not_a_record(&path, "rename");
        assert_eq!(d.message, "`Order` must derive `Record`: `rename` needs its fields at compile time");
        assert!(d.help.as_deref().is_some_and(|h| h.starts_with("add `#[derive(Record, Serialize, Deserialize)]` to `struct Order`")));
    }
}
