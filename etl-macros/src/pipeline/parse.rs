//! Tokens → AST: steps split on top-level `|`, each `NAME(args) [as Type]` or a user path.
//!
//! Nothing here knows the built-in steps: argument values are kept as tokens (with their
//! spans) and interpreted by the checker according to the step's table entry.

use crate::diagnostic::Diagnostics;
use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Token};

/// A parsed pipeline: one entry per step, `None` where the step did not parse (its error is
/// reported; the others are still checked).
pub struct Ast {
    /// The steps, in order.
    pub steps: Vec<Option<Step>>,
}

/// One step.
pub struct Step {
    /// Its name or path.
    pub head: Head,
    /// `as Type` after it.
    pub as_type: Option<AsType>,
}

/// What a step is called.
pub enum Head {
    /// A single identifier: a built-in step (or an unknown one), with its arguments.
    Name { ident: Ident, args: Vec<RawArg> },
    /// A path with `::`: a user expression, its parenthesised arguments kept as written.
    Path { path: syn::Path, call: Option<Group> },
    /// `broadcast { .. }` or `route { .. }`: the pipeline forks into branches.
    Fork(Fork),
}

/// `broadcast { branch, .. }` or `route { PRED => branch, .., _ => branch }`: each branch the
/// steps of a sub-pipeline ending in a sink, kept as tokens (each is expanded as a pipeline of
/// its own, starting at the fork's records).
#[derive(Clone)]
pub struct Fork {
    /// `broadcast` or `route`.
    pub kind: Ident,
    /// The branches, in order.
    pub arms: Vec<Arm>,
}

/// One branch of a fork.
#[derive(Clone)]
pub struct Arm {
    /// A route's predicate (a closure `|r| ..`); `None` for `_` and for broadcast's branches.
    pub predicate: Option<TokenStream>,
    /// The branch's steps: `op(..) | .. | sink(..)`.
    pub body: TokenStream,
}

/// The forks' names (`merge` is parsed as one too: a source of several).
pub const FORKS: [&str; 2] = ["broadcast", "route"];

/// `as Type`.
pub struct AsType {
    /// The `as` keyword, where errors about a misplaced `as` go.
    pub as_token: Token![as],
    /// The type.
    pub ty: syn::Type,
}

/// One argument of a built-in step: `name = value` or a positional value.
pub struct RawArg {
    /// The name, for `name = value`.
    pub name: Option<Ident>,
    /// The value's tokens.
    pub value: TokenStream,
    /// The value as an expression, when it is one (parsed once, here).
    pub expr: Option<syn::Expr>,
}

/// Parse the macro's input, collecting every error.
pub fn parse(input: TokenStream) -> (Ast, Diagnostics) {
    let mut errors = Diagnostics::default();
    let mut steps = Vec::new();
    let mut segment: Vec<TokenTree> = Vec::new();
    let mut bar: Option<Span> = None;
    let mut any = false;
    let mut segments: Vec<(Vec<TokenTree>, Option<Span>)> = Vec::new();
    for tt in input {
        any = true;
        match &tt {
            TokenTree::Punct(p) if p.as_char() == '|' => {
                segments.push((std::mem::take(&mut segment), bar));
                bar = Some(p.span());
            }
            _ => segment.push(tt),
        }
    }
    if !any {
        errors.error(
            Span::call_site(),
            "a pipeline needs a source and a sink",
            "write `pipeline! { SOURCE(..) | OPERATOR(..) | ... | SINK(..) }`, e.g. `pipeline! { iter(items) | stdout() }`",
        );
        return (Ast { steps }, errors);
    }
    segments.push((segment, bar));
    for (tokens, bar) in segments {
        if tokens.is_empty() {
            let span = bar.unwrap_or_else(Span::call_site);
            errors.error(span, "empty step", "write a step between each pair of `|`, and none before the first or after the last");
            steps.push(None);
            continue;
        }
        if let Some(parsed) = merge(&tokens, &mut errors).or_else(|| fork(&tokens, &mut errors)) {
            steps.push(parsed);
            continue;
        }
        match step.parse2(tokens.into_iter().collect()) {
            Ok(s) => steps.push(Some(s)),
            Err(e) => {
                errors.push(e.into());
                steps.push(None);
            }
        }
    }
    (Ast { steps }, errors)
}

