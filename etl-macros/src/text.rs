//! Tokens as text, spaced as people write them: `|o| o.status != "test"`, `a -> b`,
//! `["orders"]`, `o.items.iter().map(|i| i.price).sum::<i64>()`. For what the macros show of
//! the user's code: the arguments in a pipeline's graph, values quoted in messages.
//!
//! `TokenStream`'s own `to_string` spaces every token (`| o | o . status`); the source text
//! itself is not available on stable Rust for a run of tokens. This is a normalisation: the
//! same tokens always give the same text, whatever the spacing they were written with.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// `tokens` as one line of text, spaced as people write Rust.
pub fn text(tokens: &TokenStream) -> String {
    let mut w = Writer { out: String::new(), prev: Prev::Start, last_word: String::new(), closure_params: false, generics: 0 };
    w.stream(tokens.clone());
    w.out
}

/// What the previous token was, as far as the space before the next one is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Nothing yet (start of the text or of a group).
    Start,
    /// An identifier, a literal, a closed group, `?`: an operand.
    Word,
    /// A spaced operator, `,`, `;`, `:`, the end of a closure's parameters: a space follows.
    Op,
    /// A token the next one sticks to: `.`, `::`, a unary operator, `'`, `#`, an opening `|`.
    Glue,
}

struct Writer {
    out: String,
    prev: Prev,
    /// The previous token when it was an identifier (`move`, a type name before `<`).
    last_word: String,
    /// Between the `|`s of a closure's parameters.
    closure_params: bool,
    /// Open `<` of generic arguments.
    generics: usize,
}

/// Operators of two or three characters, longest first: a run of joint punctuation is split
/// into these (`::<` is `::` then `<`).
const OPERATORS: &[&str] = &[
    "..=", "...", "<<=", ">>=", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=", "&=", "|=", "<<",
    ">>", "..",
];

impl Writer {
    fn stream(&mut self, tokens: TokenStream) {
        let mut puncts = String::new();
        for tt in tokens {
            match tt {
                TokenTree::Punct(p) => {
                    puncts.push(p.as_char());
                    if p.spacing() == Spacing::Alone || p.as_char() == '\'' {
                        self.puncts(&std::mem::take(&mut puncts));
                    }
                }
                other => {
                    // A joint punct before a non-punct token (a lifetime's `'`, handled above).
                    self.puncts(&std::mem::take(&mut puncts));
                    match other {
                        TokenTree::Group(g) => self.group(g.delimiter(), g.stream()),
                        TokenTree::Ident(i) => self.word(&i.to_string()),
                        TokenTree::Literal(l) => self.word(&l.to_string()),
                        TokenTree::Punct(_) => {}
                    }
                }
            }
        }
        self.puncts(&puncts);
    }

    fn space_unless(&mut self, none: &[Prev]) {
        if !none.contains(&self.prev) {
            self.out.push(' ');
        }
    }

    fn word(&mut self, w: &str) {
        self.space_unless(&[Prev::Start, Prev::Glue]);
        self.out.push_str(w);
        self.prev = Prev::Word;
        self.last_word = w.to_owned();
    }

    fn group(&mut self, delimiter: Delimiter, inner: TokenStream) {
        let (open, close) = match delimiter {
            Delimiter::Parenthesis => ("(", ")"),
            Delimiter::Bracket => ("[", "]"),
            Delimiter::Brace => ("{", "}"),
            // A fragment substituted by a macro: spaced as if it were not grouped.
            Delimiter::None => return self.stream(inner),
        };
        let after_keyword = self.prev == Prev::Word && is_keyword(&self.last_word);
        if delimiter == Delimiter::Brace || after_keyword {
            self.space_unless(&[Prev::Start, Prev::Glue]);
        } else {
            // A call, an index, a macro's arguments; a tuple or an array after an operator.
            self.space_unless(&[Prev::Start, Prev::Glue, Prev::Word]);
        }
        // `#[attr]` before an expression: what follows starts an operand.
        let attribute = delimiter == Delimiter::Bracket && (self.out.ends_with('#') || self.out.ends_with("#!"));
        let saved = (self.closure_params, self.generics);
        (self.closure_params, self.generics) = (false, 0);
        self.out.push_str(open);
        let start = self.out.len();
        self.prev = Prev::Start;
        self.stream(inner);
        if delimiter == Delimiter::Brace && self.out.len() > start {
            self.out.insert(start, ' ');
            self.out.push(' ');
        }
        self.out.push_str(close);
        (self.closure_params, self.generics) = saved;
        self.last_word.clear();
        self.prev = if attribute { Prev::Op } else { Prev::Word };
    }

    fn puncts(&mut self, run: &str) {
        let mut rest = run;
        while !rest.is_empty() {
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .copied()
                .unwrap_or(&rest[..rest.chars().next().map_or(1, char::len_utf8)]);
            self.op(op);
            rest = &rest[op.len()..];
        }
    }

    /// Whether an operator here starts an operand (unary `-x`, `&x`, a closure `|x|`).
    fn operand_position(&self) -> bool {
        match self.prev {
            Prev::Start | Prev::Op | Prev::Glue => true,
            Prev::Word => is_keyword(&self.last_word),
        }
    }

