//! One rule per field of a conversation and of a message.

use serde_json::json;

use super::*;

#[test]
fn external_id_is_a_required_uuid() {
    assert_eq!(without("externalId").unwrap_err(), "externalId: required");
    let bad = [
        json!("not-a-uuid"),
        json!("3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7"),
        json!("3f2b8c1e9d4a-4e6b-8f1a-2c3d4e5f6a7b0"),
        json!("3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7g"),
        json!(""),
        json!(5),
        json!(null),
    ];
    for value in bad {
        assert_eq!(
            with("externalId", value.clone()).unwrap_err(),
            "externalId: expected a UUID",
            "{value}"
        );
    }
    assert!(with("externalId", json!("3F2B8C1E-9D4A-4E6B-8F1A-2C3D4E5F6A7B")).is_ok());
    assert!(with("externalId", json!("00000000-0000-0000-0000-000000000000")).is_ok());
}

#[test]
fn sdk_conversation_ref_is_never_validated() {
    for value in [json!(null), json!([1, {"a": null}]), json!("x"), json!({})] {
        assert!(with("sdkConversationRef", value).is_ok());
    }
    // Skipped values have no depth limit, as in JSON.parse.
    let doc = base().to_string();
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let json = format!("{{\"sdkConversationRef\":{deep},\"x\":{deep},{}", &doc[1..]);
    assert!(validate_conversation(&json).is_ok());
}

#[test]
fn history_is_a_required_array() {
    assert_eq!(without("history").unwrap_err(), "history: required");
    for value in [json!({}), json!(null), json!("[]")] {
        assert_eq!(
            with("history", value).unwrap_err(),
            "history: expected an array"
        );
    }
}

#[test]
fn history_items_are_objects() {
    let mut doc = base();
    doc["history"][1] = json!([]);
    assert_eq!(check(&doc).unwrap_err(), "history[1]: expected an object");
    doc["history"][1] = json!(null);
    assert_eq!(check(&doc).unwrap_err(), "history[1]: expected an object");
}

#[test]
fn user_id_is_a_required_non_empty_string() {
    assert_eq!(without("userId").unwrap_err(), "userId: required");
    for value in [json!(""), json!(5), json!(null), json!(["u"])] {
        assert_eq!(
            with("userId", value).unwrap_err(),
            "userId: expected a non-empty string"
        );
    }
}

#[test]
fn tenant_id_is_a_required_non_empty_string() {
    assert_eq!(without("tenantId").unwrap_err(), "tenantId: required");
    for value in [json!(""), json!(false), json!(null)] {
        assert_eq!(
            with("tenantId", value).unwrap_err(),
            "tenantId: expected a non-empty string"
        );
    }
}

#[test]
fn created_at_is_a_required_timestamp() {
    assert_eq!(without("createdAt").unwrap_err(), "createdAt: required");
    let mut doc = base();
    doc["createdAt"] = json!("2026-02-22");
    assert_eq!(check(&doc).unwrap_err(), format!("createdAt: {TS_ERR}"));
    doc["createdAt"] = json!(null);
    assert_eq!(check(&doc).unwrap_err(), format!("createdAt: {TS_ERR}"));
}

#[test]
fn updated_at_is_a_required_timestamp() {
    assert_eq!(without("updatedAt").unwrap_err(), "updatedAt: required");
    assert_eq!(
        with("updatedAt", json!(1771754400000u64)).unwrap_err(),
        format!("updatedAt: {TS_ERR}")
    );
}

#[test]
fn timestamp_forms() {
    let ms = |ts| with_timestamp(ts).map(|s| s.updated_at_ms);
    assert_eq!(ms("2024-02-29T00:00:00.000Z"), Ok(1_709_164_800_000));
    assert_eq!(ms("2026-02-22T10:00:00Z"), Ok(1_771_754_400_000));
    assert_eq!(ms("2026-02-22T10:00:00.1Z"), Ok(1_771_754_400_100));
    assert_eq!(ms("2026-02-22T10:00:00.123456Z"), Ok(1_771_754_400_123));
    assert_eq!(ms("2000-02-29T23:59:59.999Z"), Ok(951_868_799_999));
    // Seconds are optional, as in Zod's `datetime()`.
    assert_eq!(ms("2026-02-22T10:00Z"), Ok(1_771_754_400_000));
    assert_eq!(ms("2026-02-22T10:07Z"), Ok(1_771_754_820_000));
    for bad in [
        "2023-02-29T00:00:00.000Z",
        "1900-02-29T00:00:00.000Z",
        "2026-02-22T10:00:00+00:00",
        "2026-02-22T10:00:00.000+00:00",
        "2026-02-22 10:00:00Z",
        "2026-02-22t10:00:00Z",
        "2026-02-22T10:00:00z",
        "2026-02-22T10Z",
        "2026-02-22T10:0Z",
        "2026-02-22T10:00.5Z",
        "2026-02-22T10:00:Z",
        "2026-02-22T10:00:0Z",
        "2026-02-22T10:60Z",
        "2026-02-22T10:00:00.Z",
        "2026-02-22T10:00:00",
        "2026-02-22T24:00:00Z",
        "2026-02-22T10:60:00Z",
        "2026-02-22T10:00:60Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-04-00T00:00:00Z",
        "+2026-02-22T10:00:00Z",
        "20260-02-22T10:00:00Z",
        "2026-2-22T10:00:00Z",
        "2026-02-22T10:00:00.12a3Z",
        " 2026-02-22T10:00:00Z",
        "",
    ] {
        assert_eq!(ms(bad), Err(format!("updatedAt: {TS_ERR}")), "{bad}");
    }
}

