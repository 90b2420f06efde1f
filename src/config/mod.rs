//! Configuration values: `${VAR}` / `${VAR:-default}` interpolation, resolved once at start-up,
//! and [`Secret`] strings that never print.
//!
//! This is the only interpolation engine of etl: every connector option goes through
//! [`interpolate`].

mod secret;

pub use secret::Secret;

/// A configuration value that cannot be resolved.
///
/// ```
/// let e = etl::ConfigError::UnsetVariable { name: "DB_PASS".into() };
/// assert!(e.to_string().contains("${DB_PASS}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `${NAME}` names an unset variable and gives no default.
    #[error("environment variable `{name}` is not set (referenced as `${{{name}}}`); set it or write `${{{name}:-default}}`")]
    UnsetVariable {
        /// The variable.
        name: String,
    },
    /// A `${` without its closing `}`.
    #[error("unterminated `${{` at byte {at} of a configuration value; write `$${{` for a literal `${{`")]
    Unterminated {
        /// Byte offset of the `${`.
        at: usize,
    },
    /// `${}` or a name with characters other than letters, digits and `_`.
    #[error("invalid variable name `{name}` in `${{...}}`: use letters, digits and `_`")]
    InvalidName {
        /// The name as written.
        name: String,
    },
    /// An option has a value it cannot take.
    #[error("option `{option}`: {message}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `url` with its password replaced by `***`: in the URL form
/// (`postgres://user:secret@host/db`, `?password=secret`) and the key=value form
/// (`password=secret`, `password='a secret'`).
///
/// ```
/// assert_eq!(etl::config::redact("postgres://me:s3cret@db/x"), "postgres://me:***@db/x");
/// assert_eq!(etl::config::redact("host=db password='a b' user=me"), "host=db password=*** user=me");
/// ```
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    // `password=...` as a query parameter or a key=value pair.
    let mut searched = 0;
    while let Some(found) = out[searched..].find("password") {
        let key_end = searched + found + "password".len();
        let after = out[key_end..].trim_start();
        let Some(value) = after.strip_prefix('=') else {
            searched = key_end;
            continue;
        };
        let value = value.trim_start();
        let start = out.len() - value.len();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(out.len(), |i| start + 1 + i + 1)
        } else {
            value.find([' ', '&', '\t', '\n']).map_or(out.len(), |i| start + i)
        };
        out.replace_range(start..end, "***");
        searched = start + 3;
    }
    out
}

/// `text` as logs show it: `${VAR}`s resolved (the template as written when one cannot be),
/// passwords redacted ([`redact`]).
///
/// ```
/// std::env::set_var("ETL_DOC_DB", "postgres://me:pw@db/x");
/// assert_eq!(etl::config::display("${ETL_DOC_DB}"), "postgres://me:***@db/x");
/// assert_eq!(etl::config::display("${ETL_DOC_UNSET_FOR_SURE}"), "${ETL_DOC_UNSET_FOR_SURE}");
/// ```
pub fn display(text: &str) -> String {
    redact(&interpolate(text).unwrap_or_else(|_| text.to_owned()))
}

/// Resolve `${VAR}` and `${VAR:-default}` in `text` from the process environment.
///
/// `$${` writes a literal `${`. An unset variable without a default is an error naming it;
/// a variable set to the empty string is used as is by `${VAR}`, and replaced by the default
/// in `${VAR:-default}` (the shell's rule).
///
/// ```
/// std::env::set_var("ETL_DOC_HOST", "db.local");
/// assert_eq!(etl::config::interpolate("postgres://${ETL_DOC_HOST}:${ETL_DOC_PORT:-5432}/x").unwrap(),
///            "postgres://db.local:5432/x");
/// assert!(etl::config::interpolate("${ETL_DOC_SURELY_UNSET}").is_err());
/// ```
pub fn interpolate(text: &str) -> Result<String, ConfigError> {
    interpolate_with(text, |name| std::env::var(name).ok())
}

