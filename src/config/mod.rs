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
    }
}
