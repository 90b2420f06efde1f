//! Pure helpers of the NATS sink: a record's subject (a template with `{field}` placeholders,
//! or a function), its JSON payload, and its `Nats-Msg-Id` (from the record's source position
//! or a key field). No I/O.

use crate::record::{Meta, Position};
use serde::Serialize;
use std::marker::PhantomData;

/// How the sink picks a record's subject. Implemented by [`SubjectTemplate`] and
/// [`FnSubject`]; [`nats()`](super::nats) takes either through [`IntoSubject`].
///
/// ```
/// use etl::sink::nats::{SubjectOf, SubjectTemplate};
/// let t = SubjectTemplate::parse("orders.{region}").unwrap();
/// assert_eq!(t.subject(&serde_json::json!({"region": "eu"}), None).unwrap(), "orders.eu");
/// ```
pub trait SubjectOf<T>: Send + Sync {
    /// The subject of `record` (`value` is the record as JSON when the sink has it already),
    /// or why it has none (the record is dead-lettered).
    fn subject(&self, record: &T, value: Option<&serde_json::Value>) -> Result<String, String>;

    /// The one subject of every record, when it does not depend on the record (checked at
    /// open: a stream must capture it).
    fn fixed(&self) -> Option<&str> {
        None
    }

    /// Whether [`subject`](SubjectOf::subject) reads the record's fields (the sink then
    /// converts each record to JSON once).
    fn reads_fields(&self) -> bool {
        false
    }

    /// The subject as the user wrote it, if it is a text (for descriptions).
    fn written(&self) -> Option<&str> {
        None
    }

    /// Called once when the sink opens (a subject text is resolved and parsed then).
    fn prepare(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// A subject with `{field}` placeholders replaced by the record's field values (a string's
/// text, another value's JSON): `orders.{region}`. `{{` and `}}` write braces. Without
/// placeholders every record goes to the same subject.
///
/// ```
/// use etl::sink::nats::SubjectTemplate;
/// assert!(SubjectTemplate::parse("orders.{region").is_err());
/// assert_eq!(SubjectTemplate::parse("orders").unwrap().fields(), Vec::<&str>::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    parts: Vec<Part>,
    text: String,
}

impl SubjectTemplate {
    /// Parse `text` (already `${VAR}`-resolved).
    pub fn parse(text: &str) -> Result<SubjectTemplate, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
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
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("subject `{text}`: `{{{name}` is not closed with `}}`")),
                        }
                    }
                    if name.trim().is_empty() {
                        return Err(format!("subject `{text}`: an empty `{{}}` placeholder"));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(name.trim().to_owned()));
                }
                '}' => return Err(format!("subject `{text}`: a `}}` without its `{{` (write `}}}}` for a brace)")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        let template = SubjectTemplate { parts, text: text.to_owned() };
        if let Some(subject) = template.fixed() {
            check_subject(subject)?;
        }
        Ok(template)
    }

    /// The fields the template reads.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(f) => Some(f.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }
}

impl<T: Serialize> SubjectOf<T> for SubjectTemplate {
    fn subject(&self, record: &T, value: Option<&serde_json::Value>) -> Result<String, String> {
        if let Some(fixed) = SubjectTemplate::fixed(self) {
            return Ok(fixed.to_owned());
        }
        let owned;
        let value = match value {
            Some(v) => v,
            None => {
                owned = serde_json::to_value(record).map_err(|e| format!("cannot encode the record as JSON: {e}"))?;
                &owned
            }
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => match value.get(f) {
                    None | Some(serde_json::Value::Null) => {
                        return Err(format!("the record has no field `{f}` for subject `{}`", self.text))
                    }
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        check_subject(&out)?;
        Ok(out)
    }

    fn fixed(&self) -> Option<&str> {
        SubjectTemplate::fixed(self)
    }

    fn reads_fields(&self) -> bool {
        SubjectTemplate::fixed(self).is_none()
    }
}

/// A subject NATS accepts for a publish: dot-separated non-empty tokens, no whitespace, no
/// wildcard.
pub(crate) fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("an empty subject".into());
    }
    if subject.chars().any(|c| c.is_whitespace()) {
        return Err(format!("subject `{subject}` holds whitespace"));
    }
    if subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">") {
        return Err(format!("subject `{subject}` has an empty token or a wildcard"));
    }
    Ok(())
}

/// The subject is what a function of the record returns.
///
/// ```
/// use etl::sink::nats::{FnSubject, SubjectOf};
/// let s = FnSubject::new(|n: &i64| format!("numbers.{n}"));
/// assert_eq!(s.subject(&3, None).unwrap(), "numbers.3");
/// ```
pub struct FnSubject<F>(F);

impl<F> FnSubject<F> {
    /// The subject of a record is `f(record)`.
    pub fn new(f: F) -> FnSubject<F> {
        FnSubject(f)
    }
}

impl<F> std::fmt::Debug for FnSubject<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSubject(..)")
    }
}

impl<T, F, S> SubjectOf<T> for FnSubject<F>
where
    F: Fn(&T) -> S + Send + Sync,
    S: AsRef<str>,
{
    fn subject(&self, record: &T, _: Option<&serde_json::Value>) -> Result<String, String> {
        let subject = (self.0)(record).as_ref().to_owned();
        check_subject(&subject)?;
        Ok(subject)
    }
}

