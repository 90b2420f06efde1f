//! Argument values: the tokens of one argument → a [`Value`] of the kind its table entry
//! declares, or a diagnostic on the user's tokens.

use crate::diagnostic::Diagnostic;
use crate::duration;
use crate::ops::{FieldRef, Kind, Value};
use crate::text::text;
use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Token};

fn wrong_kind(tokens: &TokenStream, what: &str, kind: Kind) -> Diagnostic {
    Diagnostic::spanned(tokens, format!("`{what}` takes {}", kind.describe()), format!("write `{what} = {}`", kind.example()))
}

/// The value as an expression: the one the parser read, or parsed from the tokens.
fn expr(tokens: &TokenStream, parsed: Option<&syn::Expr>) -> syn::Result<syn::Expr> {
    match parsed {
        Some(e) => Ok(e.clone()),
        None => syn::parse2(tokens.clone()),
    }
}

/// Convert one value (its tokens, and the expression they are when the parser read one) to
/// `kind`; `what` names the argument in messages.
pub fn convert(kind: Kind, what: &str, tokens: &TokenStream, parsed: Option<&syn::Expr>) -> Result<Value, Diagnostic> {
    match kind {
        Kind::Expr => expr(tokens, parsed).map(Value::Expr).map_err(Diagnostic::from),
        Kind::Type => syn::parse2(tokens.clone()).map(Value::Type).map_err(Diagnostic::from),
        Kind::Str => match expr(tokens, parsed) {
            Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })) => Ok(Value::Str(s)),
            // A literal of another kind is a mistake; any other expression is the user's value
            // (a variable, `&args.url`, `format!(..)`), type-checked by rustc.
            Ok(syn::Expr::Lit(_)) | Err(_) => Err(wrong_kind(tokens, what, kind)),
            Ok(expr) => Ok(Value::Expr(expr)),
        },
        Kind::Bool => match expr(tokens, parsed) {
            Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) => Ok(Value::Bool(b)),
            Ok(syn::Expr::Lit(_)) | Err(_) => Err(wrong_kind(tokens, what, kind)),
            Ok(expr) => Ok(Value::Expr(expr)),
        },
        Kind::Count => match convert(Kind::Int, what, tokens, parsed) {
            Ok(Value::Int(int)) if int.base10_digits().trim_start_matches('0').is_empty() => Err(Diagnostic::new(
                int.span(),
                format!("`{what}` must be at least 1"),
                format!("`{what} = 1` is the smallest; e.g. `{what} = {}`", kind.example()),
            )),
            Err(_) if negative(tokens, parsed) => Err(Diagnostic::spanned(
                tokens,
                format!("`{what}` must be at least 1, not `{}`", text(tokens)),
                format!("`{what} = 1` is the smallest; e.g. `{what} = {}`", kind.example()),
            )),
            Err(_) => Err(wrong_kind(tokens, what, kind)),
            other => other,
        },
        Kind::Int => {
            let int: syn::LitInt = match expr(tokens, parsed) {
                // Every count and size a step takes is unsigned.
                Ok(_) if negative(tokens, parsed) => {
                    return Err(Diagnostic::spanned(
                        tokens,
                        format!("`{what}` cannot be negative: `{}`", text(tokens)),
                        format!("write `{what} = {}`", kind.example()),
                    ))
                }
                Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(int), .. })) => int,
                Ok(syn::Expr::Lit(_)) | Err(_) => return Err(wrong_kind(tokens, what, kind)),
                Ok(expr) => return Ok(Value::Expr(expr)),
            };
            const SUFFIXES: &[&str] = &["", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"];
            if !SUFFIXES.contains(&int.suffix()) {
                return Err(Diagnostic::new(
                    int.span(),
                    format!("`{what}` takes an integer, not `{int}`"),
                    format!("write `{what} = {}`", kind.example()),
                ));
            }
            Ok(Value::Int(int))
        }
        Kind::Duration => match syn::parse2::<syn::Lit>(tokens.clone()) {
            Ok(_) if negative(tokens, parsed) => {
                Err(Diagnostic::spanned(tokens, format!("`{what}` cannot be negative: `{}`", text(tokens)), duration::HELP))
            }
            Ok(lit @ (syn::Lit::Int(_) | syn::Lit::Float(_))) => duration::parse(&lit).map(|d| Value::Duration(duration::tokens(&d))),
            _ => Err(Diagnostic::spanned(tokens, format!("`{what}` takes a duration"), duration::HELP)),
        },
        Kind::Format => {
            let lit: syn::LitStr = syn::parse2(tokens.clone()).map_err(|_| wrong_kind(tokens, what, kind))?;
            match lit.value().to_ascii_lowercase().as_str() {
                "jsonl" | "ndjson" | "json" => Ok(Value::Format(quote!(::etl::format::Format::Jsonl))),
                "csv" => Ok(Value::Format(quote!(::etl::format::Format::Csv))),
                other => Err(Diagnostic::new(lit.span(), format!("unknown format `{other}`"), "the formats are \"jsonl\" and \"csv\"")),
            }
        }
        Kind::DataFormat => {
            let lit: syn::LitStr = syn::parse2(tokens.clone()).map_err(|_| wrong_kind(tokens, what, kind))?;
            match lit.value().to_ascii_lowercase().as_str() {
                "json" => Ok(Value::Format(quote!(::etl::source::DataFormat::Json))),
                "text" => Ok(Value::Format(quote!(::etl::source::DataFormat::Text))),
                other => {
                    Err(Diagnostic::new(lit.span(), format!("unknown data format `{other}`"), "the data formats are \"json\" and \"text\""))
                }
            }
        }
        Kind::WatchFormat => {
            let lit: syn::LitStr = syn::parse2(tokens.clone()).map_err(|_| wrong_kind(tokens, what, kind))?;
            let format = match lit.value().to_ascii_lowercase().as_str() {
                "auto" => quote!(Auto),
                "json" => quote!(Json),
                "jsonl" | "ndjson" => quote!(Jsonl),
                "csv" => quote!(Csv),
                other => {
                    return Err(Diagnostic::new(
                        lit.span(),
                        format!("unknown file format `{other}`"),
                        "the file formats are \"auto\" (from each file's extension), \"json\", \"jsonl\" and \"csv\"",
                    ))
                }
            };
            Ok(Value::Format(quote!(::etl::source::file_watch::WatchFormat::#format)))
        }
        Kind::Fields | Kind::Renames => list(kind, &[tokens]),
        Kind::WriteMode => write_mode(what, tokens),
    }
}

/// Whether the value is a negative number literal (`-1`, `-0.5`; syn reads them as one
/// literal).
fn negative(tokens: &TokenStream, parsed: Option<&syn::Expr>) -> bool {
    match expr(tokens, parsed) {
        Ok(syn::Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. })) => {
            matches!(&*expr, syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(_) | syn::Lit::Float(_), .. }))
        }
        Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. })) => i.base10_digits().starts_with('-'),
        Ok(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. })) => f.base10_digits().starts_with('-'),
        _ => false,
    }
}

