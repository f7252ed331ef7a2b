use serde_json::{json, Value};

use super::*;

mod fields;

const UUID_A: &str = "3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b";

fn base() -> Value {
    json!({
        "externalId": UUID_A,
        "history": [
            { "id": "m1", "role": "user", "type": "text", "text": "hi", "timestamp": "2026-02-22T10:00:00.000Z" },
            { "id": "m2", "role": "agent", "type": "adaptiveCard", "cardPayload": { "type": "AdaptiveCard" }, "timestamp": "2026-02-22T10:00:01.000Z" }
        ],
        "userId": "user-1",
        "tenantId": "tenant-1",
        "createdAt": "2026-02-22T10:00:00.000Z",
        "updatedAt": "2026-02-22T10:00:00.000Z",
        "status": "active"
    })
}

fn check(doc: &Value) -> Result<ConversationSummary, String> {
    validate_conversation(&doc.to_string()).map_err(|e| e.message)
}

fn err(json: &str) -> String {
    validate_conversation(json)
        .expect_err("should be rejected")
        .to_string()
}

fn with(field: &str, value: Value) -> Result<ConversationSummary, String> {
    let mut doc = base();
    doc[field] = value;
    check(&doc)
}

fn without(field: &str) -> Result<ConversationSummary, String> {
    let mut doc = base();
    doc.as_object_mut().unwrap().remove(field);
    check(&doc)
}

fn with_msg(field: &str, value: Value) -> Result<ConversationSummary, String> {
    let mut doc = base();
    doc["history"][1][field] = value;
    check(&doc)
}

fn without_msg(field: &str) -> Result<ConversationSummary, String> {
    let mut doc = base();
    doc["history"][1].as_object_mut().unwrap().remove(field);
    check(&doc)
}

fn with_timestamp(ts: &str) -> Result<ConversationSummary, String> {
    with("updatedAt", json!(ts))
}

const TS_ERR: &str = "expected an ISO 8601 UTC timestamp like 2026-02-22T10:00:00.000Z";

#[test]
fn full_document_is_valid() {
    let json = r#"{
      "externalId": "3F2B8C1E-9D4A-4E6B-8F1A-2C3D4E5F6A7B",
      "sdkConversationRef": {"activityId": "x", "nested": [1, null, {"deep": [true, "\ud83d\ude00"]}], "n": null},
      "history": [
        {"id": "m\"1\"", "role": "user", "type": "text", "text": "line\nbreak \u00e9 \\ \/ done", "timestamp": "2026-02-22T10:00:00.000Z", "clientTag": {"a": 1}},
        {"id": "m2", "role": "agent", "type": "adaptiveCard", "cardPayload": {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "hi"}]}, "timestamp": "2026-02-22T10:00:01Z"},
        {"id": "m3", "role": "agent", "type": "typing", "timestamp": "2026-02-22T10:00:02.5Z"},
        {"id": "m4", "role": "agent", "type": "error", "text": "", "timestamp": "2026-02-22T10:00:03.123456Z"}
      ],
      "userId": "us\u0065r-\u00e9",
      "tenantId": "tenant-1",
      "createdAt": "2026-02-22T09:59:00.000Z",
      "updatedAt": "2026-02-22T10:00:03.123Z",
      "status": "completed",
      "workflowId": "a1b2c3d4-e5f6-1789-abcd-ef0123456789",
      "currentStep": 2,
      "stepData": {"answers": {"q1": "yes"}},
      "metadata": {},
      "schemaVersion": 3,
      "futureField": [null]
    }"#;
    assert_eq!(
        validate_conversation(json),
        Ok(ConversationSummary {
            user_id: "user-é".into(),
            external_id: "3F2B8C1E-9D4A-4E6B-8F1A-2C3D4E5F6A7B".into(),
            updated_at_ms: 1_771_754_403_123,
            has_live_ref: true,
        })
    );
}

#[test]
fn minimal_document_is_valid() {
    let json = r#"{"externalId":"3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b","history":[],"userId":"u","tenantId":"t","createdAt":"2026-02-22T10:00:00Z","updatedAt":"2026-02-22T10:00:00.000Z","status":"abandoned"}"#;
    assert_eq!(
        validate_conversation(json),
        Ok(ConversationSummary {
            user_id: "u".into(),
            external_id: "3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b".into(),
            updated_at_ms: 1_771_754_400_000,
            has_live_ref: false,
        })
    );
}

#[test]
fn base_document_is_valid() {
    assert!(check(&base()).is_ok());
}

#[test]
fn top_level_must_be_an_object() {
    for json in ["[]", "null", "\"x\"", "42", "true"] {
        assert_eq!(err(json), "conversation: expected an object", "{json}");
    }
}

#[test]
fn invalid_json_is_reported_as_such() {
    assert!(err("").starts_with("invalid JSON: "));
    assert!(err("{\"externalId\":").starts_with("invalid JSON: "));
    assert!(err("{'a': 1}").starts_with("invalid JSON: "));
    // A data error earlier in the text must not hide the syntax error.
    assert!(err("{\"userId\": 5, \"x\": }").starts_with("invalid JSON: "));
    // A raw control character is not JSON, even in a field only checked for type.
    let doc = base().to_string().replace("\"hi\"", "\"h\ti\"");
    assert!(err(&doc).starts_with("invalid JSON: "), "{}", err(&doc));
}

#[test]
fn trailing_characters_are_rejected() {
    let doc = base().to_string();
    assert!(err(&format!("{doc} x")).starts_with("invalid JSON: "));
    assert!(err(&format!("{doc}{{}}")).starts_with("invalid JSON: "));
    assert!(validate_conversation(&format!(" \n{doc}\n ")).is_ok());
}