/// `merge(source_a(..), source_b(..)) [as T]`: a source reading several, kept as a [`Fork`]
/// of kind `merge` whose arms are the sources (each expanded as a pipeline of its own).
fn merge(tokens: &[TokenTree], errors: &mut Diagnostics) -> Option<Option<Step>> {
    let [TokenTree::Ident(kind), TokenTree::Group(group), rest @ ..] = tokens else { return None };
    if kind.unraw() != "merge" || group.delimiter() != Delimiter::Parenthesis {
        return None;
    }
    let mut arms = Vec::new();
    let mut piece: Vec<TokenTree> = Vec::new();
    let mut ok = true;
    let mut at = group.span_open();
    let mut pieces = Vec::new();
    for tt in group.stream() {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                pieces.push((std::mem::take(&mut piece), at));
                at = p.span();
            }
            _ => piece.push(tt),
        }
    }
    if !piece.is_empty() {
        pieces.push((piece, at));
    }
    for (piece, span) in pieces {
        if piece.is_empty() {
            errors.error(
                span,
                "empty source in `merge`",
                "write the sources separated by `,`: `merge(file(path = \"a.jsonl\"), file(path = \"b.jsonl\")) as T`",
            );
            ok = false;
            continue;
        }
        arms.push(Arm { predicate: None, body: piece.into_iter().collect() });
    }
    if arms.len() < 2 && ok {
        errors.error(group.span(), "`merge` reads two sources or more", "write `merge(source_a(..), source_b(..)) as T`");
        ok = false;
    }
    let as_type = if rest.is_empty() {
        None
    } else {
        let parsed = (|input: ParseStream<'_>| -> syn::Result<AsType> {
            let as_type = AsType { as_token: input.parse()?, ty: input.parse()? };
            if !input.is_empty() {
                return Err(input.error("expected `|` before this step\nhelp: steps are joined by `|`"));
            }
            Ok(as_type)
        })
        .parse2(rest.iter().cloned().collect());
        match parsed {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(e.into());
                return Some(None);
            }
        }
    };
    Some(ok.then(|| Step { head: Head::Fork(Fork { kind: kind.clone(), arms }), as_type }))
}

/// `broadcast { .. }` / `route { .. }`: `Some` when the step is one (`None` inside when its
/// branches have errors, which are reported).
fn fork(tokens: &[TokenTree], errors: &mut Diagnostics) -> Option<Option<Step>> {
    let [TokenTree::Ident(kind), TokenTree::Group(group)] = tokens else { return None };
    let name = kind.unraw().to_string();
    if !FORKS.contains(&name.as_str()) || group.delimiter() != Delimiter::Brace {
        return None;
    }
    let route = name == "route";
    let mut arms = Vec::new();
    let mut ok = true;
    let mut pieces: Vec<(Vec<TokenTree>, Span)> = Vec::new();
    let mut piece: Vec<TokenTree> = Vec::new();
    let mut at = group.span_open();
    for tt in group.stream() {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                pieces.push((std::mem::take(&mut piece), at));
                at = p.span();
            }
            _ => piece.push(tt),
        }
    }
    if !piece.is_empty() {
        pieces.push((piece, at));
    }
    if pieces.is_empty() {
        let example =
            if route { "route { |r| PREDICATE => SINK(..), _ => SINK(..) }" } else { "broadcast { SINK(..), OPERATOR(..) | SINK(..) }" };
        errors.error(
            group.span(),
            format!("`{name}` has no branches"),
            format!("write its branches in the braces, separated by `,`: `{example}`"),
        );
        return Some(None);
    }
    for (tokens, span) in pieces {
        if tokens.is_empty() {
            errors.error(
                span,
                "empty branch",
                "each branch between `,` is a sub-pipeline ending in a sink: `map(f) | stdout()`, or just `stdout()`",
            );
            ok = false;
            continue;
        }
        if !route {
            arms.push(Arm { predicate: None, body: tokens.into_iter().collect() });
            continue;
        }
        // `PREDICATE => branch`: split at the first `=>` outside groups.
        let arrow = tokens.windows(2).position(|w| {
            matches!((&w[0], &w[1]), (TokenTree::Punct(a), TokenTree::Punct(b))
                if a.as_char() == '=' && a.spacing() == proc_macro2::Spacing::Joint && b.as_char() == '>')
        });
        let Some(arrow) = arrow else {
            errors.error(
                tokens[0].span(),
                "a `route` branch needs a predicate",
                "write `|r| CONDITION => SINK(..)`, or `_ => SINK(..)` for the records no branch before took",
            );
            ok = false;
            continue;
        };
        let (pred, body) = (&tokens[..arrow], &tokens[arrow + 2..]);
        if body.is_empty() {
            errors.error(tokens[arrow + 1].span(), "empty branch", "after `=>` write the branch: `map(f) | stdout()`, or just `stdout()`");
            ok = false;
            continue;
        }
        let predicate = match pred {
            [TokenTree::Ident(i)] if i == "_" => None,
            [] => {
                errors.error(tokens[arrow].span(), "a `route` branch needs a predicate", "write `|r| CONDITION => ..` or `_ => ..`");
                ok = false;
                continue;
            }
            _ => Some(pred.iter().cloned().collect()),
        };
        arms.push(Arm { predicate, body: body.iter().cloned().collect() });
    }
    if let Some(at) = arms.iter().position(|a| route && a.predicate.is_none()).filter(|at| at + 1 < arms.len()) {
        let arm = &arms[at + 1];
        let first = arm.predicate.clone().unwrap_or_else(|| arm.body.clone()).into_iter().next();
        let next = first.map_or_else(|| group.span(), |tt| tt.span());
        errors.error(
            next,
            "this `route` branch is after `_`, which takes every record left: it would get none",
            "move `_ => ..` to the end of the route",
        );
        ok = false;
    }
    Some(ok.then(|| Step { head: Head::Fork(Fork { kind: kind.clone(), arms }), as_type: None }))
}