/// [`interpolate`] with a custom lookup (tests, or variables from a file).
///
/// ```
/// let v = etl::config::interpolate_with("${A}-${B:-b}", |n| (n == "A").then(|| "a".to_string())).unwrap();
/// assert_eq!(v, "a-b");
/// ```
pub fn interpolate_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let at = text.len() - rest.len() + i;
        let end = body_and_tail.find('}').ok_or(ConfigError::Unterminated { at })?;
        let body = &body_and_tail[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::InvalidName { name: name.to_owned() });
        }
        let value = match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => return Err(ConfigError::UnsetVariable { name: name.to_owned() }),
        };
        out.push_str(&value);
        rest = &body_and_tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("h".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("${HOST}".into()),
            _ => None,
        }
    }

    #[test]
    fn resolves_and_defaults() {
        assert_eq!(interpolate_with("a ${HOST} b", env).unwrap(), "a h b");
        assert_eq!(interpolate_with("${MISSING:-x:y}", env).unwrap(), "x:y");
        assert_eq!(interpolate_with("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(interpolate_with("[${EMPTY}]", env).unwrap(), "[]");
        assert_eq!(interpolate_with("${MISSING:-}", env).unwrap(), "");
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        let e = interpolate_with("pass=${DB_PASS}", env).unwrap_err();
        assert_eq!(e, ConfigError::UnsetVariable { name: "DB_PASS".into() });
    }

    #[test]
    fn values_are_not_expanded_twice() {
        assert_eq!(interpolate_with("${DOLLAR}", env).unwrap(), "${HOST}");
    }

    #[test]
    fn escapes_and_plain_dollars() {
        assert_eq!(interpolate_with("$${HOST} costs $5 $", env).unwrap(), "${HOST} costs $5 $");
        assert_eq!(interpolate_with("a ${HOST", env), Err(ConfigError::Unterminated { at: 2 }));
        assert!(matches!(interpolate_with("${}", env), Err(ConfigError::InvalidName { .. })));
        assert!(matches!(interpolate_with("${A B}", env), Err(ConfigError::InvalidName { .. })));
    }

    /// One piece of a generated configuration value.
    #[derive(Debug, Clone)]
    enum Piece {
        /// Text without `$`.
        Text(String),
        /// `${NAME}`.
        Var(String),
        /// `${NAME:-default}`.
        VarOr(String, String),
        /// `$${`: a literal `${`.
        Escape,
        /// `$` followed by a character that is neither `{` nor `$`.
        Dollar(char),
        /// `${NAME}` with a name that is not letters, digits and `_` (possibly empty).
        BadName(String),
    }

    fn name() -> impl Strategy<Value = String> {
        // Mostly the names the generated environment may hold, sometimes any valid name.
        prop_oneof![3 => prop::sample::select(vec!["A", "B", "EMPTY", "HOST_1", "x"]).prop_map(str::to_owned), 1 => "[A-Za-z0-9_]{1,8}"]
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            4 => "[^$]{0,8}".prop_map(Piece::Text),
            3 => name().prop_map(Piece::Var),
            // A default may hold anything but `}`: `$`, `:-`, `{`, spaces.
            3 => (name(), "[^}]{0,8}").prop_map(|(n, d)| Piece::VarOr(n, d)),
            1 => Just(Piece::Escape),
            1 => "[^{$]".prop_map(|c| Piece::Dollar(c.chars().next().unwrap())),
            1 => prop_oneof![Just(String::new()), "[A-Za-z0-9_]{0,3}[ .:/-][A-Za-z0-9_]{0,3}"].prop_map(Piece::BadName),
        ]
    }

    /// A generated environment: some of the names, with values that may look like syntax
    /// (they are never expanded again).
    fn environment() -> impl Strategy<Value = std::collections::HashMap<String, String>> {
        let value = prop_oneof![Just(String::new()), "[a-z]{1,4}", Just("${A}".to_owned()), "[^}]{0,6}"];
        prop::collection::hash_map(prop::sample::select(vec!["A", "B", "EMPTY", "HOST_1", "x"]).prop_map(str::to_owned), value, 0..5)
    }

    /// The rules, written out: the text `pieces` make, and what resolving it must give.
    fn model(pieces: &[Piece], env: &std::collections::HashMap<String, String>) -> (String, Result<String, ConfigError>) {
        let mut text = String::new();
        let mut out = String::new();
        let mut error = None;
        for piece in pieces {
            let resolved = match piece {
                Piece::Text(t) => {
                    text.push_str(t);
                    Ok(t.clone())
                }
                Piece::Var(n) => {
                    text.push_str(&format!("${{{n}}}"));
                    // Set (even to the empty string): its value; unset: an error naming it.
                    env.get(n).cloned().ok_or(ConfigError::UnsetVariable { name: n.clone() })
                }
                Piece::VarOr(n, d) => {
                    text.push_str(&format!("${{{n}:-{d}}}"));
                    // Set and not empty: its value; otherwise the default, verbatim.
                    Ok(env.get(n).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| d.clone()))
                }
                Piece::Escape => {
                    text.push_str("$${");
                    Ok("${".to_owned())
                }
                Piece::Dollar(c) => {
                    text.push('$');
                    text.push(*c);
                    Ok(format!("${c}"))
                }
                Piece::BadName(n) => {
                    text.push_str(&format!("${{{n}}}"));
                    Err(ConfigError::InvalidName { name: n.clone() })
                }
            };
            match resolved {
                Ok(r) => out.push_str(&r),
                // The first error, left to right, is the one reported.
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        (text, error.map_or(Ok(out), Err))
    }

    proptest! {
        /// Text without `$` passes through unchanged.
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(interpolate_with(&s, env).unwrap(), s);
        }

        /// Any text either resolves or fails with an error; never panics.
        #[test]
        fn never_panics(s in ".*") {
            let _ = interpolate_with(&s, env);
        }

        /// Values made of `${VAR}`, `${VAR:-default}`, `$${`, plain `$` and text, against an
        /// environment where variables are set, set to the empty string or unset, resolve as
        /// the rules (written out in [`model`]) say, or fail with the first error they say.
        #[test]
        fn variables_and_defaults_resolve_by_the_rules(pieces in prop::collection::vec(piece(), 0..8), env in environment()) {
            let (text, want) = model(&pieces, &env);
            prop_assert_eq!(interpolate_with(&text, |n| env.get(n).cloned()), want, "{:?}", text);
        }

        /// A `${` left open at the end fails, naming its byte offset.
        #[test]
        fn an_unterminated_reference_names_its_offset(pieces in prop::collection::vec(piece(), 0..6), env in environment(), tail in "[A-Za-z0-9_:-]{0,6}") {
            let (text, want) = model(&pieces, &env);
            let at = text.len();
            let text = format!("{text}${{{tail}");
            let want = want.and(Err(ConfigError::Unterminated { at }));
            prop_assert_eq!(interpolate_with(&text, |n| env.get(n).cloned()), want, "{:?}", text);
        }
    }

    /// The strategy does produce what the property is about: set, empty and unset variables,
    /// with and without defaults, escapes and bad names.
    #[test]
    fn the_generated_values_hold_every_kind_of_reference() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut set, mut empty, mut unset, mut defaults, mut escapes, mut bad) = (0, 0, 0, 0, 0, 0);
        for _ in 0..256 {
            let pieces = prop::collection::vec(piece(), 0..8).new_tree(&mut runner).unwrap().current();
            let env = environment().new_tree(&mut runner).unwrap().current();
            for p in &pieces {
                match p {
                    Piece::Var(n) | Piece::VarOr(n, _) => match env.get(n) {
                        Some(v) if v.is_empty() => empty += 1,
                        Some(_) => set += 1,
                        None => unset += 1,
                    },
                    Piece::Escape => escapes += 1,
                    Piece::BadName(_) => bad += 1,
                    _ => {}
                }
                defaults += usize::from(matches!(p, Piece::VarOr(..)));
            }
        }
        for (what, n) in [("set", set), ("empty", empty), ("unset", unset), ("default", defaults), ("escape", escapes), ("bad name", bad)] {
            assert!(n >= 20, "only {n} `{what}` references in 256 values");
        }
    }
}