/// What [`nats()`](super::nats) accepts as the subject: a string (a [`SubjectTemplate`],
/// a [`TemplateText`], parsed when the sink opens) or a function of the record. `M`
/// tells the two apart ([`ByTemplate`], [`ByFn`]); it is inferred.
///
/// ```
/// use etl::sink::nats::IntoSubject;
/// fn subject_of<M, S: IntoSubject<M>>(s: S) -> S::Subject { s.into_subject() }
/// let by_text = subject_of("orders.{region}");
/// let by_fn = subject_of(|n: &i64| n.to_string());
/// ```
pub trait IntoSubject<M> {
    /// What it becomes.
    type Subject;
    /// Convert.
    fn into_subject(self) -> Self::Subject;
}

/// [`IntoSubject`]'s marker for a subject text.
#[derive(Debug)]
pub struct ByTemplate;

/// [`IntoSubject`]'s marker for a function of a record of type `T` returning `S`.
#[derive(Debug)]
pub struct ByFn<T, S>(PhantomData<fn(&T) -> S>);

/// A subject text (`${VAR}` resolved and `{field}` placeholders parsed when the sink opens):
/// what a string given to [`nats()`](super::nats) becomes.
///
/// ```
/// use etl::sink::nats::{SubjectOf, TemplateText};
/// let mut s = TemplateText::new("orders.${ETL_DOC_REGION:-eu}");
/// SubjectOf::<etl::Json>::prepare(&mut s).unwrap();
/// assert_eq!(SubjectOf::<etl::Json>::fixed(&s), Some("orders.eu"));
/// ```
#[derive(Debug, Clone)]
pub struct TemplateText {
    text: String,
    parsed: Option<SubjectTemplate>,
}

impl TemplateText {
    /// The subject text as written.
    pub fn new(text: impl Into<String>) -> TemplateText {
        TemplateText { text: text.into(), parsed: None }
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<T: Serialize> SubjectOf<T> for TemplateText {
    fn subject(&self, record: &T, value: Option<&serde_json::Value>) -> Result<String, String> {
        match &self.parsed {
            Some(template) => template.subject(record, value),
            None => Err("the subject was not prepared (the sink is not open)".into()),
        }
    }

    fn fixed(&self) -> Option<&str> {
        self.parsed.as_ref().and_then(SubjectTemplate::fixed)
    }

    fn reads_fields(&self) -> bool {
        self.parsed.as_ref().is_some_and(|t| t.fixed().is_none())
    }

    fn written(&self) -> Option<&str> {
        Some(&self.text)
    }

    fn prepare(&mut self) -> Result<(), String> {
        let resolved = crate::config::interpolate(&self.text).map_err(|e| e.to_string())?;
        self.parsed = Some(SubjectTemplate::parse(&resolved)?);
        Ok(())
    }
}

impl IntoSubject<ByTemplate> for &str {
    type Subject = TemplateText;
    fn into_subject(self) -> TemplateText {
        TemplateText::new(self)
    }
}

impl IntoSubject<ByTemplate> for String {
    type Subject = TemplateText;
    fn into_subject(self) -> TemplateText {
        TemplateText::new(self)
    }
}

impl<T, F, S> IntoSubject<ByFn<T, S>> for F
where
    F: Fn(&T) -> S + Send + Sync,
    S: AsRef<str>,
{
    type Subject = FnSubject<F>;
    fn into_subject(self) -> FnSubject<F> {
        FnSubject::new(self)
    }
}

/// How a message's `Nats-Msg-Id` is made (JetStream stores a message once per id within the
/// stream's duplicate window).
///
/// ```
/// use etl::sink::nats::MsgId;
/// assert_eq!(MsgId::default(), MsgId::Position);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MsgId {
    /// From the record's source position (a broker's offset, sequence or message id, with the
    /// topic or subject and the pipeline's name): a redelivered batch gets the same ids.
    /// Records whose source has no durable position (an iterator, a file's line) get none.
    #[default]
    Position,
    /// The value of this field of the record (a string's text, another value's JSON).
    Field(String),
    /// No id: no deduplication.
    None,
}

/// The id of the `occurrence`-th record (0-based) with this metadata in its batch (a
/// `flat_map` gives several records one source position), by the source position.
pub(crate) fn position_id(pipeline: &str, meta: &Meta, occurrence: usize) -> Option<String> {
    let origin = meta.extra.as_ref().and_then(|e| e.event_type.as_deref()).unwrap_or("");
    let position = match &meta.position {
        Position::Offset { partition, offset } => format!("{partition}:{offset}"),
        Position::Sequence(s) => format!("seq:{s}"),
        Position::Id(id) => format!("id:{id}"),
        _ => return None,
    };
    let mut id = format!("{pipeline}:{origin}:{position}");
    if occurrence > 0 {
        id.push_str(&format!("#{occurrence}"));
    }
    Some(id)
}

/// The id given by the field `field` of `value` (a record as JSON).
pub(crate) fn field_id(value: &serde_json::Value, field: &str) -> Result<String, String> {
    match value.get(field) {
        None | Some(serde_json::Value::Null) => Err(format!("the record has no field `{field}` for its Nats-Msg-Id")),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
    }
}
