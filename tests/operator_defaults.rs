//! Defaults are stated once: the default each `pipeline!` argument documents (in its `ArgSpec`
//! in `etl-macros/src/ops/`, rendered into `docs/operators.md` by a test of `etl-macros` that
//! fails when the file is stale) must be the value of the runtime's `DEFAULT_*` const that the
//! builder method falls back to. A concrete default (a number, a duration, a size, a boolean, a
//! quoted literal) that no const here accounts for fails too: a new argument with a default
//! needs its const and a line in `EXPECTED`.

use std::collections::BTreeMap;
use std::time::Duration;

/// `(category, step, argument)` → documented default, read from `docs/operators.md`.
fn documented() -> BTreeMap<(String, String, String), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operators.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (mut category, mut step) = (String::new(), String::new());
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            category = title.trim().to_lowercase();
        } else if let Some(name) = line.strip_prefix("#### ") {
            step = name.trim().trim_matches('`').to_owned();
        } else if line.starts_with("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `arg` | kind | required | default | description |
            let (arg, default) = (cells[1], cells[4]);
            if arg.contains("(positional)") {
                continue;
            }
            out.insert((category.clone(), step.clone(), arg.trim_matches('`').to_owned()), default.to_owned());
        }
    }
    assert!(out.len() > 20, "docs/operators.md has no argument tables: {} rows", out.len());
    out
}

fn duration(d: Duration) -> String {
    match (d.as_secs(), d.subsec_millis()) {
        (s, 0) if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        (0, ms) => format!("{ms}ms"),
        _ => format!("{}s", d.as_secs_f64()),
    }
}

fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        n.to_string()
    }
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn format(f: etl::format::Format) -> String {
    quoted(f.extension())
}

/// What each documented default must be, from the runtime's consts. `*` stands for every step
/// of the category (the batching arguments every source takes).
fn expected() -> Vec<(&'static str, &'static str, &'static str, String)> {
    use etl::{batch, sink, source, stage};
    vec![
        ("sources", "*", "batch_size", batch::DEFAULT_BATCH_SIZE.to_string()),
        ("sources", "*", "batch_timeout", duration(batch::DEFAULT_BATCH_TIMEOUT)),
        ("sources", "*", "max_bytes", bytes(batch::DEFAULT_MAX_BYTES)),
        ("sources", "sse", "reconnect", source::sse::DEFAULT_RECONNECT.to_string()),
        ("sources", "sse", "reconnect_delay", duration(source::sse::DEFAULT_RECONNECT_DELAY)),
        ("sources", "sse", "max_reconnects", source::sse::DEFAULT_MAX_RECONNECTS.to_string()),
        ("sources", "sse", "max_event_bytes", bytes(source::sse::DEFAULT_MAX_EVENT_BYTES)),
        ("sources", "sse", "data_format", quoted("json")),
        ("sources", "websocket", "data_format", quoted("json")),
        ("sources", "websocket", "split_arrays", source::websocket::DEFAULT_SPLIT_ARRAYS.to_string()),
        ("sources", "websocket", "ping_interval", duration(source::websocket::DEFAULT_PING_INTERVAL)),
        ("sources", "websocket", "pong_timeout", duration(source::websocket::DEFAULT_PONG_TIMEOUT)),
        ("sources", "websocket", "reconnect", source::websocket::DEFAULT_RECONNECT.to_string()),
        ("sources", "websocket", "reconnect_delay", duration(source::websocket::DEFAULT_RECONNECT_DELAY)),
        ("sources", "websocket", "max_reconnects", source::websocket::DEFAULT_MAX_RECONNECTS.to_string()),
        ("sources", "websocket", "auth_ack_timeout", duration(source::websocket::DEFAULT_AUTH_ACK_TIMEOUT)),
        ("sources", "websocket", "max_message_bytes", bytes(source::websocket::DEFAULT_MAX_MESSAGE_BYTES)),
        ("sources", "sqs", "wait_time_seconds", source::sqs::DEFAULT_WAIT_TIME_SECONDS.to_string()),
        ("sources", "sqs", "max_messages_per_poll", source::sqs::DEFAULT_MAX_MESSAGES_PER_POLL.to_string()),
        ("sources", "sqs", "heartbeat", source::sqs::DEFAULT_HEARTBEAT.to_string()),
        ("operators", "map", "concurrency", stage::DEFAULT_CONCURRENCY.to_string()),
        ("operators", "map", "ordered", stage::DEFAULT_ORDERED.to_string()),
        ("sinks", "file", "format", format(sink::file::DEFAULT_FORMAT)),
        ("sinks", "file", "prefix", quoted(sink::file::DEFAULT_PREFIX)),
        ("sinks", "file", "sync", sink::file::DEFAULT_SYNC.to_string()),
        ("sinks", "s3", "key", quoted(sink::s3::DEFAULT_KEY)),
        ("sinks", "s3", "format", format(sink::s3::DEFAULT_FORMAT)),
        ("sources", "kafka", "brokers", quoted(source::kafka::DEFAULT_BROKERS)),
        ("sources", "kafka", "auto_offset_reset", quoted(source::kafka::DEFAULT_AUTO_OFFSET_RESET)),
        ("sources", "kafka", "poll_timeout", duration(source::kafka::DEFAULT_POLL_TIMEOUT)),
        ("sources", "kafka", "session_timeout", duration(source::kafka::DEFAULT_SESSION_TIMEOUT)),
        ("sinks", "kafka", "brokers", quoted(source::kafka::DEFAULT_BROKERS)),
        ("sources", "nats", "url", quoted(source::nats::DEFAULT_URL)),
        ("sources", "nats", "create", source::nats::DEFAULT_CREATE.to_string()),
        ("sources", "nats", "max_deliver", source::nats::DEFAULT_MAX_DELIVER.to_string()),
        ("sources", "nats", "ack_wait", duration(source::nats::DEFAULT_ACK_WAIT)),
        ("sources", "nats", "nak_delay", duration(source::nats::DEFAULT_NAK_DELAY)),
        ("sources", "nats", "progress", source::nats::DEFAULT_PROGRESS.to_string()),
        ("sinks", "nats", "url", quoted(sink::nats::DEFAULT_URL)),
        ("sinks", "nats", "dedup", sink::nats::DEFAULT_DEDUP.to_string()),
        ("sinks", "nats", "ack_timeout", duration(sink::nats::DEFAULT_ACK_TIMEOUT)),
        ("sources", "rabbitmq", "url", quoted(source::rabbitmq::DEFAULT_URL)),
        ("sources", "rabbitmq", "declare", source::rabbitmq::DEFAULT_DECLARE.to_string()),
        ("sources", "rabbitmq", "exchange_type", quoted(source::rabbitmq::DEFAULT_EXCHANGE_TYPE)),
        ("sources", "rabbitmq", "prefetch_count", source::rabbitmq::DEFAULT_PREFETCH_COUNT.to_string()),
        ("sources", "rabbitmq", "max_redeliveries", source::rabbitmq::DEFAULT_MAX_REDELIVERIES.to_string()),
        ("sinks", "rabbitmq", "url", quoted(sink::rabbitmq::DEFAULT_URL)),
        ("sinks", "rabbitmq", "exchange", quoted(sink::rabbitmq::DEFAULT_EXCHANGE)),
        ("sinks", "rabbitmq", "mandatory", sink::rabbitmq::DEFAULT_MANDATORY.to_string()),
        ("sinks", "rabbitmq", "persistent", sink::rabbitmq::DEFAULT_PERSISTENT.to_string()),
        ("sinks", "postgres", "schema", quoted(sink::postgres::DEFAULT_SCHEMA)),
        ("sinks", "postgres", "create", sink::postgres::DEFAULT_CREATE.to_string()),
        ("sinks", "postgres", "pool_size", sink::postgres::DEFAULT_POOL_SIZE.to_string()),
        ("sinks", "postgres", "timeout", duration(sink::postgres::DEFAULT_TIMEOUT)),
        ("sinks", "postgres", "exactly_once", sink::postgres::DEFAULT_EXACTLY_ONCE.to_string()),
        ("sinks", "postgres", "offsets_table", quoted(sink::postgres::DEFAULT_OFFSETS_TABLE)),
        ("sources", "file_watch", "recursive", source::file_watch::DEFAULT_RECURSIVE.to_string()),
        ("sources", "file_watch", "process_existing", source::file_watch::DEFAULT_PROCESS_EXISTING.to_string()),
        ("sources", "file_watch", "format", quoted(source::file_watch::DEFAULT_FORMAT.name())),
        ("sources", "file_watch", "settle", duration(source::file_watch::DEFAULT_SETTLE)),
        ("sources", "periodic", "retries", source::periodic::DEFAULT_RETRIES.to_string()),
        ("sources", "periodic", "backoff", duration(source::periodic::DEFAULT_BACKOFF)),
    ]
}

