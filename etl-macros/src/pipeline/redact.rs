//! Secrets out of the argument values that a pipeline's graph shows.
//!
//! * The value of a secret argument (declared so in the step's table entry, `sasl_password`,
//!   or named like one: [`sensitive`]): every literal in it is `"***"`, but for the `${VAR}`
//!   templates in its strings, which name a variable and are shown as written (a template's
//!   default, `${VAR:-x}`, is hidden: `${VAR:-***}`). A variable or an expression is shown: its
//!   name is not the secret.
//! * In any other string: the password of a URL (`postgres://etl:***@db/orders`), and the value
//!   of a `password=..`-like key in a connection string or a query (`sslpassword=***`).
//! * A pair whose first element is a string naming a secret (`("sasl.password", "x")`,
//!   `("Authorization", "Bearer x")` in `properties` or `headers`): its other element as a
//!   secret argument's value.

use proc_macro2::{Delimiter, Group, Literal, TokenStream, TokenTree};

/// Words that make a name (an argument's, a property's, a header's, a query key's) a secret's.
const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key_id",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "authorization",
    "cookie",
];

/// Whether `name` names a secret: `sasl_password`, `sasl.password`, `X-Api-Key`, `aws_secret_access_key`.
pub fn sensitive(name: &str) -> bool {
    let name: String = name.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    SENSITIVE.iter().any(|w| name.contains(w))
}

/// `tokens` with their secrets replaced (see the module's documentation); `secret` when the
/// whole value is one.
pub fn redact(tokens: TokenStream, secret: bool) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    for tt in trees {
        out.push(match tt {
            TokenTree::Literal(lit) => TokenTree::Literal(literal(lit, secret)),
            TokenTree::Group(g) => {
                let inner = match g.delimiter() {
                    Delimiter::Parenthesis => pair(g.stream(), secret),
                    _ => redact(g.stream(), secret),
                };
                let mut new = Group::new(g.delimiter(), inner);
                new.set_span(g.span());
                TokenTree::Group(new)
            }
            other => other,
        });
    }
    out.into_iter().collect()
}

/// The inside of parentheses: a `("secret name", value)` pair hides its value.
fn pair(tokens: TokenStream, secret: bool) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    if let [TokenTree::Literal(key), TokenTree::Punct(comma), rest @ ..] = trees.as_slice() {
        if comma.as_char() == ',' && string_value(key).is_some_and(|k| sensitive(&k)) {
            let mut out: TokenStream = [trees[0].clone(), trees[1].clone()].into_iter().collect();
            out.extend(redact(rest.iter().cloned().collect(), true));
            return out;
        }
    }
    redact(tokens, secret)
}

/// A literal with its secrets hidden: a new string literal when something was.
fn literal(lit: Literal, secret: bool) -> Literal {
    let hidden = match string_value(&lit) {
        Some(value) if secret => hide_all(&value),
        Some(value) => hide_inline(&value),
        None if secret => "***".to_owned(),
        None => return lit,
    };
    match string_value(&lit) {
        Some(value) if value == hidden => lit,
        _ => {
            let mut new = Literal::string(&hidden);
            new.set_span(lit.span());
            new
        }
    }
}

/// The value of a string literal (`"a"`, `r#"a"#`); `None` for other literals.
fn string_value(lit: &Literal) -> Option<String> {
    syn::parse_str::<syn::LitStr>(&lit.to_string()).ok().map(|s| s.value())
}

/// A secret's text: `***` for each run of text, `${VAR}` templates kept (their defaults hidden).
pub fn hide_all(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while !rest.is_empty() {
        match rest.find("${") {
            Some(0) => {
                let Some(end) = rest.find('}') else {
                    out.push_str("***");
                    break;
                };
                let template = &rest[..=end];
                match template.find(":-") {
                    Some(at) => {
                        out.push_str(&template[..at + 2]);
                        out.push_str("***}");
                    }
                    None => out.push_str(template),
                }
                rest = &rest[end + 1..];
            }
            Some(at) => {
                out.push_str("***");
                rest = &rest[at..];
            }
            None => {
                out.push_str("***");
                break;
            }
        }
    }
    out
}

/// A string that is not a secret as a whole: a URL's password and `password=..` values hidden.
pub fn hide_inline(value: &str) -> String {
    hide_key_values(&hide_url_password(value))
}

