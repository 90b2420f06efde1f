use super::encode::*;
use crate::record::{Extra, Meta, Position};
use crate::Json;
use serde_json::json;

#[test]
fn templates_fill_fields_and_refuse_what_nats_refuses() {
    let t = SubjectTemplate::parse("orders.{region}.{id}").unwrap();
    assert_eq!(t.fields(), vec!["region", "id"]);
    let record: Json = serde_json::from_value(json!({"region": "eu", "id": 7})).unwrap();
    assert_eq!(t.subject(&record, None).unwrap(), "orders.eu.7");
    let missing: Json = serde_json::from_value(json!({"id": 7})).unwrap();
    assert!(t.subject(&missing, None).unwrap_err().contains("no field `region`"));
    let spaced: Json = serde_json::from_value(json!({"region": "e u", "id": 1})).unwrap();
    assert!(t.subject(&spaced, None).unwrap_err().contains("whitespace"));
    assert_eq!(SubjectTemplate::parse("a.{{b}}").unwrap().fields(), Vec::<&str>::new());
    assert!(SubjectTemplate::parse("a.{}").is_err());
    assert!(SubjectTemplate::parse("a.}").is_err());
    assert!(SubjectTemplate::parse("orders.>").is_err(), "no wildcard in a publish subject");
    assert!(SubjectTemplate::parse("orders..x").is_err());
}

#[test]
fn a_template_text_is_resolved_and_parsed_when_prepared() {
    let mut t = TemplateText::new("orders.${ETL_NATS_TEST_UNSET_REGION:-eu}.{id}");
    assert!(SubjectOf::<Json>::subject(&t, &Json::default(), None).is_err(), "not prepared yet");
    SubjectOf::<Json>::prepare(&mut t).unwrap();
    let record: Json = serde_json::from_value(json!({"id": 1})).unwrap();
    assert_eq!(t.subject(&record, None).unwrap(), "orders.eu.1");
    assert!(SubjectOf::<Json>::reads_fields(&t));
    let mut unset = TemplateText::new("${ETL_NATS_TEST_SURELY_UNSET}");
    assert!(SubjectOf::<Json>::prepare(&mut unset).unwrap_err().contains("ETL_NATS_TEST_SURELY_UNSET"));
}

#[test]
fn message_ids_come_from_durable_positions_and_tell_a_flat_maps_records_apart() {
    let extra = Extra { event_type: Some("orders".into()), ..Extra::default() };
    let kafka = Meta::at(Position::Offset { partition: 2, offset: 41 }).with_extra(extra.clone());
    assert_eq!(position_id("p", &kafka, 0).as_deref(), Some("p:orders:2:41"));
    assert_eq!(position_id("p", &kafka, 2).as_deref(), Some("p:orders:2:41#2"));
    let nats = Meta::at(Position::Sequence(9)).with_extra(extra);
    assert_eq!(position_id("p", &nats, 0).as_deref(), Some("p:orders:seq:9"));
    assert_eq!(position_id("p", &Meta::at(Position::Id("m-1".into())), 0).as_deref(), Some("p::id:m-1"));
    assert_eq!(position_id("p", &Meta::at(Position::Index(3)), 0), None, "an iterator's index is no durable identity");
    assert_eq!(position_id("p", &Meta::at(Position::Line(3)), 0), None);
    assert_eq!(field_id(&json!({"id": 5}), "id").unwrap(), "5");
    assert_eq!(field_id(&json!({"id": "a"}), "id").unwrap(), "a");
    assert!(field_id(&json!({"x": 1}), "id").is_err());
}
