use super::encode::*;
use serde_json::json;

#[test]
fn a_field_key_is_the_text_of_a_string_and_the_json_of_anything_else() {
    let key = FieldKey::new("k");
    let of = |v: serde_json::Value| <FieldKey as MessageKey<serde_json::Value>>::message(&key, &json!({"k": v, "x": 1})).map(|m| m.0);
    assert_eq!(of(json!("ab")), Ok(Some(b"ab".to_vec())));
    assert_eq!(of(json!(12)), Ok(Some(b"12".to_vec())));
    assert_eq!(of(json!({"a": [1]})), Ok(Some(br#"{"a":[1]}"#.to_vec())));
    assert_eq!(of(json!(null)), Ok(None));
    let missing = <FieldKey as MessageKey<serde_json::Value>>::message(&key, &json!({"x": 1})).unwrap_err();
    assert!(missing.contains("no field `k`"), "{missing}");
}

#[test]
fn the_value_is_the_record_as_json_whatever_the_key() {
    #[derive(serde::Serialize)]
    struct Order {
        #[serde(rename = "type")]
        kind: String,
        id: i64,
    }
    let order = Order { kind: "paid".into(), id: 3 };
    let by_field = FieldKey::new("type").message(&order).unwrap();
    let by_fn = FnKey::new(|o: &Order| o.id.to_be_bytes()).message(&order).unwrap();
    let none = NoKey.message(&order).unwrap();
    assert_eq!(by_field, (Some(b"paid".to_vec()), br#"{"type":"paid","id":3}"#.to_vec()));
    assert_eq!(by_fn, (Some(3i64.to_be_bytes().to_vec()), br#"{"type":"paid","id":3}"#.to_vec()));
    assert_eq!(none.1, by_field.1);
}

#[test]
fn fingerprints_tell_values_apart() {
    assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
    assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
}
