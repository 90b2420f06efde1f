//! Serialisation formats of the file-like connectors.

mod encode;

pub use encode::Encoded;

use crate::config::ConfigError;
use std::path::Path;

/// How records are laid out in bytes.
///
/// ```
/// use etl::format::Format;
/// assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
/// assert_eq!(Format::from_path("events.jsonl".as_ref()), Some(Format::Jsonl));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The conventional file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// The format a file name's extension implies (`.jsonl`, `.ndjson`, `.json`, `.csv`).
    pub fn from_path(path: &Path) -> Option<Format> {
        path.extension()?.to_str()?.parse().ok()
    }
}

impl std::str::FromStr for Format {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Format, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => {
                Err(ConfigError::Invalid { option: "format", message: format!("unknown format `{other}`; expected `jsonl` or `csv`") })
            }
        }
    }
}
