//! The object key template of the S3 sink: parsing (unknown placeholders are an error naming
//! them) and rendering. Pure: the clock and the batch's position are passed in.

use crate::config::ConfigError;
use crate::record::Position;
use crate::sink::utc;
use std::time::SystemTime;

/// The placeholders a key template may use.
pub(crate) const PLACEHOLDERS: &[&str] = &["seq", "run", "first_position", "date", "hour", "ext"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The batch number of this sink, zero-padded to 6 digits.
    Seq,
    /// Unique per sink instance: start time in milliseconds and process id.
    Run,
    /// The first record's position, made safe for a key.
    FirstPosition,
    /// UTC `YYYY-MM-DD`.
    Date,
    /// UTC `HH`.
    Hour,
    /// `csv` or `jsonl`.
    Ext,
}

/// A parsed key template such as `{date}/batch-{run}-{seq}.{ext}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyTemplate {
    parts: Vec<Part>,
}

/// What a key is made of for one batch.
#[derive(Debug, Clone)]
pub(crate) struct KeyValues<'a> {
    pub seq: u64,
    pub run: &'a str,
    pub first_position: &'a Position,
    pub now: SystemTime,
    pub ext: &'a str,
}

impl KeyTemplate {
    /// Parse `template`: text with `{placeholder}`s; `{{` and `}}` are literal braces.
    pub(crate) fn parse(template: &str) -> Result<KeyTemplate, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { option: "key", message };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &template[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(invalid(format!(
                            "unterminated `{{` at byte {at} of key template `{template}` (write `{{{{` for a literal brace)"
                        )));
                    };
                    let name = &rest[..end];
                    let part = match name {
                        "seq" => Part::Seq,
                        "run" => Part::Run,
                        "first_position" => Part::FirstPosition,
                        "date" => Part::Date,
                        "hour" => Part::Hour,
                        "ext" => Part::Ext,
                        other => {
                            let known = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ");
                            return Err(invalid(format!("unknown placeholder `{{{other}}}` in key template `{template}`; known: {known}")));
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(invalid(format!(
                        "unmatched `}}` at byte {at} of key template `{template}` (write `}}}}` for a literal brace)"
                    )))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err(invalid("the key template is empty".into()));
        }
        Ok(KeyTemplate { parts })
    }

    /// The key of one batch.
    pub(crate) fn render(&self, v: &KeyValues<'_>) -> String {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => key.push_str(s),
                Part::Seq => key.push_str(&format!("{:06}", v.seq)),
                Part::Run => key.push_str(v.run),
                Part::FirstPosition => key.push_str(&position_for_key(v.first_position)),
                Part::Date => key.push_str(&utc::date(v.now)),
                Part::Hour => key.push_str(&utc::hour(v.now)),
                Part::Ext => key.push_str(v.ext),
            }
        }
        key
    }
}

/// A position as a key segment: numbers as they are, ids with every character other than
/// ASCII letters, digits, `-`, `_` and `.` replaced by `_` (no `/` that would make a prefix).
pub(crate) fn position_for_key(position: &Position) -> String {
    match position {
        Position::None => "none".into(),
        Position::Index(i) => i.to_string(),
        Position::Line(l) => l.to_string(),
        Position::Offset { partition, offset } => format!("{partition}-{offset}"),
        Position::Sequence(s) => s.to_string(),
        Position::Id(id) if id.is_empty() => "none".into(),
        Position::Id(id) => id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect(),
        // Position is non-exhaustive for other crates only; a new variant gets its display.
        #[allow(unreachable_patterns)]
        other => other.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn values(position: &Position) -> KeyValues<'_> {
        // 2024-02-29 13:45:00 UTC
        KeyValues {
            seq: 7,
            run: "1709214300000-42",
            first_position: position,
            now: UNIX_EPOCH + Duration::from_secs(1_709_214_300),
            ext: "csv",
        }
    }

    #[test]
    fn placeholders_render() {
        let id = Position::Id("a1b2/c3+d4==".into());
        let t = KeyTemplate::parse("{date}/{hour}/batch-{run}-{seq}-{first_position}.{ext}").unwrap();
        assert_eq!(t.render(&values(&id)), "2024-02-29/13/batch-1709214300000-42-000007-a1b2_c3_d4__.csv");
        let t = KeyTemplate::parse("lines/{first_position}").unwrap();
        assert_eq!(t.render(&values(&Position::Line(1201))), "lines/1201");
        assert_eq!(t.render(&values(&Position::Offset { partition: 3, offset: 99 })), "lines/3-99");
        assert_eq!(t.render(&values(&Position::None)), "lines/none");
    }

    #[test]
    fn literal_braces_and_errors() {
        let t = KeyTemplate::parse("a{{b}}/{seq}").unwrap();
        assert_eq!(t.render(&values(&Position::None)), "a{b}/000007");
        let e = KeyTemplate::parse("{date}/{batch}.csv").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder `{batch}`") && e.contains("{first_position}"), "{e}");
        assert!(KeyTemplate::parse("x/{seq").unwrap_err().to_string().contains("unterminated"));
        assert!(KeyTemplate::parse("x}").unwrap_err().to_string().contains("unmatched"));
        assert!(KeyTemplate::parse("").is_err());
    }
}
