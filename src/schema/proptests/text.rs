//! Generated JSON text and conversations.

use super::*;

// ------------------------------------------------------------------ JSON text

#[derive(Clone, Debug)]
pub(super) enum Json {
    /// A literal, a number or a string: written as it is, whatever it is.
    Token(String),
    Array(Vec<Json>),
    /// Keys are string literals, quotes and escapes included; repeats are kept.
    Object(Vec<(String, Json)>),
}

/// The whitespace between tokens, taken in turn from a generated cycle.
pub(super) struct Spacing<'a> {
    cycle: &'a [&'static str],
    next: usize,
}

impl Spacing<'_> {
    pub(super) fn take(&mut self) -> &'static str {
        let ws = self
            .cycle
            .get(self.next % self.cycle.len().max(1))
            .unwrap_or(&"");
        self.next += 1;
        ws
    }
}

impl Json {
    pub(super) fn write(&self, out: &mut String, ws: &mut Spacing<'_>) {
        match self {
            Json::Token(token) => out.push_str(token),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.take());
                    item.write(out, ws);
                    out.push_str(ws.take());
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.take());
                    out.push_str(key);
                    out.push_str(ws.take());
                    out.push(':');
                    out.push_str(ws.take());
                    value.write(out, ws);
                    out.push_str(ws.take());
                }
                out.push('}');
            }
        }
    }

    pub(super) fn render(&self, spacing: &[&'static str]) -> String {
        let mut ws = Spacing {
            cycle: spacing,
            next: 0,
        };
        let mut out = String::from(ws.take());
        self.write(&mut out, &mut ws);
        out.push_str(ws.take());
        out
    }
}

pub(super) fn spacing() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        select(vec!["", "", "", " ", "\n", "\t", "\r\n", "\r", " \t\n  "]),
        1..6,
    )
}

/// Which strings a generator may write.
#[derive(Clone, Copy)]
pub(super) enum Text {
    /// Lone surrogate escapes included (JSON.parse reads them).
    WellFormed,
    /// Nothing that decodes to a lone surrogate: a Rust `String` can hold it.
    Unicode,
    /// Also what JSON.parse refuses: raw control characters, bad escapes.
    Any,
}

pub(super) fn plain_char() -> impl Strategy<Value = String> {
    any::<char>()
        .prop_filter("needs an escape", |c| !matches!(c, '"' | '\\') && *c >= ' ')
        .prop_map(String::from)
}

pub(super) fn segment(text: Text) -> BoxedStrategy<String> {
    let unicode = prop_oneof![
        6 => "[a-zA-Z0-9 _:*{}.@/-]{1,12}",
        2 => plain_char(),
        1 => select(vec!["😀", "\u{10FFFF}", "\u{FEFF}", "\u{2028}", "é", "\u{7f}"]).prop_map(String::from),
        2 => select(vec![
            "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0000", "\\u00e9",
            "\\uFFFF", "\\uFEFF", "\\u2028", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\udbff\\udfff",
            "\\u003a", "\\u007B",
        ])
        .prop_map(String::from),
        1 => Just("x".repeat(10 * 1024)),
    ];
    let lone = prop_oneof![
        select(vec![
            "\\ud800",
            "\\uDFFF",
            "\\udc00",
            "\\ude00\\ud83d",
            "\\ud800\\ud800",
            "\\ud800x"
        ])
        .prop_map(String::from),
        (0xd800u32..0xe000).prop_map(|unit| format!("\\u{unit:04x}")),
    ];
    let broken = select(vec![
        "\u{0}",
        "\n",
        "\u{1f}",
        "\t",
        "\\x",
        "\\u12",
        "\\U0041",
        "\\'",
        "\\",
        "\\u{41}",
        "\\ud800\\u",
    ])
    .prop_map(String::from);
    match text {
        Text::Unicode => unicode.boxed(),
        Text::WellFormed => prop_oneof![8 => unicode, 1 => lone].boxed(),
        Text::Any => prop_oneof![8 => unicode, 1 => lone, 1 => broken].boxed(),
    }
}

/// A string literal, quotes included; `min` segments at least (1 makes it non-empty).
pub(super) fn string_literal(text: Text, min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(segment(text), min..min + 5)
        .prop_map(|segments| format!("\"{}\"", segments.concat()))
}

