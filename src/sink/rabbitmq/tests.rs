use super::encode::*;
use serde_json::json;

#[test]
fn a_fixed_key_routes_every_record_alike_and_resolves_variables_at_open() {
    std::env::set_var("ETL_TEST_RABBIT_KEY", "orders-clean");
    let mut key = FixedKey::new("${ETL_TEST_RABBIT_KEY}");
    RoutingKey::<serde_json::Value>::resolve(&mut key).unwrap();
    let (k, body) = key.message(&json!({"id": 1, "text": "é"})).unwrap();
    assert_eq!(k, "orders-clean");
    assert_eq!(body, serde_json::to_vec(&json!({"id": 1, "text": "é"})).unwrap());
}

#[test]
fn a_function_routes_by_the_record_and_a_too_long_key_is_refused() {
    let key = FnKey::new(|r: &serde_json::Value| format!("order.{}", r["kind"].as_str().unwrap_or("other")));
    assert_eq!(key.message(&json!({"kind": "paid"})).unwrap().0, "order.paid");
    let long = FnKey::new(|_: &serde_json::Value| "k".repeat(MAX_ROUTING_KEY_BYTES + 1));
    let err = long.message(&json!({})).unwrap_err();
    assert!(err.contains("256 bytes"), "{err}");
}

#[test]
fn a_record_that_is_not_json_is_refused_with_a_reason() {
    struct NotJson;
    impl serde::Serialize for NotJson {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let err = FixedKey::new("q").message(&NotJson).unwrap_err();
    assert!(err.contains("cannot encode"), "{err}");
}
