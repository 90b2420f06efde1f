//! `Secret`: a string that never appears in logs or `Debug` output.

/// A secret configuration value (password, token). `Debug` and `Display` print `***`;
/// [`Secret::expose`] gives the value to the code that must use it.
///
/// ```
/// let s = etl::config::Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Resolve `${VAR}` references in `template` (see [`super::interpolate`]) into a secret.
    ///
    /// ```
    /// std::env::set_var("ETL_DOC_TOKEN", "t0k");
    /// assert_eq!(etl::config::Secret::resolve("Bearer ${ETL_DOC_TOKEN}").unwrap().expose(), "Bearer t0k");
    /// ```
    pub fn resolve(template: &str) -> Result<Secret, super::ConfigError> {
        super::interpolate(template).map(Secret)
    }

    /// The value, for the code that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}