#[test]
fn unknown_fields_are_allowed() {
    assert!(with("extra", json!(null)).is_ok());
    assert!(with_msg("extra", json!({"a": [null]})).is_ok());
}

#[test]
fn duplicate_fields_are_rejected() {
    let doc = base().to_string();
    let open = |extra: &str| format!("{{{extra},{}", &doc[1..]);
    assert_eq!(err(&open("\"userId\":\"u\"")), "userId: duplicate field");
    assert_eq!(
        err(&open("\"sdkConversationRef\":1,\"sdkConversationRef\":2")),
        "sdkConversationRef: duplicate field"
    );
    assert_eq!(err(&open("\"x\":1,\"x\":2")), "x: duplicate field");
    // Escapes are decoded before comparing, as JSON.parse does.
    assert_eq!(
        err(&open("\"user\\u0049d\":\"u\"")),
        "userId: duplicate field"
    );
    assert_eq!(err(&open("\"x\":1,\"\\u0078\":2")), "x: duplicate field");

    let msg = doc.replacen("{\"id\":\"m1\"", "{\"id\":\"m0\",\"id\":\"m1\"", 1);
    assert_eq!(err(&msg), "history[0].id: duplicate field");
    let msg = doc.replacen("{\"id\":\"m1\"", "{\"k\":1,\"k\":1,\"id\":\"m1\"", 1);
    assert_eq!(err(&msg), "history[0].k: duplicate field");
}

#[test]
fn escaped_keys_and_values_are_decoded() {
    let json = base()
        .to_string()
        .replace("\"userId\"", "\"user\\u0049d\"")
        .replace("\"active\"", "\"\\u0061ctive\"")
        .replace(
            "\"2026-02-22T10:00:01.000Z\"",
            "\"2026-02-22T10\\u003a00:01.000Z\"",
        );
    assert_eq!(
        validate_conversation(&json).map(|s| s.user_id),
        Ok("user-1".into())
    );
}

#[test]
fn lone_surrogates_are_accepted_where_js_accepts_them() {
    // JSON.stringify writes a lone surrogate as an escape; JSON.parse reads it back.
    let doc = base().to_string().replace("\"hi\"", "\"half \\ud83d\"");
    assert!(validate_conversation(&doc).is_ok());
    let doc = base()
        .to_string()
        .replace("\"type\":\"AdaptiveCard\"", "\"\\udc00\":\"\\udc00\"");
    assert!(validate_conversation(&doc).is_ok());
    let doc = base().to_string().replace("\"user-1\"", "\"u\\ud800\"");
    assert_eq!(
        err(&doc),
        "userId: expected a non-empty string without lone surrogates"
    );
}

#[test]
fn first_failure_in_document_order_wins() {
    let mut doc = base();
    doc["history"][0]["role"] = json!("bot");
    doc["status"] = json!("gone");
    // serde_json's map writes keys in sorted order: history comes before status.
    assert_eq!(
        check(&doc).unwrap_err(),
        "history[0].role: expected 'user' | 'agent'"
    );
}

#[test]
fn messages_do_not_echo_long_values() {
    let long = "x".repeat(10_000);
    let message = with("externalId", json!(long)).unwrap_err();
    assert_eq!(message, "externalId: expected a UUID");
    let doc = base().to_string();
    let key = "k".repeat(1_000);
    let message = err(&format!("{{\"{key}\":1,\"{key}\":2,{}", &doc[1..]));
    assert!(message.len() < 100, "{message}");
    assert!(message.ends_with(": duplicate field"));
}

#[test]
fn schema_error_displays_its_message() {
    let e = SchemaError {
        message: "userId: required".into(),
    };
    assert_eq!(e.to_string(), "userId: required");
}

/// A ~9 KB conversation like production ones: 20 messages, every fifth with a ~1 KB card.
fn typical_document() -> String {
    let card = json!({
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": (0..12).map(|i| json!({"type": "TextBlock", "text": format!("Line {i} of the card, with some words"), "wrap": true})).collect::<Vec<_>>(),
    });
    let history: Vec<Value> = (0..20)
        .map(|i| {
            let mut m = json!({
                "id": format!("msg-{i:04}-{UUID_A}"),
                "role": if i % 2 == 0 { "user" } else { "agent" },
                "type": if i % 5 == 4 { "adaptiveCard" } else { "text" },
                "text": format!("Message number {i}: a sentence of ordinary length with \"quotes\" and a newline\n and more text to pad it out a little."),
                "timestamp": format!("2026-02-22T10:{i:02}:00.000Z"),
            });
            if i % 5 == 4 {
                m["cardPayload"] = card.clone();
            }
            m
        })
        .collect();
    let mut doc = base();
    doc["history"] = Value::Array(history);
    doc["workflowId"] = json!(UUID_A);
    doc["currentStep"] = json!(3);
    doc["stepData"] = json!({"answers": {"q1": "yes", "q2": "no"}});
    doc["metadata"] = json!({"channel": "msteams"});
    doc.to_string()
}

#[test]
fn typical_document_is_valid() {
    let json = typical_document();
    assert!((7_000..12_000).contains(&json.len()), "{}", json.len());
    assert!(validate_conversation(&json).is_ok());
}

#[test]
#[ignore = "timing; run with --release -- --ignored --nocapture"]
fn validation_speed() {
    let json = typical_document();
    let rounds = 200_000;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(validate_conversation(std::hint::black_box(&json)).unwrap());
    }
    let per_doc = start.elapsed() / rounds;
    println!("{} bytes: {per_doc:?} per document", json.len());
}
