//! Pure helpers of the file sink: its directory template, with the `{date}` and `{hour}`
//! placeholders of time-partitioned directories (the UTC date and hour of the write, as in
//! the `s3` sink's key template). Parsing (an unknown placeholder is an error naming it),
//! rendering for an instant, and matching existing directories against it (to find what a
//! crash left). No I/O: the clock is passed in.

use crate::config::ConfigError;
use crate::sink::utc;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The placeholders a directory may use.
pub(super) const PLACEHOLDERS: &[&str] = &["date", "hour"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// UTC `YYYY-MM-DD`: ten characters, digits and `-`.
    Date,
    /// UTC `HH`: two digits.
    Hour,
}

/// A directory such as `lake/{date}/{hour}`: the components before the first placeholder are
/// the root, where the partitions live; the others make a partition's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DirTemplate {
    /// The directory as configured (after `${VAR}` resolution), for logs.
    text: String,
    /// The components before the first one with a placeholder (the whole directory when there
    /// is none).
    root: PathBuf,
    /// From the first component with a placeholder on, one list of parts per component;
    /// empty when the directory has no placeholder.
    pattern: Vec<Vec<Part>>,
}

impl DirTemplate {
    /// Parse `dir`: a path whose components may hold `{date}` and `{hour}`; `{{` and `}}` are
    /// literal braces.
    pub(super) fn parse(dir: &str) -> Result<DirTemplate, ConfigError> {
        let mut root = PathBuf::new();
        let mut pattern: Vec<Vec<Part>> = Vec::new();
        if dir.starts_with('/') {
            root.push("/");
        }
        for component in dir.split('/').filter(|c| !c.is_empty()) {
            let parts = parse_component(component, dir)?;
            let literal = match parts.as_slice() {
                [] => Some(String::new()),
                [Part::Literal(text)] => Some(text.clone()),
                _ => None,
            };
            match literal {
                Some(text) if pattern.is_empty() => root.push(text),
                _ => pattern.push(parts),
            }
        }
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        if pattern.is_empty() {
            // No placeholder: the directory as written (its braces unescaped).
            root = PathBuf::from(parse_component(dir, dir)?.into_iter().map(literal_text).collect::<String>());
            if root.as_os_str().is_empty() {
                return Err(invalid("the directory is empty".into()));
            }
        }
        Ok(DirTemplate { text: dir.to_owned(), root, pattern })
    }

    /// The directory as configured.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Where the partitions live: the directory itself when it has no placeholder.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the directory has placeholders.
    pub(super) fn is_partitioned(&self) -> bool {
        !self.pattern.is_empty()
    }

    /// How many components below the root make a partition.
    pub(super) fn depth(&self) -> usize {
        self.pattern.len()
    }

    /// The directory of a write at `now`.
    pub(super) fn render(&self, now: SystemTime) -> PathBuf {
        let mut dir = self.root.clone();
        for component in &self.pattern {
            let text: String = component
                .iter()
                .map(|part| match part {
                    Part::Literal(s) => s.clone(),
                    Part::Date => utc::date(now),
                    Part::Hour => utc::hour(now),
                })
                .collect();
            dir.push(text);
        }
        dir
    }

