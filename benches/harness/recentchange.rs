//! A deterministic generator of Wikimedia-RecentChange-like events, one JSON object per line,
//! for the `wikipedia` benchmark (and any test that wants many such events).
//!
//! The field set follows the public `mediawiki/recentchange` 1.0.0 schema (`meta`, `id`,
//! `type`, `title`, `namespace`, `comment`, `parsedcomment`, `timestamp`, `user`, `bot`,
//! `server_*`, `wiki`, `minor`, `patrolled`, `length{old,new}`, `revision{old,new}`, `log_*`).
//! The data is synthetic but deliberately awkward: titles, users and comments carry commas,
//! quotes, newlines, tabs, emoji, CJK and right-to-left text; optional fields are sometimes
//! absent and sometimes null (`id` in 1 % of events); about 1 event in 200 is a canary
//! (`meta.domain == "canary"`) that consumers drop. The same count and seed always give the
//! same bytes (a SplitMix64 generator; no dependency on a random crate's algorithm).
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::io::Write;

const WIKIS: [(&str, &str); 9] = [
    ("enwiki", "en.wikipedia.org"),
    ("dewiki", "de.wikipedia.org"),
    ("frwiki", "fr.wikipedia.org"),
    ("jawiki", "ja.wikipedia.org"),
    ("arwiki", "ar.wikipedia.org"),
    ("wikidatawiki", "www.wikidata.org"),
    ("commonswiki", "commons.wikimedia.org"),
    ("zhwiki", "zh.wikipedia.org"),
    ("ruwiki", "ru.wikipedia.org"),
];
const WORDS: [&str; 24] = [
    "Berlin",
    "Quantum",
    "Library",
    "River",
    "History of",
    "Café",
    "Zürich",
    "東京",
    "北京市",
    "القاهرة",
    "Москва",
    "Ωmega",
    "naïve",
    "🚀 Launch",
    "Data",
    "pipeline",
    "O'Brien",
    "\"Quoted\"",
    "semi;colon",
    "comma, separated",
    "tab\there",
    "São Paulo",
    "Kraków",
    "Ελλάδα",
];
const COMMENTS: [&str; 12] = [
    "",
    "typo",
    "fix, cleanup",
    "Reverted edits by [[Special:Contributions/X|X]]",
    "rv \"vandalism\"",
    "multi\nline comment",
    "/* Section */ update",
    "→ redirect",
    "added {{cite web}}",
    "tab\tand, comma",
    "emoji 🎉 party",
    "'single' quotes",
];
const USERS: [&str; 9] = ["Alice", "Bob", "192.0.2.17", "2001:db8::1", "Ünïcödé", "BotMcBotface", "用户", "O'Hara", "Smith, John"];

/// SplitMix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// Event number `n` (its `id`, `timestamp` and `meta.offset` follow `n`).
pub fn event(rng: &mut Rng, n: u64) -> Value {
    const BASE_TS: u64 = 1_795_000_000;
    let (wiki, server) = *rng.pick(&WIKIS);
    let kind = match rng.range(0, 99) {
        0..=69 => "edit",
        70..=74 => "new",
        75..=89 => "log",
        _ => "categorize",
    };
    let ts = BASE_TS + n / 3;
    let rcid = 1_000_000_000 + n as i64;
    let words = rng.range(1, 3);
    let title: Vec<&str> = (0..words).map(|_| *rng.pick(&WORDS)).collect();
    let title = title.join(" ");
    let domain = if rng.unit() < 0.005 { "canary" } else { server };
    let dt = format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 1 + (ts / 86_400) % 28, (ts / 3600) % 24, (ts / 60) % 60, ts % 60);
    let comment = *rng.pick(&COMMENTS);
    let mut ev = Map::new();
    ev.insert("$schema".into(), json!("/mediawiki/recentchange/1.0.0"));
    ev.insert(
        "meta".into(),
        json!({
            "uri": format!("https://{server}/wiki/{}", title.replace(' ', "_")),
            "request_id": rng.uuid(),
            "id": rng.uuid(),
            "dt": dt,
            "domain": domain,
            "stream": "mediawiki.recentchange",
            "topic": "eqiad.mediawiki.recentchange",
            "partition": 0,
            "offset": 5_000_000_000u64 + n,
        }),
    );
    ev.insert("id".into(), if rng.unit() > 0.01 { json!(rcid) } else { Value::Null });
    ev.insert("type".into(), json!(kind));
    let namespaces = [0, 0, 0, 1, 2, 4, 6, 14, if kind == "log" { -1 } else { 0 }];
    ev.insert("namespace".into(), json!(*rng.pick(&namespaces)));
    ev.insert("title".into(), json!(title));
    ev.insert("comment".into(), json!(comment));
    ev.insert("timestamp".into(), json!(ts));
    ev.insert("user".into(), json!(*rng.pick(&USERS)));
    ev.insert("bot".into(), json!(rng.unit() < 0.2));
    ev.insert("server_url".into(), json!(format!("https://{server}")));
    ev.insert("server_name".into(), json!(server));
    ev.insert("server_script_path".into(), json!("/w"));
    ev.insert("wiki".into(), json!(wiki));
    if rng.unit() < 0.9 {
        ev.insert("parsedcomment".into(), json!(format!("<a href=\"/wiki/X\" title=\"X\">{comment}</a>")));
    }
    if kind == "edit" || kind == "new" {
        let old = if kind == "new" { Value::Null } else { json!(rng.range(0, 200_000)) };
        ev.insert("minor".into(), json!(rng.unit() < 0.3));
        if rng.unit() < 0.7 {
            ev.insert("patrolled".into(), json!(rng.unit() < 0.5));
        }
        ev.insert("length".into(), json!({"old": old, "new": rng.range(0, 200_000)}));
        let old_rev = if kind == "new" { Value::Null } else { json!(rcid * 3) };
        ev.insert("revision".into(), json!({"old": old_rev, "new": rcid * 3 + 1}));
    }
    if kind == "log" {
        ev.insert("log_id".into(), json!(rng.range(1, 100_000_000)));
        let log_types = [json!("upload"), json!("block"), json!("delete"), json!("move"), Value::Null];
        ev.insert("log_type".into(), rng.pick(&log_types).clone());
        ev.insert("log_action".into(), json!(*rng.pick(&["upload", "block", "delete", "move_redir"])));
        let params = [json!([]), json!({"img_sha1": "abc", "img_timestamp": "20261122"}), json!("plain string")];
        ev.insert("log_params".into(), rng.pick(&params).clone());
        let action_comments = [Value::Null, json!("uploaded a new version of \"File:X.png\"")];
        ev.insert("log_action_comment".into(), rng.pick(&action_comments).clone());
    }
    Value::Object(ev)
}

/// Write `count` events (seed `seed`) as JSONL to `out`; returns the bytes written.
pub fn write_events(out: impl Write, count: u64, seed: u64) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, CountingWriter { inner: out, written: 0 });
    let mut rng = Rng::new(seed);
    for n in 0..count {
        serde_json::to_writer(&mut out, &event(&mut rng, n))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(out.get_ref().written)
}

struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
