//! A type as text, spaced as people write it, for `Schema::fields[..].ty`.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;

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