fn parse_utc_timestamp(s: &str) -> Option<i64> {
    timestamp::parse_utc_bytes(s.as_bytes())
}

#[test]
fn parse_utc_timestamp_values() {
    assert_eq!(parse_utc_timestamp("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_utc_timestamp("2026-02-22T10:00:00.000Z"),
        Some(1_771_754_400_000)
    );
    assert_eq!(parse_utc_timestamp("1969-12-31T23:59:59.999Z"), Some(-1));
    assert_eq!(
        parse_utc_timestamp("0000-01-01T00:00:00Z"),
        Some(-62_167_219_200_000)
    );
    assert_eq!(
        parse_utc_timestamp("9999-12-31T23:59:59.999Z"),
        Some(253_402_300_799_999)
    );
    assert_eq!(parse_utc_timestamp("2023-02-29T00:00:00Z"), None);
    assert_eq!(parse_utc_timestamp("2026-02-22T10:00:00+00:00"), None);
}

#[test]
fn status_is_a_required_enum() {
    assert_eq!(without("status").unwrap_err(), "status: required");
    for value in [json!("Active"), json!("done"), json!(null), json!(1)] {
        assert_eq!(
            with("status", value).unwrap_err(),
            "status: expected 'active' | 'completed' | 'abandoned'"
        );
    }
    for value in ["active", "completed", "abandoned"] {
        assert!(with("status", json!(value)).is_ok());
    }
}

#[test]
fn workflow_id_is_an_optional_uuid() {
    assert!(with("workflowId", json!(UUID_A)).is_ok());
    for value in [json!("wf-1"), json!(null), json!(1)] {
        assert_eq!(
            with("workflowId", value).unwrap_err(),
            "workflowId: expected a UUID"
        );
    }
}

#[test]
fn current_step_is_an_optional_non_negative_integer() {
    let step = |raw: &str| {
        let doc = base().to_string();
        let json = format!("{},\"currentStep\":{raw}}}", &doc[..doc.len() - 1]);
        validate_conversation(&json).map_err(|e| e.message)
    };
    // Any integer, as Zod's `int()` (`Number.isInteger`): past 2^53 too.
    for ok in [
        "0",
        "3",
        "3.0",
        "1e2",
        "-0",
        "9007199254740991",
        "9007199254740992",
        "1e300",
    ] {
        assert!(step(ok).is_ok(), "{ok}");
    }
    for bad in [
        "3.5", "-1", "-0.5", "1e400", "-1e400", "\"3\"", "null", "[]", "true",
    ] {
        assert_eq!(
            step(bad).unwrap_err(),
            "currentStep: expected an integer >= 0",
            "{bad}"
        );
    }
}

#[test]
fn step_data_and_metadata_are_optional_objects() {
    for field in ["stepData", "metadata"] {
        assert!(with(field, json!({"a": [1]})).is_ok());
        for value in [json!(null), json!([]), json!("{}"), json!(1)] {
            assert_eq!(
                with(field, value).unwrap_err(),
                format!("{field}: expected an object")
            );
        }
    }
}

#[test]
fn message_id_is_a_required_string() {
    assert_eq!(without_msg("id").unwrap_err(), "history[1].id: required");
    for value in [json!(1), json!(null)] {
        assert_eq!(
            with_msg("id", value).unwrap_err(),
            "history[1].id: expected a string"
        );
    }
}

#[test]
fn message_role_is_a_required_enum() {
    assert_eq!(
        without_msg("role").unwrap_err(),
        "history[1].role: required"
    );
    for value in [json!("bot"), json!(null), json!("User")] {
        assert_eq!(
            with_msg("role", value).unwrap_err(),
            "history[1].role: expected 'user' | 'agent'"
        );
    }
}

#[test]
fn message_type_is_a_required_enum() {
    assert_eq!(
        without_msg("type").unwrap_err(),
        "history[1].type: required"
    );
    for value in [json!("card"), json!(null)] {
        assert_eq!(
            with_msg("type", value).unwrap_err(),
            "history[1].type: expected 'text' | 'adaptiveCard' | 'typing' | 'error'"
        );
    }
    for value in ["text", "adaptiveCard", "typing", "error"] {
        assert!(with_msg("type", json!(value)).is_ok());
    }
}

#[test]
fn message_text_is_an_optional_string() {
    assert!(without_msg("text").is_ok());
    assert!(with_msg("text", json!("")).is_ok());
    for value in [json!(null), json!(1), json!(["x"])] {
        assert_eq!(
            with_msg("text", value).unwrap_err(),
            "history[1].text: expected a string"
        );
    }
}

#[test]
fn message_card_payload_is_an_optional_object() {
    assert!(without_msg("cardPayload").is_ok());
    for value in [json!(null), json!([]), json!("{}")] {
        assert_eq!(
            with_msg("cardPayload", value).unwrap_err(),
            "history[1].cardPayload: expected an object"
        );
    }
}

#[test]
fn message_timestamp_is_a_required_timestamp() {
    assert_eq!(
        without_msg("timestamp").unwrap_err(),
        "history[1].timestamp: required"
    );
    let mut doc = base();
    doc["history"][0]["timestamp"] = json!("2026-02-22T10:00:00.000+01:00");
    assert_eq!(
        check(&doc).unwrap_err(),
        format!("history[0].timestamp: {TS_ERR}")
    );
}