/// `insert`, or `upsert(key, ..)` with one or more key fields.
fn write_mode(what: &str, tokens: &TokenStream) -> Result<Value, Diagnostic> {
    let bad = || wrong_kind(tokens, what, Kind::WriteMode);
    let parsed = (|input: ParseStream<'_>| -> syn::Result<Option<Vec<FieldRef>>> {
        let word = Ident::parse_any(input)?;
        if word == "insert" {
            return Ok(None);
        }
        if word != "upsert" {
            return Err(syn::Error::new(word.span(), "not a write mode"));
        }
        let keys;
        syn::parenthesized!(keys in input);
        let keys = keys.parse_terminated(field_path, Token![,])?;
        Ok(Some(keys.into_iter().collect()))
    })
    .parse2(tokens.clone())
    .map_err(|_| bad())?;
    Ok(Value::Format(match parsed {
        None => quote!(::etl::sink::postgres::Mode::Insert),
        Some(keys) if keys.is_empty() => {
            return Err(Diagnostic::spanned(tokens, format!("`{what} = upsert(..)` needs at least one key column"), "write `upsert(id)`"))
        }
        Some(keys) => {
            let keys = keys.iter().map(|k| &k.path);
            quote!(::etl::sink::postgres::Mode::upsert(&[#(#keys),*]))
        }
    }))
}

/// A dotted field path: `a`, `a.b`, `type`, or a string literal for any other name.
fn field_path(input: ParseStream<'_>) -> syn::Result<FieldRef> {
    if input.peek(syn::LitStr) {
        let lit = input.parse::<syn::LitStr>()?;
        return Ok(FieldRef { path: lit.value(), span: lit.span(), simple: false });
    }
    let first = Ident::parse_any(input)?;
    let span = first.span();
    let mut path = first.unraw().to_string();
    let mut simple = true;
    while input.peek(Token![.]) {
        input.parse::<Token![.]>()?;
        path.push('.');
        path.push_str(&Ident::parse_any(input)?.unraw().to_string());
        simple = false;
    }
    Ok(FieldRef { path, span, simple })
}

/// A list of field names or renames (a variadic positional argument), each item tokens of its own.
pub fn list(kind: Kind, items: &[&TokenStream]) -> Result<Value, Diagnostic> {
    let mut fields = Vec::new();
    let mut renames = Vec::new();
    for tokens in items {
        let bad = || {
            let help = if kind == Kind::Renames {
                "write `old -> new`, e.g. `rename(ts -> timestamp, length.new -> length_new)`"
            } else {
                "write field names, e.g. `select(id, customer.name)`"
            };
            Diagnostic::spanned(tokens, format!("expected {}", kind.describe()), help)
        };
        let one = |input: ParseStream<'_>| -> syn::Result<(FieldRef, Option<FieldRef>)> {
            let from = field_path(input)?;
            let to = if kind == Kind::Renames {
                input.parse::<Token![->]>()?;
                Some(field_path(input)?)
            } else {
                None
            };
            Ok((from, to))
        };
        let (from, to) = one.parse2((*tokens).clone()).map_err(|_| bad())?;
        match to {
            Some(to) => renames.push((from, to)),
            None => fields.push(from),
        }
    }
    Ok(if kind == Kind::Renames { Value::Renames(renames) } else { Value::Fields(fields) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(tokens: TokenStream) -> Result<String, String> {
        match convert(Kind::WriteMode, "mode", &tokens, None) {
            Ok(value) => Ok(quote!(#value).to_string().replace(' ', "")),
            Err(d) => Err(d.message.clone()),
        }
    }

    #[test]
    fn negative_numbers_are_reported_whole() {
        let tokens = quote!(-1);
        let Err(e) = convert(Kind::Int, "batch_size", &tokens, None) else { panic!("negative") };
        assert_eq!(e.text(), "`batch_size` cannot be negative: `-1`\nhelp: write `batch_size = 500`");
        assert!(e.end.is_some(), "from `-` to `1`");
        let Err(e) = convert(Kind::Count, "concurrency", &tokens, None) else { panic!("negative") };
        assert_eq!(e.message, "`concurrency` must be at least 1, not `-1`");
        assert!(e.end.is_some());
        assert!(convert(Kind::Int, "batch_size", &quote!(-n), None).is_ok(), "an expression is rustc's to check");
    }

    #[test]
    fn write_modes() {
        assert_eq!(mode(quote!(insert)).unwrap(), "::etl::sink::postgres::Mode::Insert");
        assert_eq!(mode(quote!(upsert(id))).unwrap(), "::etl::sink::postgres::Mode::upsert(&[\"id\"])");
        assert_eq!(mode(quote!(upsert(id, region))).unwrap(), "::etl::sink::postgres::Mode::upsert(&[\"id\",\"region\"])");
        assert!(mode(quote!(upsert())).unwrap_err().contains("at least one key"));
        assert!(mode(quote!(replace)).unwrap_err().contains("takes a write mode"));
        assert!(mode(quote!("insert")).unwrap_err().contains("takes a write mode"));
    }
}
