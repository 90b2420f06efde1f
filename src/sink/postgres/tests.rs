use super::encode::*;
use super::write::copy_line;
use proptest::prelude::*;
use serde::Serialize;

fn target(name: &str, kind: Kind) -> Target {
    Target { name: name.into(), type_name: format!("{kind:?}").to_lowercase(), kind }
}

/// The binary numeric of `text`, decoded back to its parts.
fn numeric_parts(text: &str) -> (i16, i16, u16, u16, Vec<i16>) {
    let mut out = Vec::new();
    numeric(text, &mut out).unwrap();
    let word = |i: usize| [out[i], out[i + 1]];
    let digits = (8..out.len()).step_by(2).map(|i| i16::from_be_bytes(word(i))).collect();
    (i16::from_be_bytes(word(0)), i16::from_be_bytes(word(2)), u16::from_be_bytes(word(4)), u16::from_be_bytes(word(6)), digits)
}

#[test]
fn numeric_binary_format() {
    assert_eq!(numeric_parts("0"), (0, 0, 0, 0, vec![]));
    assert_eq!(numeric_parts("12.50"), (2, 0, 0, 2, vec![12, 5000]));
    assert_eq!(numeric_parts("-12345678.9"), (3, 1, 0x4000, 1, vec![1234, 5678, 9000]));
    assert_eq!(numeric_parts("0.000123"), (2, -1, 0, 6, vec![1, 2300]));
    assert_eq!(numeric_parts("1e4"), (1, 1, 0, 0, vec![1]));
    assert_eq!(numeric_parts("10000"), (1, 1, 0, 0, vec![1]));
    assert_eq!(numeric_parts("NaN"), (0, 0, 0xc000, 0, vec![]));
    assert_eq!(numeric_parts("-0.0"), (0, 0, 0, 1, vec![]));
    for bad in ["", ".", "1.2.3", "abc", "1e", "--1", "1e999999"] {
        assert!(numeric(bad, &mut Vec::new()).is_err(), "{bad}");
    }
}

proptest! {
    /// Decoding the base-10000 digits gives back the number written.
    #[test]
    fn numeric_round_trips(int in 0u64..10_000_000_000, frac in 0u32..1_000_000, places in 0usize..7, negative: bool) {
        let frac_text = format!("{frac:06}")[..places].to_string();
        let text = format!("{}{int}{}{frac_text}", if negative { "-" } else { "" }, if places > 0 { "." } else { "" });
        let (ndigits, weight, sign, dscale, digits) = numeric_parts(&text);
        prop_assert_eq!(ndigits as usize, digits.len());
        prop_assert_eq!(dscale as usize, places);
        let mut value = 0f64;
        for (i, d) in digits.iter().enumerate() {
            value += f64::from(*d) * 10f64.powi(4 * (i32::from(weight) - i as i32));
        }
        let want: f64 = text.parse().unwrap();
        prop_assert!((value.abs() - want.abs()).abs() <= want.abs() * 1e-12 + 1e-9, "{} vs {}", value, want);
        prop_assert_eq!(sign == 0x4000, negative && want != 0.0);
    }
}

#[test]
fn timestamps_and_dates() {
    assert_eq!(timestamp("2000-01-01T00:00:00Z", true), Ok(0));
    assert_eq!(timestamp("2000-01-01T01:00:00+01:00", true), Ok(0));
    assert_eq!(timestamp("1999-12-31 23:59:59.5z", true), Ok(-500_000));
    assert_eq!(timestamp("2000-01-01T00:00:00.0000015Z", true), Ok(2), "rounded to microseconds");
    assert_eq!(timestamp("2000-01-02T00:00:00-0130", true), Ok((86_400 + 5_400) * 1_000_000));
    assert_eq!(timestamp("2026-11-30T12:00:00", false), Ok(((9830 * 86_400) + 12 * 3600) * 1_000_000));
    assert_eq!(timestamp("infinity", true), Ok(i64::MAX));
    assert!(timestamp("2026-11-30T12:00:00", true).unwrap_err().contains("no UTC offset"));
    for bad in [
        "2026-11-30",
        "2026-13-01T00:00:00Z",
        "2026-11-30T24:00:00Z",
        "2026-11-30T12:00:00+2",
        "2026-11-30T12:00Z",
        "2026-11-30T12:00:00.Z",
        "é026-11-30T12:00:00Z",
    ] {
        assert!(timestamp(bad, true).is_err(), "{bad}");
    }
    assert_eq!(date("2000-01-01"), Ok(0));
    assert_eq!(date("1970-01-01"), Ok(-10_957));
    assert_eq!(date("2024-02-29"), Ok(8825));
    assert!(date("2023-02-29").is_err());
    assert!(date("2026-1-1").is_err());
}

#[test]
fn uuids() {
    let want = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
    assert_eq!(uuid("12345678-9abc-def0-1234-56789abcdef0"), Ok(want));
    assert_eq!(uuid("{123456789ABCDEF0123456789abcdef0}"), Ok(want));
    assert!(uuid("12345678-9abc-def0-1234-56789abcdef").is_err());
    assert!(uuid("g2345678-9abc-def0-1234-56789abcdef0").is_err());
}

