//! Per-record metadata, carried beside the record in a batch.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Where a record came from inside its source, for commits and dead-letter entries.
///
/// ```
/// use etl::record::Position;
/// assert_eq!(Position::Line(3).to_string(), "line 3");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Position {
    /// Unknown or not applicable.
    #[default]
    None,
    /// The n-th item of an in-memory source (0-based).
    Index(u64),
    /// A line (or CSV record) of a file, 1-based.
    Line(u64),
    /// A partitioned log offset (Kafka).
    Offset {
        /// The partition.
        partition: i32,
        /// The offset inside the partition.
        offset: i64,
    },
    /// A stream sequence number (NATS JetStream).
    Sequence(u64),
    /// A broker's message id (SQS, RabbitMQ delivery tag, SSE event id).
    Id(String),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::None => f.write_str("-"),
            Position::Index(i) => write!(f, "item {i}"),
            Position::Line(l) => write!(f, "line {l}"),
            Position::Offset { partition, offset } => write!(f, "partition {partition} offset {offset}"),
            Position::Sequence(s) => write!(f, "sequence {s}"),
            Position::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// Less common metadata, behind a pointer so that records without it stay small, and shared
/// (an [`Arc`]) so that records read together can carry one copy: the WebSocket source gives
/// the messages of one read one `Extra`, the `file_watch` source the records of one chunk of a
/// file. Change a record's own with [`Arc::make_mut`] (it copies a shared one first).
///
/// ```
/// let extra = etl::record::Extra { event_type: Some("message".into()), ..Default::default() };
/// assert!(extra.key.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// Message key (Kafka key, routing key).
    pub key: Option<Bytes>,
    /// Message headers, in arrival order.
    pub headers: Vec<(String, Bytes)>,
    /// The broker's or producer's timestamp.
    pub timestamp: Option<SystemTime>,
    /// The SSE event type, or the topic / subject / queue the message came from.
    pub event_type: Option<String>,
    /// How many times the broker has delivered this message.
    pub delivery_count: Option<u32>,
    /// The exchange a message was published to (RabbitMQ; empty for the default exchange).
    pub exchange: Option<String>,
    /// The message id its producer set (RabbitMQ's `message_id` property).
    pub message_id: Option<String>,
    /// Whether the broker delivered the message before (RabbitMQ's `redelivered` flag).
    pub redelivered: Option<bool>,
    /// The delivery tag of the message on the channel that delivered it (RabbitMQ).
    pub delivery_tag: Option<u64>,
    /// The source the record was first read from, when it is read again from somewhere else:
    /// a dead letter read back by the `dead_letters` source keeps the source that failed it
    /// (`file orders.jsonl`, `kafka orders`), and so does its entry if it fails again.
    pub original_source: Option<String>,
    /// The file the record was read from (the `file_watch` source): its path, size and
    /// modification time when it was read. Shared by every record of the file.
    pub file: Option<Arc<FileInfo>>,
}

/// A file as a source read it: beside each record of the `file_watch` source
/// ([`Extra::file`]), and in its dead-letter entries' source.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let info = etl::record::FileInfo { path: "inbox/a.jsonl".into(), size: 42, modified: UNIX_EPOCH + Duration::from_secs(1) };
/// assert_eq!(info.path.file_name().unwrap(), "a.jsonl");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileInfo {
    /// The file's path (as the source was configured: absolute when its directory was).
    pub path: PathBuf,
    /// Its size in bytes when it was read.
    pub size: u64,
    /// Its modification time when it was read.
    pub modified: SystemTime,
}

/// The metadata of one record: its position, its raw bytes as read, and optional extras.
///
/// The raw bytes are a reference-counted slice of the source's read buffer (no copy); they are
/// what a dead-letter entry keeps when the record fails.
///
/// ```
/// use etl::record::{Meta, Position};
/// let m = Meta::at(Position::Line(1)).with_raw(bytes::Bytes::from_static(b"{\"id\":1}"));
/// assert_eq!(m.raw.as_deref(), Some(&b"{\"id\":1}"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Where the record came from.
    pub position: Position,
    /// The bytes the record was decoded from, when the source keeps them.
    pub raw: Option<Bytes>,
    /// Keys, headers, timestamps and the like; possibly shared with other records (see
    /// [`Extra`]).
    pub extra: Option<Arc<Extra>>,
}

impl Meta {
    /// Metadata with only a position.
    #[inline]
    pub fn at(position: Position) -> Meta {
        Meta { position, raw: None, extra: None }
    }

    /// The same metadata with the raw bytes attached.
    #[inline]
    pub fn with_raw(mut self, raw: Bytes) -> Meta {
        self.raw = Some(raw);
        self
    }

    /// The same metadata with extras attached.
    #[inline]
    pub fn with_extra(mut self, extra: Extra) -> Meta {
        self.extra = Some(Arc::new(extra));
        self
    }

    /// The same metadata with extras shared with other records (one allocation for all of
    /// them).
    ///
    /// ```
    /// use etl::record::{Extra, Meta, Position};
    /// use std::sync::Arc;
    /// let shared = Arc::new(Extra { event_type: Some("text".into()), ..Extra::default() });
    /// let a = Meta::at(Position::Sequence(1)).with_shared_extra(Arc::clone(&shared));
    /// let b = Meta::at(Position::Sequence(2)).with_shared_extra(shared);
    /// assert!(Arc::ptr_eq(a.extra.as_ref().unwrap(), b.extra.as_ref().unwrap()));
    /// ```
    #[inline]
    pub fn with_shared_extra(mut self, extra: Arc<Extra>) -> Meta {
        self.extra = Some(extra);
        self
    }
}
