//! Compile errors of the three macros: one [`Diagnostic`] type, collected in [`Diagnostics`]
//! so that one expansion reports every mistake at once, each on the user's token, each with a
//! `help:` line (the pattern of hydro's `dfir_lang/src/diagnostic.rs`).
//!
//! A diagnostic becomes a `::core::compile_error! { "message\nhelp: help" }` spanned on the
//! user's token (from the first to the last token when it covers several), exactly what
//! `syn::Error::to_compile_error` emits: rustc renders the message, then the `help:` line
//! indented under it.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;

/// One compile error: where, what, and what to do about it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The user's token it points at (the first one, when it covers several).
    pub span: Span,
    /// The last token it covers, when it covers several (`a -> b`, a whole type).
    pub end: Option<Span>,
    /// What is wrong, in one line.
    pub message: String,
    /// What to write instead; rendered as a `help:` line. `None` only for errors of syn's
    /// parser (converted with [`From<syn::Error>`]), which carry no help.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error on `span` with a `help:` line.
    pub fn new(span: Span, message: impl std::fmt::Display, help: impl std::fmt::Display) -> Diagnostic {
        Diagnostic { span, end: None, message: message.to_string(), help: Some(help.to_string()) }
    }

    /// An error covering `tokens` (from their first token to their last), with a `help:` line.
    /// Empty tokens point at the macro's call site.
    pub fn spanned(tokens: &impl ToTokens, message: impl std::fmt::Display, help: impl std::fmt::Display) -> Diagnostic {
        let (span, end) = first_last(tokens.to_token_stream());
        Diagnostic { end: Some(end), ..Diagnostic::new(span, message, help) }
    }

    /// The text rustc shows: the message, then the `help:` line.
    pub fn text(&self) -> String {
        match &self.help {
            Some(help) => format!("{}\nhelp: {help}", self.message),
            None => self.message.clone(),
        }
    }

    /// The `compile_error!` that reports it.
    pub fn to_compile_error(&self) -> TokenStream {
        let error = match self.end {
            // `syn::Error::new_spanned` keeps both ends: two placeholder tokens carry them.
            Some(end) => {
                let ends: TokenStream =
                    [Ident::new("start", self.span), Ident::new("end", end)].into_iter().map(TokenTree::Ident).collect();
                syn::Error::new_spanned(ends, self.text())
            }
            None => syn::Error::new(self.span, self.text()),
        };
        error.to_compile_error()
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// The first and last span of `tokens` (the call site when there are none).
fn first_last(tokens: TokenStream) -> (Span, Span) {
    let mut iter = tokens.into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// The span of the first token of `tokens` (the call site when there is none).
pub fn first_span(tokens: &impl ToTokens) -> Span {
    first_last(tokens.to_token_stream()).0
}

/// A syn error with one message (a parse error) as a diagnostic: its `help:` line, when the
/// message has one (the parsers of `pipeline!` write `"...\nhelp: ..."`), becomes `help`.
/// Of an error that combines several, the first message.
impl From<syn::Error> for Diagnostic {
    fn from(error: syn::Error) -> Diagnostic {
        // The spans `syn::Error` keeps (start and end) are only readable from the tokens it
        // emits: `:: core :: compile_error ! { "..." }`, start on the first, end on the braces.
        let tokens: Vec<TokenTree> = error.to_compile_error().into_iter().collect();
        let span = tokens.first().map_or_else(|| error.span(), TokenTree::span);
        let end = tokens.last().map(TokenTree::span);
        let text = error.into_iter().next().map(|e| e.to_string()).unwrap_or_default();
        let (message, help) = match text.split_once("\nhelp: ") {
            Some((message, help)) => (message.to_owned(), Some(help.to_owned())),
            None => (text, None),
        };
        Diagnostic { span, end, message, help }
    }
}

/// A syn error as diagnostics: one per message it holds, each with its own spans.
impl From<syn::Error> for Diagnostics {
    fn from(error: syn::Error) -> Diagnostics {
        Diagnostics(error.into_iter().map(Diagnostic::from).collect())
    }
}

/// Every diagnostic of one expansion, in the order they were found.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Add an error on `span` with a `help:` line.
    pub fn error(&mut self, span: Span, message: impl std::fmt::Display, help: impl std::fmt::Display) {
        self.push(Diagnostic::new(span, message, help));
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics, in order (tests).
    #[cfg(test)]
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// One `compile_error!` per diagnostic.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.0.iter().map(Diagnostic::to_compile_error).collect()
    }

    /// Each diagnostic's text (tests).
    #[cfg(test)]
    pub fn texts(&self) -> Vec<String> {
        self.0.iter().map(Diagnostic::text).collect()
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<I: IntoIterator<Item = Diagnostic>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Diagnostics {
        Diagnostics(iter.into_iter().collect())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn renders_like_syn_with_a_help_line() {
        let d = Diagnostic::new(Span::call_site(), "unknown step `fliter`", "did you mean `filter`?");
        assert_eq!(d.text(), "unknown step `fliter`\nhelp: did you mean `filter`?");
        let want = syn::Error::new(Span::call_site(), d.text()).to_compile_error().to_string();
        assert_eq!(d.to_compile_error().to_string(), want);
        let tokens = quote!(a -> b);
        let d = Diagnostic::spanned(&tokens, "m", "h");
        assert_eq!(d.to_compile_error().to_string(), syn::Error::new_spanned(&tokens, "m\nhelp: h").to_compile_error().to_string());
    }

    #[test]
    fn syn_errors_keep_each_message() {
        let mut e = syn::Error::new(Span::call_site(), "first");
        e.combine(syn::Error::new(Span::call_site(), "second"));
        let all = Diagnostics::from(e);
        assert_eq!(all.texts(), ["first", "second"]);
        assert_eq!(all.to_compile_errors().to_string().matches("compile_error").count(), 2);
        let parsed = Diagnostic::from(syn::Error::new(Span::call_site(), "expected `(`\nhelp: write `f()`"));
        assert_eq!((parsed.message.as_str(), parsed.help.as_deref()), ("expected `(`", Some("write `f()`")));
        let original = syn::Error::new_spanned(quote!(a b c), "m");
        assert_eq!(Diagnostic::from(original.clone()).to_compile_error().to_string(), original.to_compile_error().to_string());
    }
}