#[test]
fn sqlstate_classes() {
    for code in ["23505", "23514", "22003", "22021", "22P02", "44000", "P0001"] {
        assert_eq!(classify(code), Class::Data, "{code}");
    }
    for code in ["08006", "08001", "40001", "40P01", "57P01", "57014", "53300", "55P03", "25006"] {
        assert_eq!(classify(code), Class::Retryable, "{code}");
    }
    for code in ["42P01", "42703", "42501", "28P01", "3D000", "0A000", "XX000"] {
        assert_eq!(classify(code), Class::Permanent, "{code}");
    }
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
    assert_eq!(redact("postgres://u@h/db?password=secret&sslmode=disable"), "postgres://u@h/db?password=***&sslmode=disable");
    assert_eq!(redact("host=h password = 'a b' user=u"), "host=h password = *** user=u");
    assert_eq!(redact("host=h password=x user=u"), "host=h password=*** user=u");
    assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
}

#[test]
fn field_and_column_types() {
    assert_eq!(strip_option("Option < String >"), ("String".into(), true));
    assert_eq!(field_kind("std::string::String"), FieldKind::Text);
    assert_eq!(field_kind("Vec<String>"), FieldKind::Nested);
    assert_eq!(field_kind("chrono::DateTime<Utc>"), FieldKind::Unknown);
    assert!(compatible(FieldKind::Int, Kind::Text));
    assert!(compatible(FieldKind::Text, Kind::Timestamptz));
    assert!(!compatible(FieldKind::Text, Kind::Int8));
    assert!(!compatible(FieldKind::Float, Kind::Int4));
    assert!(!compatible(FieldKind::Nested, Kind::Text));
    assert!(!compatible(FieldKind::Unknown, Kind::Unsupported));
    assert_eq!(Kind::of("mood", "e"), Kind::Text);
    assert_eq!(Kind::of("_int4", "b"), Kind::Unsupported);
    assert_eq!(sql_type("u64"), "numeric");
    assert_eq!(sql_type("chrono::DateTime<chrono::Utc>"), "timestamp with time zone");
}

#[test]
fn sql_text_quotes_every_identifier() {
    assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    assert_eq!(qualified("public", "Orders"), "\"public\".\"Orders\"");
    assert_eq!(copy_sql("\"s\".\"t\"", ["a", "B"]), "COPY \"s\".\"t\" (\"a\", \"B\") FROM STDIN (FORMAT binary)");
    let merge = merge_sql("\"s\".\"t\"", "stage", "etl_row", &["id", "v"], &["id"]);
    assert!(merge.contains("DISTINCT ON (\"id\")") && merge.contains("ORDER BY \"id\", \"etl_row\" DESC"), "{merge}");
    assert!(merge.contains("ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""), "{merge}");
    assert!(merge_sql("t", "stage", "r", &["id"], &["id"]).contains("DO NOTHING"));
    assert_ne!(stage_name("a", "bc"), stage_name("ab", "c"));
    assert_eq!(copy_line("duplicate key (SQLSTATE 23505; COPY t, line 17)"), Some(17));
    assert_eq!(copy_line("no context"), None);
}

#[derive(Serialize)]
struct Row {
    id: i64,
    name: Option<String>,
    doc: serde_json::Value,
}

#[test]
fn encoder_writes_binary_rows_and_refuses_what_does_not_fit() {
    let plan = Plan::new(vec![target("id", Kind::Int4), target("name", Kind::Text), target("doc", Kind::Jsonb)], &[]);
    let mut enc = Encoder::default();
    enc.push(&plan, 0, &Row { id: 7, name: Some("é".into()), doc: serde_json::json!({"a": 1}) }).unwrap();
    let mut want = vec![0, 3, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 2, 0xc3, 0xa9, 0, 0, 0, 8, 1];
    want.extend_from_slice(b"{\"a\":1}");
    assert_eq!(enc.body, want);
    enc.push(&plan, 1, &Row { id: 8, name: None, doc: serde_json::Value::Null }).unwrap();
    assert_eq!(&enc.body[want.len()..], &[0, 3, 0, 0, 0, 4, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let before = enc.body.len();
    let e = enc.push(&plan, 2, &Row { id: 1 << 40, name: None, doc: serde_json::Value::Null }).unwrap_err();
    assert!(e.contains("out of range") && e.contains("`id`"), "{e}");
    let e = enc.push(&plan, 3, &Row { id: 1, name: Some("a\0b".into()), doc: serde_json::Value::Null }).unwrap_err();
    assert!(e.contains("NUL"), "{e}");
    assert_eq!(enc.body.len(), before, "a refused record leaves nothing behind");
    assert_eq!(enc.rows.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
    let e = enc.push(&plan, 4, &5i64).unwrap_err();
    assert!(e.contains("struct or a map"), "{e}");
    // Keys of an upsert must be present; a map's fields may come in any order.
    let plan = Plan::new(vec![target("id", Kind::Int8), target("v", Kind::Text)], &["id".to_string()]);
    let e = enc.push(&plan, 5, &serde_json::json!({"v": "x"})).unwrap_err();
    assert!(e.contains("`id`"), "{e}");
    enc.push(&plan, 6, &serde_json::json!({"v": "x", "id": 1})).unwrap();
}