fn step(input: ParseStream<'_>) -> syn::Result<Step> {
    if !(input.peek(Ident::peek_any) || input.peek(Token![::])) {
        return Err(input.error("expected a step: `name(args)` or a path `my_mod::my_step(args)`\nhelp: a pipeline is `SOURCE(..) | OPERATOR(..) | ... | SINK(..)`"));
    }
    let path: syn::Path = if input.peek(Token![::]) || input.peek2(Token![::]) { input.parse()? } else { Ident::parse_any(input)?.into() };
    let head = match path.get_ident() {
        // A bare name that is not a built-in step and has no arguments: a variable holding the
        // user's source, operator or sink (`| lake` where `let lake = etl::sink::file(..)`).
        Some(ident)
            if path.leading_colon.is_none()
                && !input.peek(syn::token::Paren)
                && crate::ops::lookup(&ident.unraw().to_string()).next().is_none() =>
        {
            Head::Path { path, call: None }
        }
        Some(ident) if path.leading_colon.is_none() => {
            let ident = ident.clone();
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("expected `(` after `{ident}`\nhelp: write the arguments in parentheses, even none: `{ident}()`"),
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            Head::Name { ident, args: args(&content)? }
        }
        _ => {
            let call = if input.peek(syn::token::Paren) {
                input.step(|cursor| match cursor.token_tree() {
                    Some((TokenTree::Group(g), rest)) if g.delimiter() == Delimiter::Parenthesis => Ok((Some(g), rest)),
                    _ => Err(cursor.error("expected `(`")),
                })?
            } else {
                None
            };
            Head::Path { path, call }
        }
    };
    let as_type = if input.peek(Token![as]) { Some(AsType { as_token: input.parse()?, ty: input.parse()? }) } else { None };
    if !input.is_empty() {
        return Err(input.error("expected `|` before this step\nhelp: steps are joined by `|`: `iter(items) | map(f) | stdout()`"));
    }
    Ok(Step { head, as_type })
}

fn args(input: ParseStream<'_>) -> syn::Result<Vec<RawArg>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let name = if input.peek(Ident::peek_any) && input.peek2(Token![=]) && !input.peek2(Token![==]) && !input.peek2(Token![=>]) {
            let name = Ident::parse_any(input)?;
            input.parse::<Token![=]>()?;
            Some(name)
        } else {
            None
        };
        let (value, expr) = value(input)?;
        if value.is_empty() {
            return Err(input.error("expected a value\nhelp: arguments are `value` or `name = value`, separated by `,`"));
        }
        out.push(RawArg { name, value, expr });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(out)
}

