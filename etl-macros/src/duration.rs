//! Duration literals: `2s`, `500ms`, `1.5s`, `1m`, `1h`; a bare number means seconds.
//!
//! syn lexes `2s` as an integer literal with suffix `s` and `1.5s` as a float literal with
//! suffix `s`; both become `::core::time::Duration` constants.

use crate::diagnostic::Diagnostic;
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// The units and their length in milliseconds.
const UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// The `help:` text listing the units.
pub const HELP: &str = "write a duration as `500ms`, `2s`, `1.5s`, `1m` or `1h` (a bare number means seconds)";

/// A duration in whole milliseconds, or in (fractional) seconds.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// From an integer literal.
    Millis(u64),
    /// From a float literal.
    Secs(f64),
}

fn unit(suffix: &str) -> Option<u64> {
    if suffix.is_empty() {
        return Some(1_000);
    }
    UNITS.iter().find(|(u, _)| *u == suffix).map(|(_, ms)| *ms)
}

/// Parse a duration literal.
pub fn parse(lit: &syn::Lit) -> Result<Parsed, Diagnostic> {
    let bad_unit = |suffix: &str| Diagnostic::new(lit.span(), format!("unknown duration unit `{suffix}`"), HELP);
    let too_long = || Diagnostic::new(lit.span(), "duration too long", HELP);
    let digits = match lit {
        syn::Lit::Int(i) => i.base10_digits(),
        syn::Lit::Float(f) => f.base10_digits(),
        _ => "",
    };
    if digits.starts_with('-') {
        // The callers report it on all its tokens first; syn spans the literal on its `-`.
        return Err(Diagnostic::new(lit.span(), "a duration cannot be negative", HELP));
    }
    match lit {
        syn::Lit::Int(i) => {
            let per = unit(i.suffix()).ok_or_else(|| bad_unit(i.suffix()))?;
            let n: u64 = i.base10_parse().map_err(|_| too_long())?;
            n.checked_mul(per).map(Parsed::Millis).ok_or_else(too_long)
        }
        syn::Lit::Float(f) => {
            let per = unit(f.suffix()).ok_or_else(|| bad_unit(f.suffix()))?;
            let x: f64 = f.base10_parse().map_err(|_| too_long())?;
            let secs = x * per as f64 / 1000.0;
            if secs.is_finite() && secs < 1e15 {
                Ok(Parsed::Secs(secs))
            } else {
                Err(too_long())
            }
        }
        _ => Err(Diagnostic::new(lit.span(), "expected a duration", HELP)),
    }
}

/// The `::core::time::Duration` constant for a parsed duration.
pub fn tokens(d: &Parsed) -> TokenStream {
    match d {
        Parsed::Millis(ms) => {
            let ms = Literal::u64_unsuffixed(*ms);
            quote!(::core::time::Duration::from_millis(#ms))
        }
        Parsed::Secs(s) => {
            let s = Literal::f64_unsuffixed(*s);
            quote!(::core::time::Duration::from_secs_f64(#s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Parsed, Diagnostic> {
        parse(&syn::parse_str::<syn::Lit>(src).expect("a literal"))
    }

    #[test]
    fn units() {
        assert_eq!(p("2s").ok(), Some(Parsed::Millis(2_000)));
        assert_eq!(p("500ms").ok(), Some(Parsed::Millis(500)));
        assert_eq!(p("1m").ok(), Some(Parsed::Millis(60_000)));
        assert_eq!(p("1h").ok(), Some(Parsed::Millis(3_600_000)));
        assert_eq!(p("3").ok(), Some(Parsed::Millis(3_000)));
        assert_eq!(p("1.5s").ok(), Some(Parsed::Secs(1.5)));
        assert_eq!(p("0.5m").ok(), Some(Parsed::Secs(30.0)));
        assert_eq!(p("2.5").ok(), Some(Parsed::Secs(2.5)));
        assert_eq!(p("250.0ms").ok(), Some(Parsed::Secs(0.25)));
    }

    #[test]
    fn errors() {
        let e = p("2x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("unknown duration unit `x`") && e.contains("help:"), "{e}");
        assert!(p("\"2s\"").is_err());
        assert!(p("18446744073709551615h").is_err());
    }

    #[test]
    fn generated_constants() {
        assert_eq!(tokens(&Parsed::Millis(1500)).to_string(), ":: core :: time :: Duration :: from_millis (1500)");
        assert_eq!(tokens(&Parsed::Secs(1.5)).to_string(), ":: core :: time :: Duration :: from_secs_f64 (1.5)");
    }
}