    /// Whether `name` can be the component number `level` (from 0, below the root) of a
    /// partition: its literals as written, `{date}` ten digits and dashes, `{hour}` two digits.
    pub(super) fn matches(&self, level: usize, name: &str) -> bool {
        let Some(parts) = self.pattern.get(level) else { return false };
        let mut rest = name;
        for part in parts {
            let (width, ok): (usize, fn(u8) -> bool) = match part {
                Part::Literal(s) => match rest.strip_prefix(s.as_str()) {
                    Some(after) => {
                        rest = after;
                        continue;
                    }
                    None => return false,
                },
                Part::Date => (10, |b| b.is_ascii_digit() || b == b'-'),
                Part::Hour => (2, |b| b.is_ascii_digit()),
            };
            match rest.as_bytes().get(..width) {
                Some(head) if head.iter().all(|b| ok(*b)) => rest = &rest[width..],
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

fn literal_text(part: Part) -> String {
    match part {
        Part::Literal(s) => s,
        Part::Date => "{date}".into(),
        Part::Hour => "{hour}".into(),
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid { option: "dir", message }
}

/// The parts of one component (or of the whole directory, for the unescaped static path).
fn parse_component(component: &str, dir: &str) -> Result<Vec<Part>, ConfigError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = component.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(invalid(format!(
                        "unterminated `{{` in the file sink's directory `{dir}` (write `{{{{` for a literal brace)"
                    )));
                }
                let part = match name.as_str() {
                    "date" => Part::Date,
                    "hour" => Part::Hour,
                    other => {
                        let known = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ");
                        return Err(invalid(format!(
                            "unknown placeholder `{{{other}}}` in the file sink's directory `{dir}`; known: {known} (the UTC date and hour of the write)"
                        )));
                    }
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
            }
            '}' => return Err(invalid(format!("unmatched `}}` in the file sink's directory `{dir}` (write `}}}}` for a literal brace)"))),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2024-02-29 13:45:00 UTC.
    fn t() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_709_214_300)
    }

    #[test]
    fn a_directory_without_placeholders_is_its_own_root() {
        let d = DirTemplate::parse("lake/orders").unwrap();
        assert!(!d.is_partitioned());
        assert_eq!((d.root(), d.render(t())), (Path::new("lake/orders"), PathBuf::from("lake/orders")));
        assert_eq!(DirTemplate::parse("/data/lake/").unwrap().render(t()), PathBuf::from("/data/lake/"));
        assert_eq!(DirTemplate::parse("odd{{name}}").unwrap().root(), Path::new("odd{name}"));
        assert!(DirTemplate::parse("").is_err());
    }

    #[test]
    fn placeholders_render_the_utc_date_and_hour_below_the_root() {
        let d = DirTemplate::parse("lake/orders/{date}/{hour}").unwrap();
        assert!(d.is_partitioned());
        assert_eq!((d.root(), d.depth()), (Path::new("lake/orders"), 2));
        assert_eq!(d.render(t()), PathBuf::from("lake/orders/2024-02-29/13"));
        let d = DirTemplate::parse("/abs/dt={date}/h={hour}/x").unwrap();
        assert_eq!((d.root(), d.depth()), (Path::new("/abs"), 3));
        assert_eq!(d.render(t()), PathBuf::from("/abs/dt=2024-02-29/h=13/x"));
        let d = DirTemplate::parse("{date}").unwrap();
        assert_eq!((d.root(), d.render(t())), (Path::new("."), PathBuf::from("./2024-02-29")));
    }

    #[test]
    fn matching_takes_exactly_what_rendering_makes() {
        let d = DirTemplate::parse("lake/dt={date}/h{hour}/x").unwrap();
        assert!(d.matches(0, "dt=2024-02-29"));
        assert!(d.matches(1, "h13"));
        assert!(d.matches(2, "x"));
        assert!(!d.matches(0, "dt=2024-02-2"));
        assert!(!d.matches(0, "dt=2024-02-290"));
        assert!(!d.matches(0, "2024-02-29"));
        assert!(!d.matches(1, "h1"));
        assert!(!d.matches(1, "hab"));
        assert!(!d.matches(2, "y"));
        assert!(!d.matches(3, "x"));
        let rendered = d.render(t());
        let below: Vec<&str> = rendered.strip_prefix(d.root()).unwrap().iter().map(|c| c.to_str().unwrap()).collect();
        assert!(below.iter().enumerate().all(|(level, name)| d.matches(level, name)), "{below:?}");
    }

    #[test]
    fn unknown_placeholders_and_stray_braces_are_errors_naming_them() {
        let e = DirTemplate::parse("lake/{day}").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder `{day}`") && e.contains("{date}, {hour}"), "{e}");
        assert!(DirTemplate::parse("lake/{date").unwrap_err().to_string().contains("unterminated"));
        assert!(DirTemplate::parse("lake/x}").unwrap_err().to_string().contains("unmatched"));
    }
}
