//! `file(dir = "..", format = "csv", prefix = "..", max_file_bytes = 64MB)`: a sink writing
//! files into a directory, optionally partitioned by the UTC date and hour of the write
//! (`dir = "lake/{date}/{hour}"`) and rolled by size.

use super::{ArgSpec, Build, Category, Kind, Op, Set, Typing, Value};
use crate::diagnostic::Diagnostic;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

/// The `file` sink.
pub const OP: Op = Op {
    name: "file",
    category: Category::Sink,
    positional: None,
    args: &[
        ArgSpec::required(
            "dir",
            Kind::Str,
            "The directory to write into (`${VAR}` resolved at start-up); `{date}` and `{hour}` in it partition by the UTC date and hour of the write (processing time).",
        ),
        ArgSpec::optional("format", Kind::Format, "\"jsonl\"", "`\"jsonl\"` or `\"csv\"`."),
        ArgSpec::optional("prefix", Kind::Str, "\"part\"", "The file name prefix."),
        ArgSpec::optional(
            "max_file_bytes",
            Kind::Expr,
            "none (a file per batch)",
            "Append batches to a file until it reaches this size, then start the next: `64MB`, `512KiB`, `1GB` (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024), a number of bytes, or a `u64` expression.",
        )
        .set(Set::Custom(max_file_bytes)),
        ArgSpec::optional(
            "sync",
            Kind::Bool,
            "true",
            "fsync each file (and the directory) before acknowledging; `false` leaves it to the OS (faster, not durable across a crash).",
        ),
    ],
    shared: &[],
    accepts_as: false,
    positions: super::PositionRole::None,
    feature: None,
    typing: Typing::Keep,
    build: Build::Connector { path: &["etl", "sink", "file"], record_type: false },
    doc: "Writes batches to files in a directory (temporary file, fsync, rename): a file per batch, or files rolled at `max_file_bytes`; `{date}` and `{hour}` in `dir` make hourly or daily partitions by processing time (UTC).",
    example: "... | file(dir = \"lake/orders/{date}/{hour}\", format = \"csv\", prefix = \"orders\", max_file_bytes = 64MB)",
};

/// The units of a size literal and their number of bytes (matched without regard to case).
const UNITS: &[(&str, u64)] =
    &[("", 1), ("b", 1), ("kb", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000), ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30)];

/// The suffixes of Rust's integer types: `1024u64` is a number of bytes.
const INTEGER_TYPES: &[&str] = &["u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize"];

const HELP: &str = "write a size as `64MB`, `512KiB`, `1GB` or a number of bytes";

/// The size a literal stands for, in bytes; `None` for any other expression (passed on as it
/// is, a `u64`).
fn size(expr: &syn::Expr) -> Option<Result<u64, Diagnostic>> {
    let syn::Expr::Lit(syn::ExprLit { lit, .. }) = expr else { return None };
    let span = lit.span();
    let too_big = || Diagnostic::new(span, "size too large", HELP);
    let unit = |suffix: &str| -> Result<u64, Diagnostic> {
        if INTEGER_TYPES.contains(&suffix) {
            return Ok(1);
        }
        UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(suffix))
            .map(|(_, n)| *n)
            .ok_or_else(|| Diagnostic::new(span, format!("unknown size unit `{suffix}`"), HELP))
    };
    Some(match lit {
        syn::Lit::Int(i) => unit(i.suffix()).and_then(|per| {
            let n: u64 = i.base10_parse().map_err(|_| too_big())?;
            n.checked_mul(per).ok_or_else(too_big)
        }),
        syn::Lit::Float(f) => unit(f.suffix()).and_then(|per| {
            let x: f64 = f.base10_parse().map_err(|_| too_big())?;
            let bytes = (x * per as f64).round();
            if bytes.is_finite() && (0.0..1.8e19).contains(&bytes) {
                Ok(bytes as u64)
            } else {
                Err(too_big())
            }
        }),
        _ => Err(Diagnostic::new(span, "`max_file_bytes` takes a size", HELP)),
    })
}

/// `builder.max_file_bytes(bytes)`: a size literal (`64MB`) becomes its number of bytes; a bad
/// unit is a compile error on the literal.
fn max_file_bytes(builder: TokenStream, value: &Value, span: Span) -> TokenStream {
    let method = proc_macro2::Ident::new("max_file_bytes", span);
    let Value::Expr(expr) = value else { return quote!(#builder.#method(#value)) };
    match size(expr) {
        None => quote!(#builder.#method(#expr)),
        Some(Ok(bytes)) => {
            let bytes = proc_macro2::Literal::u64_suffixed(bytes);
            quote_spanned!(span=> #builder.#method(#bytes))
        }
        Some(Err(d)) => {
            let error = d.to_compile_error();
            quote!({ #error; #builder })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(src: &str) -> Result<u64, String> {
        match size(&syn::parse_str(src).expect("an expression")) {
            Some(r) => r.map_err(|d| d.message),
            None => Err("not a literal".into()),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes("64MB"), Ok(64_000_000));
        assert_eq!(bytes("64mb"), Ok(64_000_000));
        assert_eq!(bytes("64MiB"), Ok(64 << 20));
        assert_eq!(bytes("512KiB"), Ok(512 << 10));
        assert_eq!(bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(bytes("2GiB"), Ok(2 << 30));
        assert_eq!(bytes("1.5GB"), Ok(1_500_000_000));
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("4096u64"), Ok(4096));
        assert_eq!(bytes("100B"), Ok(100));
        assert_eq!(bytes("64XB"), Err("unknown size unit `XB`".into()));
        assert_eq!(bytes("20000000000GB"), Err("size too large".into()));
        assert_eq!(bytes("\"64MB\""), Err("`max_file_bytes` takes a size".into()));
        assert_eq!(bytes("limit"), Err("not a literal".into()));
    }

    #[test]
    fn the_setter_passes_bytes_or_the_expression() {
        let gen = |src: &str| {
            let value = Value::Expr(syn::parse_str(src).expect("an expression"));
            max_file_bytes(quote!(sink), &value, Span::call_site()).to_string().replace(' ', "")
        };
        assert_eq!(gen("64MB"), "sink.max_file_bytes(64000000u64)");
        assert_eq!(gen("limit * 2"), "sink.max_file_bytes(limit*2)");
        assert!(gen("1XB").contains("compile_error"));
    }
}