    fn op(&mut self, op: &str) {
        let operand = self.operand_position();
        self.last_word.clear();
        match op {
            "." | "?" => {
                self.out.push_str(op);
                self.prev = if op == "?" { Prev::Word } else { Prev::Glue };
            }
            "::" | ".." | "..=" => {
                self.space_unless(&[Prev::Start, Prev::Glue, Prev::Word]);
                self.out.push_str(op);
                self.prev = Prev::Glue;
            }
            "," | ";" | ":" => {
                self.out.push_str(op);
                self.prev = Prev::Op;
            }
            "|" if self.closure_params => {
                self.out.push('|');
                self.closure_params = false;
                self.prev = Prev::Op;
            }
            "|" if operand => {
                self.space_unless(&[Prev::Start, Prev::Glue]);
                self.out.push('|');
                self.closure_params = true;
                self.prev = Prev::Glue;
            }
            "||" if operand => {
                self.space_unless(&[Prev::Start, Prev::Glue]);
                self.out.push_str("||");
                self.prev = Prev::Op;
            }
            "<" if self.out.ends_with("::") || (self.prev == Prev::Word && starts_upper(&self.out)) => {
                self.out.push('<');
                self.generics += 1;
                self.prev = Prev::Glue;
            }
            ">" | ">>" if self.generics > 0 => {
                for _ in 0..op.len().min(self.generics) {
                    self.out.push('>');
                    self.generics -= 1;
                }
                self.prev = Prev::Word;
            }
            "!" if self.prev == Prev::Word => {
                // A macro's `!`: `println!(..)`.
                self.out.push('!');
                self.prev = Prev::Glue;
            }
            "-" | "*" | "&" | "&&" | "!" if operand => {
                self.space_unless(&[Prev::Start, Prev::Glue]);
                self.out.push_str(op);
                self.prev = Prev::Glue;
            }
            "'" | "#" | "$" => {
                self.space_unless(&[Prev::Start, Prev::Glue]);
                self.out.push_str(op);
                self.prev = Prev::Glue;
            }
            _ => {
                self.space_unless(&[Prev::Start]);
                self.out.push_str(op);
                self.prev = Prev::Op;
            }
        }
    }
}

/// Whether the identifier just written (at the end of `out`) starts with a capital letter:
/// a type name, before generic arguments (`Vec<i64>`; `a < b` is a comparison).
fn starts_upper(out: &str) -> bool {
    let word: String = out.chars().rev().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    word.chars().last().is_some_and(char::is_uppercase)
}

/// Keywords after which an operator starts an operand (`move |x|`, `return -1`, `in &v`).
fn is_keyword(word: &str) -> bool {
    matches!(word, "move" | "async" | "return" | "in" | "if" | "while" | "match" | "else" | "break" | "yield" | "let" | "mut" | "static")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn spaced_as_people_write_rust() {
        let cases: Vec<(TokenStream, &str)> = vec![
            (quote!(|o| o.status != "test"), "|o| o.status != \"test\""),
            (quote!(amount_cents -> amount), "amount_cents -> amount"),
            (quote!(length.new -> length_new), "length.new -> length_new"),
            (quote!(["orders", "payments"]), "[\"orders\", \"payments\"]"),
            (quote!(o.items.iter().map(|i| i.price).sum::<i64>()), "o.items.iter().map(|i| i.price).sum::<i64>()"),
            (
                quote!(|mut o| {
                    o.amount += 1;
                    o
                }),
                "|mut o| { o.amount += 1; o }",
            ),
            (quote!(move |o: &Order| -o.amount > 0 && !o.test), "move |o: &Order| -o.amount > 0 && !o.test"),
            (quote!(|| Vec::<Vec<i64>>::new()), "|| Vec::<Vec<i64>>::new()"),
            (quote!(|(a, b)| a * b), "|(a, b)| a * b"),
            (quote!(upsert(id, region)), "upsert(id, region)"),
            (quote!(2s), "2s"),
            (quote!(-1), "-1"),
            (quote!(&args.url), "&args.url"),
            (quote!(format!("{}-{}", a, b)), "format!(\"{}-{}\", a, b)"),
            (quote!(Paid { id: o.id, amount: o.amount }), "Paid { id: o.id, amount: o.amount }"),
            (quote!(|r| async move { Ok::<_, E>(r) }), "|r| async move { Ok::<_, E>(r) }"),
            (quote!(x as i64 > 5), "x as i64 > 5"),
            (quote!(0..=9), "0..=9"),
            (quote!(&'static str), "&'static str"),
            (quote!(a || b), "a || b"),
            (quote!(v[0]?), "v[0]?"),
            (quote!(::etl::Json), "::etl::Json"),
            (quote!(Option<HashMap<String, i64>>), "Option<HashMap<String, i64>>"),
            (quote!(if a { 1 } else { 2 }), "if a { 1 } else { 2 }"),
            (quote!(|_| true), "|_| true"),
            (quote! { match x { A => 1, _ => 2 } }, "match x { A => 1, _ => 2 }"),
            (quote!(vec![1, 2]), "vec![1, 2]"),
            (quote!(o.a.b()?.c), "o.a.b()?.c"),
            (quote!(Some(1..)), "Some(1..)"),
            (quote!(|o| -> i64 { o * 2 }), "|o| -> i64 { o * 2 }"),
            (quote!(|&(a, b)| a == b), "|&(a, b)| a == b"),
            (
                quote!(
                    #[inline]
                    |x| x
                ),
                "#[inline] |x| x",
            ),
        ];
        for (tokens, want) in cases {
            assert_eq!(text(&tokens), want, "{tokens}");
        }
    }

    #[test]
    fn the_same_tokens_give_the_same_text_whatever_their_spacing() {
        let a: TokenStream = "|o|o.a+1".parse().expect("tokens");
        let b: TokenStream = "| o |   o . a + 1".parse().expect("tokens");
        assert_eq!(text(&a), "|o| o.a + 1");
        assert_eq!(text(&a), text(&b));
    }
}