pub(super) fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|n| n.to_string()),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
        2 => select(vec![
            "1e400", "-1e400", "1E+400", "1e-400", "-0", "0.0", "1.7976931348623157e308",
            "1.8e308", "9007199254740993", "4.9e-324", "2e-324", "123456789012345678901234567890",
        ])
        .prop_map(String::from),
        1 => "[1-9][0-9]{299,320}",
        2 => "-?[0-9]{1,3}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?",
        1 => select(vec!["01", "1.", ".5", "+1", "-", "1e", "0x10", "NaN", "Infinity", "1_000", "--1"])
            .prop_map(String::from),
    ]
}

pub(super) const CONVERSATION_FIELDS: &[&str] = &[
    "externalId",
    "sdkConversationRef",
    "history",
    "userId",
    "tenantId",
    "createdAt",
    "updatedAt",
    "status",
    "workflowId",
    "currentStep",
    "stepData",
    "metadata",
];
pub(super) const MESSAGE_FIELDS: &[&str] =
    &["id", "role", "type", "text", "cardPayload", "timestamp"];

/// `"name"`, or with the character at `escape` written as a `\u` escape.
pub(super) fn key_literal(name: &str, escape: Option<Index>) -> String {
    let Some(at) = escape.filter(|_| !name.is_empty()) else {
        return format!("\"{name}\"");
    };
    let at = at.index(name.len());
    let mut out = String::from("\"");
    for (i, c) in name.chars().enumerate() {
        if i == at {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

pub(super) fn key() -> impl Strategy<Value = String> {
    let known: Vec<&'static str> = CONVERSATION_FIELDS
        .iter()
        .chain(MESSAGE_FIELDS)
        .copied()
        .collect();
    prop_oneof![
        3 => (select(known), prop::option::of(any::<Index>()))
            .prop_map(|(name, escape)| key_literal(name, escape)),
        2 => string_literal(Text::Any, 0),
    ]
}

pub(super) fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(vec!["null", "true", "false"]).prop_map(String::from),
        3 => number(),
        3 => string_literal(Text::Any, 0),
        1 => select(vec!["nul", "True", "undefined", "'a'", "", "{", "]"]).prop_map(String::from),
    ]
}

pub(super) fn json_value() -> impl Strategy<Value = Json> {
    leaf()
        .prop_map(Json::Token)
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::vec((key(), inner), 0..6).prop_map(Json::Object),
            ]
        })
}

/// Well-formed JSON for the free-form fields (metadata, cardPayload, sdkConversationRef).
pub(super) fn free_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        select(vec!["null", "true", "false", "0", "-1.5e-7", "1e400", "-0"]).prop_map(String::from),
        "[1-9][0-9]{0,40}",
        string_literal(Text::WellFormed, 0),
    ];
    leaf.prop_map(Json::Token)
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                free_object(inner),
            ]
        })
}

/// An object with distinct keys (a repeated key is refused, as it should be).
pub(super) fn free_object(inner: impl Strategy<Value = Json>) -> impl Strategy<Value = Json> {
    prop::collection::btree_map("[a-zA-Z$ ]{0,6}", inner, 0..4).prop_map(|fields| {
        Json::Object(
            fields
                .into_iter()
                .map(|(key, value)| (format!("\"x-{key}\""), value))
                .collect(),
        )
    })
}

// ------------------------------------------------------------------ conversations

pub(super) fn uuid_literal() -> impl Strategy<Value = String> {
    (
        any::<[u8; 16]>(),
        any::<bool>(),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(bytes, upper, escape)| {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            let uuid = if upper { uuid.to_uppercase() } else { uuid };
            key_literal(&uuid, escape)
        })
}

pub(super) fn timestamp_literal() -> impl Strategy<Value = String> {
    (
        0u32..=9999,
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        // Seconds, with or without a fraction, or none (Zod's `HH:MM(:SS(\.\d+)?)?`).
        prop::option::weighted(
            0.9,
            (
                0u32..=59,
                prop_oneof![Just(String::new()), "\\.[0-9]{1,3}", "\\.[0-9]{4,25}"],
            ),
        ),
        prop::option::weighted(0.1, any::<Index>()),
    )
        .prop_map(|(y, mo, d, h, mi, seconds, escape)| {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let last = match mo {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let d = d.min(last);
            let seconds = seconds
                .map(|(s, frac)| format!(":{s:02}{frac}"))
                .unwrap_or_default();
            key_literal(
                &format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}{seconds}Z"),
                escape,
            )
        })
}