/// `scheme://user:PASSWORD@host` → `scheme://user:***@host` (every URL in the text).
fn hide_url_password(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or space; its userinfo at its last `@`.
        let authority_end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@').and_then(|userinfo_end| authority[..userinfo_end].find(':').map(|colon| (colon, userinfo_end))) {
            Some((colon, userinfo_end)) => {
                let password = &authority[colon + 1..userinfo_end];
                out.push_str(&authority[..=colon]);
                out.push_str(&hide_all(password));
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// `password=VALUE` (also `sslpassword=`, `api_key=`, ...; in a connection string or a URL's
/// query) → `password=***`.
fn hide_key_values(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))).map_or(0, |i| i + 1);
        out.push_str(&rest[..=eq]);
        let tail = &rest[eq + 1..];
        if sensitive(&rest[key_start..eq]) {
            let end = tail.find(|c: char| matches!(c, '&' | ';') || c.is_whitespace()).unwrap_or(tail.len());
            out.push_str(&hide_all(&tail[..end]));
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::text;
    use quote::quote;

    #[test]
    fn names_of_secrets() {
        for name in ["sasl_password", "sasl.password", "X-Api-Key", "aws_secret_access_key", "access_key_id", "Authorization", "token"] {
            assert!(sensitive(name), "{name}");
        }
        for name in ["key", "topic", "brokers", "url", "sasl_username", "keys", "monkey"] {
            assert!(!sensitive(name), "{name}");
        }
    }

    #[test]
    fn a_secrets_text_keeps_its_templates() {
        assert_eq!(hide_all("hunter2"), "***");
        assert_eq!(hide_all("${KAFKA_PASSWORD}"), "${KAFKA_PASSWORD}");
        assert_eq!(hide_all("${PW:-hunter2}"), "${PW:-***}");
        assert_eq!(hide_all("Bearer ${TOKEN}"), "***${TOKEN}");
        assert_eq!(hide_all("${A}:${B}x"), "${A}***${B}***");
        assert_eq!(hide_all(""), "");
        assert_eq!(hide_all("${BROKEN"), "***");
    }

    #[test]
    fn url_passwords_and_password_keys() {
        assert_eq!(hide_inline("postgres://etl:s3cret@db:5432/orders"), "postgres://etl:***@db:5432/orders");
        assert_eq!(hide_inline("postgres://etl:${PG_PASSWORD}@db/orders"), "postgres://etl:${PG_PASSWORD}@db/orders");
        assert_eq!(hide_inline("postgres://etl@db/orders?sslmode=require"), "postgres://etl@db/orders?sslmode=require");
        assert_eq!(hide_inline("amqp://u:p@a/v, amqp://v:q@b"), "amqp://u:***@a/v, amqp://v:***@b");
        assert_eq!(hide_inline("https://example.com/a?x=1&api_key=abc&y=2"), "https://example.com/a?x=1&api_key=***&y=2");
        assert_eq!(hide_inline("host=db user=etl password=pw sslmode=require"), "host=db user=etl password=*** sslmode=require");
        assert_eq!(hide_inline("${DATABASE_URL}"), "${DATABASE_URL}");
        assert_eq!(hide_inline("a -> b = c"), "a -> b = c");
    }

    #[test]
    fn values_redacted_as_tokens() {
        let show = |tokens: TokenStream, secret: bool| text(&redact(tokens, secret));
        assert_eq!(show(quote!("hunter2"), true), "\"***\"");
        assert_eq!(show(quote!("${KAFKA_PASSWORD}"), true), "\"${KAFKA_PASSWORD}\"");
        assert_eq!(show(quote!(args.password), true), "args.password");
        assert_eq!(show(quote!("postgres://etl:pw@db/x"), false), "\"postgres://etl:***@db/x\"");
        assert_eq!(
            show(quote!([("bootstrap.servers", "k:9092"), ("sasl.password", "pw")]), false),
            "[(\"bootstrap.servers\", \"k:9092\"), (\"sasl.password\", \"***\")]"
        );
        assert_eq!(show(quote!([("Authorization", format!("Bearer {}", t))]), false), "[(\"Authorization\", format!(\"***\", t))]");
        assert_eq!(show(quote!(|o| o.status != "test"), false), "|o| o.status != \"test\"");
    }
}