/// One argument value: a whole Rust expression when it is one (closures may contain commas),
/// with the expression; otherwise the tokens up to the next top-level `,` (`a -> b`, `type`).
/// The tokens are the user's as written (syn's expression makes one token of `-1`, spanned on
/// the `-` only).
fn value(input: ParseStream<'_>) -> syn::Result<(TokenStream, Option<syn::Expr>)> {
    let fork = input.fork();
    if let Ok(expr) = fork.parse::<syn::Expr>() {
        if fork.is_empty() || fork.peek(Token![,]) {
            let end = fork.cursor();
            let tokens = input.step(|cursor| {
                let mut rest = *cursor;
                let mut tokens = TokenStream::new();
                while rest != end {
                    let Some((tt, next)) = rest.token_tree() else { break };
                    tokens.extend([tt]);
                    rest = next;
                }
                Ok((tokens, rest))
            })?;
            return Ok((tokens, Some(expr)));
        }
    }
    let tokens = input.step(|cursor| {
        let mut rest = *cursor;
        let mut tokens = TokenStream::new();
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            tokens.extend([tt]);
            rest = next;
        }
        Ok((tokens, rest))
    })?;
    Ok((tokens, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn ok(tokens: TokenStream) -> Vec<Step> {
        let (ast, errors) = parse(tokens);
        assert!(errors.is_empty(), "{:?}", errors.texts());
        ast.steps.into_iter().map(|s| s.expect("parsed")).collect()
    }

    fn errs(tokens: TokenStream) -> Vec<String> {
        parse(tokens).1.texts()
    }

    #[test]
    fn steps_args_and_types() {
        let steps = ok(quote! {
            file(path = "in.jsonl", batch_timeout = 2s) as Order
            | filter(|o| o.a > 0 || o.b)
            | map(|a, b| a + b) as etl::Json
            | rename(a -> b, length.new -> length_new)
            | my::sink(1, 2)
        });
        assert_eq!(steps.len(), 5);
        let Head::Name { ident, args } = &steps[0].head else { panic!("a name") };
        assert_eq!(ident, "file");
        assert_eq!(args.len(), 2);
        assert_eq!(args[1].name.as_ref().map(|n| n.to_string()).as_deref(), Some("batch_timeout"));
        assert_eq!(args[1].value.to_string(), "2s");
        assert!(steps[0].as_type.is_some());
        let Head::Name { args, .. } = &steps[2].head else { panic!("a name") };
        assert_eq!(args.len(), 1, "the closure's comma is not an argument separator");
        let Head::Name { args, .. } = &steps[3].head else { panic!("a name") };
        assert_eq!(args.iter().map(|a| a.value.to_string()).collect::<Vec<_>>(), ["a -> b", "length . new -> length_new"]);
        let Head::Path { path, call } = &steps[4].head else { panic!("a path") };
        assert_eq!(path.segments.len(), 2);
        assert!(call.is_some());
    }

    #[test]
    fn a_bare_name_that_is_no_step_is_a_variable() {
        let steps = ok(quote! { source | map(f) | lake });
        assert!(matches!(&steps[0].head, Head::Path { call: None, .. }));
        assert!(matches!(&steps[2].head, Head::Path { call: None, .. }));
        assert!(errs(quote! { iter(v) | stdout })[0].starts_with("expected `(` after `stdout`"));
    }

    #[test]
    fn forks_keep_their_branches_as_tokens() {
        let steps = ok(quote! {
            iter(v)
            | broadcast { stdout(), map(|o| (o.a, o.b)) | file(dir = "x"), }
        });
        let Head::Fork(fork) = &steps[1].head else { panic!("a fork") };
        assert_eq!(fork.kind, "broadcast");
        let bodies: Vec<String> = fork.arms.iter().map(|a| a.body.to_string()).collect();
        assert_eq!(bodies, ["stdout ()", "map (| o | (o . a , o . b)) | file (dir = \"x\")"]);
        let steps = ok(quote! { iter(v) | route { |o| o.a > 1 || o.b => stdout(), _ => filter(f) | stdout() } });
        let Head::Fork(fork) = &steps[1].head else { panic!("a fork") };
        let arms: Vec<(Option<String>, String)> =
            fork.arms.iter().map(|a| (a.predicate.as_ref().map(|p| p.to_string()), a.body.to_string())).collect();
        assert_eq!(
            arms,
            [(Some("| o | o . a > 1 || o . b".to_owned()), "stdout ()".to_owned()), (None, "filter (f) | stdout ()".to_owned())]
        );
    }

    #[test]
    fn merge_keeps_its_sources_and_type() {
        let steps = ok(quote! { merge(file(path = "a", batch_size = 5), kafka(topics = ["t"])) as Order | stdout() });
        let Head::Fork(fork) = &steps[0].head else { panic!("a merge") };
        assert_eq!(fork.kind, "merge");
        let bodies: Vec<String> = fork.arms.iter().map(|a| a.body.to_string()).collect();
        assert_eq!(bodies, ["file (path = \"a\" , batch_size = 5)", "kafka (topics = [\"t\"])"]);
        assert!(steps[0].as_type.is_some());
        assert!(errs(quote! { merge(iter(v)) | stdout() })[0].starts_with("`merge` reads two sources or more"));
    }

    #[test]
    fn fork_errors() {
        assert!(errs(quote! { iter(v) | broadcast { stdout(), , stdout() } })[0].starts_with("empty branch"));
        assert!(errs(quote! { iter(v) | route {} })[0].starts_with("`route` has no branches"));
        assert!(errs(quote! { iter(v) | route { stdout() } })[0].starts_with("a `route` branch needs a predicate"));
        assert!(errs(quote! { iter(v) | route { |o| o.a => } })[0].starts_with("empty branch"));
        assert!(errs(quote! { iter(v) | route { _ => stdout(), |o| o.a => stdout() } })[0].starts_with("this `route` branch is after `_`"));
    }

    #[test]
    fn syntax_errors_all_at_once() {
        assert!(errs(quote! {})[0].starts_with("a pipeline needs a source and a sink"));
        let e = errs(quote! { iter(v) map(f) | | stdout });
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("expected `|` before this step"));
        assert!(e[1].starts_with("empty step"));
        assert!(e[2].starts_with("expected `(` after `stdout`"));
        assert!(e.iter().all(|e| e.contains("\nhelp: ")));
    }
}