/// A default that states a value (rather than "none", "no limit", "from the extension", ...).
fn is_concrete(default: &str) -> bool {
    let d = default.trim();
    d.starts_with('"')
        || d == "true"
        || d == "false"
        || d.chars().next().is_some_and(|c| c.is_ascii_digit()) && !d.contains(' ') && d.len() < 12
        || d.ends_with("MiB")
        || d.ends_with("KiB")
}

#[test]
fn every_documented_default_is_the_runtime_const() {
    let docs = documented();
    let mut covered = Vec::new();
    let mut wrong = Vec::new();
    for (category, step, arg, want) in expected() {
        let rows: Vec<_> = docs.iter().filter(|((c, s, a), _)| c == category && (step == "*" || s == step) && a == arg).collect();
        assert!(!rows.is_empty(), "docs/operators.md documents no `{arg}` for {category} `{step}`");
        for (key, have) in rows {
            if *have != want {
                wrong.push(format!("{} `{}` argument `{}`: documented {have}, the runtime's default is {want}", key.0, key.1, key.2));
            }
            covered.push(key.clone());
        }
    }
    let uncovered: Vec<String> = docs
        .iter()
        .filter(|(key, default)| is_concrete(default) && !covered.contains(key))
        .map(|((c, s, a), d)| format!("{c} `{s}` argument `{a}` documents the default {d}: add its runtime const to this test"))
        .collect();
    assert!(wrong.is_empty() && uncovered.is_empty(), "\n{}\n{}", wrong.join("\n"), uncovered.join("\n"));
}

#[test]
fn renderings_match_the_documents_style() {
    assert_eq!(duration(Duration::from_secs(3)), "3s");
    assert_eq!(duration(Duration::from_millis(500)), "500ms");
    assert_eq!(bytes(1 << 20), "1 MiB");
    assert_eq!(bytes(256 * 1024), "256 KiB");
    assert!(is_concrete("1000") && is_concrete("16 MiB") && is_concrete("\"part\"") && !is_concrete("no limit"));
}