pub(super) fn one_of_literal(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    (select(options), prop::option::weighted(0.1, any::<Index>()))
        .prop_map(|(name, escape)| key_literal(name, escape))
}

/// One field of an object as generated: `name` is the logical field name, `""` for unknown.
#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) key: String,
    pub(super) value: Json,
}

impl Field {
    pub(super) fn new(name: &'static str, value: String) -> Field {
        Field::tree(name, Json::Token(value))
    }

    pub(super) fn tree(name: &'static str, value: Json) -> Field {
        Field {
            name,
            key: format!("\"{name}\""),
            value,
        }
    }
}

pub(super) fn unknown_fields() -> impl Strategy<Value = Vec<Field>> {
    prop::collection::btree_map("[a-z]{1,8}", free_value(), 0..2).prop_map(|fields| {
        fields
            .into_iter()
            .map(|(name, value)| Field {
                name: "",
                key: format!("\"x-{name}\""),
                value,
            })
            .collect()
    })
}

pub(super) fn message() -> impl Strategy<Value = Vec<Field>> {
    (
        string_literal(Text::WellFormed, 0),
        one_of_literal(&["user", "agent"]),
        one_of_literal(&["text", "adaptiveCard", "typing", "error"]),
        prop::option::of(string_literal(Text::WellFormed, 0)),
        prop::option::of(free_object(free_value())),
        timestamp_literal(),
        unknown_fields(),
    )
        .prop_map(|(id, role, kind, text, card, timestamp, unknown)| {
            let mut fields = vec![
                Field::new("id", id),
                Field::new("role", role),
                Field::new("type", kind),
                Field::new("timestamp", timestamp),
            ];
            fields.extend(text.map(|text| Field::new("text", text)));
            fields.extend(card.map(|card| Field::tree("cardPayload", card)));
            fields.extend(unknown);
            fields
        })
        .prop_shuffle()
}

/// A valid conversation as its fields, in a random order.
pub(super) fn conversation() -> impl Strategy<Value = Vec<Field>> {
    let required = (
        uuid_literal(),
        prop::collection::vec(message(), 0..4),
        string_literal(Text::Unicode, 1),
        string_literal(Text::WellFormed, 1),
        timestamp_literal(),
        timestamp_literal(),
        one_of_literal(&["active", "completed", "abandoned"]),
    );
    let optional = (
        prop::option::of(uuid_literal()),
        prop::option::of(select(vec![
            "0",
            "3",
            "3.0",
            "1e2",
            "9007199254740991",
            "9007199254740993",
            "1e300",
            "-0",
            "0.0e5",
            "2E0",
        ])),
        prop::option::of(free_object(free_value())),
        prop::option::of(free_object(free_value())),
        prop::option::weighted(0.2, free_value()),
        unknown_fields(),
    );
    (required, optional)
        .prop_map(|(required, optional)| {
            let (external_id, history, user_id, tenant_id, created_at, updated_at, status) =
                required;
            let (workflow_id, step, step_data, metadata, live_ref, unknown) = optional;
            let messages = history
                .into_iter()
                .map(|fields| Json::Object(fields.into_iter().map(|f| (f.key, f.value)).collect()))
                .collect();
            let mut fields = vec![
                Field::new("externalId", external_id),
                Field::tree("history", Json::Array(messages)),
                Field::new("userId", user_id),
                Field::new("tenantId", tenant_id),
                Field::new("createdAt", created_at),
                Field::new("updatedAt", updated_at),
                Field::new("status", status),
            ];
            fields.extend(workflow_id.map(|id| Field::new("workflowId", id)));
            fields.extend(step.map(|step| Field::new("currentStep", step.to_owned())));
            fields.extend(step_data.map(|data| Field::tree("stepData", data)));
            fields.extend(metadata.map(|data| Field::tree("metadata", data)));
            fields.extend(live_ref.map(|value| Field::tree("sdkConversationRef", value)));
            fields.extend(unknown);
            fields
        })
        .prop_shuffle()
}

pub(super) fn object(fields: Vec<Field>) -> Json {
    Json::Object(fields.into_iter().map(|f| (f.key, f.value)).collect())
}
