//! Property tests of `validate_conversation` over generated JSON text: it never panics, and
//! every document it accepts is one V8's `JSON.parse` reads, with the `userId`, `externalId`,
//! `updatedAt` and `sdkConversationRef` the summary reports.
//!
//! V8 is the oracle: one `node` child process per test answers each accepted document, so a
//! disagreement fails inside the property and proptest shrinks it. serde_json stands in only
//! where it agrees with JSON.parse: its skipper for syntax (iterative, any depth, lone
//! surrogates, any number), and its `Value` except for the refusals listed in
//! `serde_value_diverges` (depth 128, lone surrogates, numbers beyond f64).
//!
//! The text is generated, not serialized, so it can hold what a `serde_json::Value` cannot:
//! lone surrogate escapes, 300-digit numbers, `1e400`, repeated keys, odd whitespace, nesting
//! thousands deep, and byte-level damage. Cases: `PROPTEST_CASES` (else each test's own
//! default); a failure prints the shrunk input and the `PROPTEST_RNG_SEED` that replays it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{
    Config, RngSeed, TestCaseError, TestCaseResult, TestError, TestRunner,
};
use serde::de::{Deserialize, IgnoredAny};

use super::{validate_conversation, ConversationSummary};

// ------------------------------------------------------------------ the V8 oracle

/// Reads one request per line and answers one JSON string per line: "ok" or what differs.
const V8_CHECK: &str = r#"
// V8 misreads a fraction of ten or more digits that starts with 0 (.00000000000001 is 10 ms to
// it); Zod and the validator read its first three digits, and so does V8 once it is cut there.
const v8Readable = (timestamp) => typeof timestamp === 'string' ? timestamp.replace(/(\.0\d\d)\d{7,}Z$/, '$1Z') : timestamp;
const lines = require('node:readline').createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const want = JSON.parse(line);
  let verdict = 'ok';
  try {
    const value = JSON.parse(want.doc);
    const show = (v) => (typeof v === 'string' ? JSON.stringify(v).slice(0, 80) : String(v));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) verdict = 'not an object';
    else if (value.userId !== want.userId) verdict = `userId is ${show(value.userId)}`;
    else if (value.externalId !== want.externalId) verdict = `externalId is ${show(value.externalId)}`;
    else if (Date.parse(v8Readable(value.updatedAt)) !== want.updatedAtMs) verdict = `Date.parse(updatedAt) is ${Date.parse(value.updatedAt)}`;
    else if (Object.hasOwn(value, 'sdkConversationRef') !== want.hasLiveRef) verdict = 'sdkConversationRef presence differs';
  } catch (error) {
    verdict = `JSON.parse threw: ${error.message}`;
  }
  process.stdout.write(JSON.stringify(verdict) + '\n');
});
"#;

/// A `node` process running `V8_CHECK`; it exits when its stdin closes.
struct V8 {
    child: Child,
    requests: Option<ChildStdin>,
    verdicts: BufReader<ChildStdout>,
}

impl V8 {
    fn start() -> V8 {
        let mut child = Command::new("node")
            .args(["-e", V8_CHECK])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("these tests ask V8 itself, so they need `node` on PATH (npm test has it)");
        let requests = child.stdin.take();
        let verdicts = BufReader::new(child.stdout.take().expect("piped stdout"));
        V8 {
            child,
            requests,
            verdicts,
        }
    }

    /// What V8 reads differently from `summary`, if anything.
    fn disagreement(&mut self, doc: &str, summary: &ConversationSummary) -> Option<String> {
        let request = serde_json::json!({
            "doc": doc,
            "userId": summary.user_id,
            "externalId": summary.external_id,
            "updatedAtMs": summary.updated_at_ms,
            "hasLiveRef": summary.has_live_ref,
        });
        let requests = self.requests.as_mut().expect("open until drop");
        writeln!(requests, "{request}").expect("write to node");
        requests.flush().expect("flush to node");
        let mut line = String::new();
        let read = self.verdicts.read_line(&mut line).expect("read from node");
        assert!(read > 0, "node exited before answering");
        let verdict: String = serde_json::from_str(&line).expect("node answers a JSON string");
        (verdict != "ok").then_some(verdict)
    }
}

impl Drop for V8 {
    fn drop(&mut self) {
        drop(self.requests.take());
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ the property

/// serde_json's `Value` refuses these where JSON.parse reads the document.
fn serde_value_diverges(error: &serde_json::Error) -> bool {
    let message = error.to_string();
    [
        "recursion limit exceeded",
        "lone leading surrogate",
        "unexpected end of hex escape",
        "invalid unicode code point",
        "number out of range",
    ]
    .iter()
    .any(|known| message.contains(known))
}

/// The serde_json stand-in, where it agrees with JSON.parse.
fn serde_disagreement(doc: &str, summary: &ConversationSummary) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(doc);
    if let Err(error) = IgnoredAny::deserialize(&mut de).and_then(|_| de.end()) {
        return Some(format!("serde_json's skipper refuses it: {error}"));
    }
    let value = match serde_json::from_str::<serde_json::Value>(doc) {
        Ok(value) => value,
        Err(error) if serde_value_diverges(&error) => return None,
        Err(error) => return Some(format!("serde_json refuses it: {error}")),
    };
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    if field("userId") != Some(summary.user_id.as_str()) {
        return Some(format!("serde_json reads userId {:?}", value.get("userId")));
    }
    if field("externalId") != Some(summary.external_id.as_str()) {
        return Some(format!(
            "serde_json reads externalId {:?}",
            value.get("externalId")
        ));
    }
    if value.get("sdkConversationRef").is_some() != summary.has_live_ref {
        return Some("serde_json sees sdkConversationRef differently".into());
    }
    None
}

/// Validates `doc` (a panic fails the case); an accepted one must read alike in V8 and serde.
/// Returns whether it was accepted.
fn check(v8: &RefCell<V8>, doc: &str) -> Result<bool, TestCaseError> {
    let Ok(summary) = validate_conversation(doc) else {
        return Ok(false);
    };
    if let Some(why) = serde_disagreement(doc, &summary) {
        return Err(TestCaseError::fail(format!("accepted, but {why}")));
    }
    if let Some(why) = v8.borrow_mut().disagreement(doc, &summary) {
        return Err(TestCaseError::fail(format!(
            "accepted as {summary:?}, but in V8 {why}"
        )));
    }
    Ok(true)
}

/// A generated document, shown as its text when a case fails.
#[derive(Clone)]
struct Doc(String);

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} bytes) {:?}", self.0.len(), self.0)
    }
}

/// Runs `property` over `strategy`: `default_cases` unless PROPTEST_CASES says otherwise, from
/// PROPTEST_RNG_SEED or a fresh seed that a failure prints.
fn run<S: Strategy>(default_cases: u32, strategy: S, property: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: fmt::Debug,
{
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => RandomState::new().hash_one(std::time::SystemTime::now()),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, property) {
        Ok(()) => {}
        Err(TestError::Fail(why, minimal)) => {
            panic!("{why}\nminimal failing input: {minimal:?}\nreplay: PROPTEST_RNG_SEED={seed}")
        }
        Err(TestError::Abort(why)) => panic!("aborted: {why} (PROPTEST_RNG_SEED={seed})"),
    }
}

// ------------------------------------------------------------------ JSON text

#[derive(Clone, Debug)]
enum Json {
    /// A literal, a number or a string: written as it is, whatever it is.
    Token(String),
    Array(Vec<Json>),
    /// Keys are string literals, quotes and escapes included; repeats are kept.
    Object(Vec<(String, Json)>),
}

/// The whitespace between tokens, taken in turn from a generated cycle.
struct Spacing<'a> {
    cycle: &'a [&'static str],
    next: usize,
}

impl Spacing<'_> {
    fn take(&mut self) -> &'static str {
        let ws = self
            .cycle
            .get(self.next % self.cycle.len().max(1))
            .unwrap_or(&"");
        self.next += 1;
        ws
    }
}

impl Json {
    fn write(&self, out: &mut String, ws: &mut Spacing<'_>) {
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

    fn render(&self, spacing: &[&'static str]) -> String {
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

fn spacing() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        select(vec!["", "", "", " ", "\n", "\t", "\r\n", "\r", " \t\n  "]),
        1..6,
    )
}

/// Which strings a generator may write.
#[derive(Clone, Copy)]
enum Text {
    /// Lone surrogate escapes included (JSON.parse reads them).
    WellFormed,
    /// Nothing that decodes to a lone surrogate: a Rust `String` can hold it.
    Unicode,
    /// Also what JSON.parse refuses: raw control characters, bad escapes.
    Any,
}

fn plain_char() -> impl Strategy<Value = String> {
    any::<char>()
        .prop_filter("needs an escape", |c| !matches!(c, '"' | '\\') && *c >= ' ')
        .prop_map(String::from)
}

fn segment(text: Text) -> BoxedStrategy<String> {
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
fn string_literal(text: Text, min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(segment(text), min..min + 5)
        .prop_map(|segments| format!("\"{}\"", segments.concat()))
}

fn number() -> impl Strategy<Value = String> {
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

const CONVERSATION_FIELDS: &[&str] = &[
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
const MESSAGE_FIELDS: &[&str] = &["id", "role", "type", "text", "cardPayload", "timestamp"];

/// `"name"`, or with the character at `escape` written as a `\u` escape.
fn key_literal(name: &str, escape: Option<Index>) -> String {
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

fn key() -> impl Strategy<Value = String> {
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

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(vec!["null", "true", "false"]).prop_map(String::from),
        3 => number(),
        3 => string_literal(Text::Any, 0),
        1 => select(vec!["nul", "True", "undefined", "'a'", "", "{", "]"]).prop_map(String::from),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
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
fn free_value() -> impl Strategy<Value = Json> {
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
fn free_object(inner: impl Strategy<Value = Json>) -> impl Strategy<Value = Json> {
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

fn uuid_literal() -> impl Strategy<Value = String> {
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

fn timestamp_literal() -> impl Strategy<Value = String> {
    (
        0u32..=9999,
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        0u32..=59,
        prop_oneof![Just(String::new()), "\\.[0-9]{1,3}", "\\.[0-9]{4,25}"],
        prop::option::weighted(0.1, any::<Index>()),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, escape)| {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let last = match mo {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let d = d.min(last);
            key_literal(
                &format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z"),
                escape,
            )
        })
}

fn one_of_literal(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    (select(options), prop::option::weighted(0.1, any::<Index>()))
        .prop_map(|(name, escape)| key_literal(name, escape))
}

/// One field of an object as generated: `name` is the logical field name, `""` for unknown.
#[derive(Clone, Debug)]
struct Field {
    name: &'static str,
    key: String,
    value: Json,
}

impl Field {
    fn new(name: &'static str, value: String) -> Field {
        Field::tree(name, Json::Token(value))
    }

    fn tree(name: &'static str, value: Json) -> Field {
        Field {
            name,
            key: format!("\"{name}\""),
            value,
        }
    }
}

fn unknown_fields() -> impl Strategy<Value = Vec<Field>> {
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

fn message() -> impl Strategy<Value = Vec<Field>> {
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
fn conversation() -> impl Strategy<Value = Vec<Field>> {
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

fn object(fields: Vec<Field>) -> Json {
    Json::Object(fields.into_iter().map(|f| (f.key, f.value)).collect())
}

// ------------------------------------------------------------------ mutations

/// One change to a valid conversation: to a top-level field, a message's field, or the text.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Target, Index, Json),
    Remove(Target, Index),
    /// The field again at the end, with its own value or another.
    Repeat(Target, Index, Option<Json>),
    Rename(Target, Index, String),
    DeleteText(Spot, usize),
    InsertText(Spot, &'static str),
    RepeatText(Spot, usize),
}

/// Where a text edit lands: the ends of the document and token boundaries are where a
/// validator's bookkeeping goes wrong, so they are picked as often as any byte.
#[derive(Clone, Copy, Debug)]
enum Spot {
    Start,
    End,
    /// Before the n-th of `{}[]:,"`.
    Structural(Index),
    Anywhere(Index),
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        1 => Just(Spot::Start),
        1 => Just(Spot::End),
        3 => any::<Index>().prop_map(Spot::Structural),
        3 => any::<Index>().prop_map(Spot::Anywhere),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Conversation,
    Message(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let target = prop_oneof![
        Just(Target::Conversation),
        any::<Index>().prop_map(Target::Message)
    ];
    let token = select(vec![
        "\"",
        "\\",
        ",",
        "{",
        "}",
        "[",
        "]",
        ":",
        "\\ud800",
        "\"\\ud800\"",
        " ",
        "1e400",
        "null",
        "\"userId\":\"u\",",
        "\u{0}",
        "\n",
        "\"\"",
        "0",
        "-",
        "Z",
        "T",
        ".",
        "\\u0000",
        "😀",
    ]);
    prop_oneof![
        3 => (target.clone(), any::<Index>(), json_value()).prop_map(|(t, i, v)| Mutation::Replace(t, i, v)),
        2 => (target.clone(), any::<Index>()).prop_map(|(t, i)| Mutation::Remove(t, i)),
        2 => (target.clone(), any::<Index>(), prop::option::of(json_value()))
            .prop_map(|(t, i, v)| Mutation::Repeat(t, i, v)),
        1 => (target, any::<Index>(), key()).prop_map(|(t, i, k)| Mutation::Rename(t, i, k)),
        2 => (spot(), 1usize..8).prop_map(|(at, n)| Mutation::DeleteText(at, n)),
        2 => (spot(), token).prop_map(|(at, t)| Mutation::InsertText(at, t)),
        1 => (spot(), 1usize..16).prop_map(|(at, n)| Mutation::RepeatText(at, n)),
    ]
}

/// The fields `target` names in `conversation`, if there are any.
fn fields_of(conversation: &mut [Field], target: Target) -> Option<&mut Vec<(String, Json)>> {
    match target {
        Target::Conversation => None,
        Target::Message(which) => {
            let history = conversation.iter_mut().find(|f| f.name == "history")?;
            let Json::Array(messages) = &mut history.value else {
                return None;
            };
            if messages.is_empty() {
                return None;
            }
            let at = which.index(messages.len());
            match &mut messages[at] {
                Json::Object(fields) => Some(fields),
                _ => None,
            }
        }
    }
}

fn mutate_fields(fields: &mut Vec<(String, Json)>, mutation: &Mutation) {
    if fields.is_empty() {
        return;
    }
    let len = fields.len();
    match mutation {
        Mutation::Replace(_, at, value) => fields[at.index(len)].1 = value.clone(),
        Mutation::Remove(_, at) => {
            fields.remove(at.index(fields.len()));
        }
        Mutation::Repeat(_, at, value) => {
            let (key, old) = fields[at.index(fields.len())].clone();
            fields.push((key, value.clone().unwrap_or(old)));
        }
        Mutation::Rename(_, at, key) => fields[at.index(len)].0 = key.clone(),
        _ => {}
    }
}

/// The byte offset `spot` names in `text`, on a character boundary.
fn offset(text: &str, spot: Spot) -> usize {
    let mut at = match spot {
        Spot::Start => 0,
        Spot::End => text.len(),
        Spot::Anywhere(at) => at.index(text.len() + 1),
        Spot::Structural(which) => {
            let structural: Vec<usize> = text
                .bytes()
                .enumerate()
                .filter(|(_, b)| b"{}[]:,\"".contains(b))
                .map(|(i, _)| i)
                .collect();
            if structural.is_empty() {
                0
            } else {
                structural[which.index(structural.len())]
            }
        }
    };
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate_text(text: &mut String, mutation: &Mutation) {
    match mutation {
        Mutation::DeleteText(at, len) => {
            let start = offset(text, *at);
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(start..end, "");
        }
        Mutation::InsertText(at, token) => {
            let at = offset(text, *at);
            text.insert_str(at, token);
        }
        Mutation::RepeatText(at, len) => {
            let start = offset(text, *at);
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let span = text[start..end].to_owned();
            text.insert_str(end, &span);
        }
        _ => {}
    }
}

/// Applies the structural mutations, renders, then applies the textual ones.
fn mutated(
    mut conversation: Vec<Field>,
    mutations: &[Mutation],
    spacing: &[&'static str],
) -> String {
    let mut top: Vec<(String, Json)> = Vec::new();
    let mut structural = Vec::new();
    for mutation in mutations {
        match mutation {
            Mutation::Replace(target, ..)
            | Mutation::Remove(target, ..)
            | Mutation::Repeat(target, ..)
            | Mutation::Rename(target, ..) => structural.push((*target, mutation)),
            _ => {}
        }
    }
    for (target, mutation) in &structural {
        if let Some(fields) = fields_of(&mut conversation, *target) {
            mutate_fields(fields, mutation);
        }
    }
    top.extend(conversation.into_iter().map(|f| (f.key, f.value)));
    for (target, mutation) in &structural {
        if matches!(target, Target::Conversation) {
            mutate_fields(&mut top, mutation);
        }
    }
    let mut text = Json::Object(top).render(spacing);
    for mutation in mutations {
        mutate_text(&mut text, mutation);
    }
    text
}

// ------------------------------------------------------------------ deep nesting

#[derive(Clone, Copy, Debug)]
enum Nest {
    Arrays,
    Objects,
    Mixed,
}

/// `depth` levels of brackets around `null`; unbalanced drops the last closing bracket.
fn deep_value(depth: usize, nest: Nest, balanced: bool) -> String {
    let mut open = String::new();
    let mut close = Vec::with_capacity(depth);
    for level in 0..depth {
        let array = match nest {
            Nest::Arrays => true,
            Nest::Objects => false,
            Nest::Mixed => level % 3 != 0,
        };
        if array {
            open.push('[');
            close.push(']');
        } else {
            open.push_str("{\"k\":");
            close.push('}');
        }
    }
    if !balanced {
        close.remove(0);
    }
    open.push_str("null");
    open.extend(close.iter().rev());
    open
}

/// Where the deep value goes. The free-form places take any JSON (what the ioredis + Zod store
/// and JSON.parse take); the typed ones must refuse it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Metadata,
    StepData,
    LiveRef,
    UnknownField,
    CardPayload,
    UnknownMessageField,
    UserId,
    Text,
    History,
    WholeDocument,
}

impl Place {
    const ALL: [Place; 10] = [
        Place::Metadata,
        Place::StepData,
        Place::LiveRef,
        Place::UnknownField,
        Place::CardPayload,
        Place::UnknownMessageField,
        Place::UserId,
        Place::Text,
        Place::History,
        Place::WholeDocument,
    ];

    fn free_form(self) -> bool {
        matches!(
            self,
            Place::Metadata
                | Place::StepData
                | Place::LiveRef
                | Place::UnknownField
                | Place::CardPayload
                | Place::UnknownMessageField
        )
    }
}

#[derive(Clone, Debug)]
struct Deep {
    doc: Doc,
    place: Place,
    depth: usize,
    balanced: bool,
}

fn set_field(fields: &mut Vec<(String, Json)>, name: &str, value: Json) {
    let key = format!("\"{name}\"");
    fields.retain(|(k, _)| *k != key);
    fields.push((key, value));
}

fn deep_document(
    conversation: Vec<Field>,
    depth: usize,
    nest: Nest,
    place: Place,
    balanced: bool,
    spacing: &[&'static str],
) -> Deep {
    let deep = deep_value(depth, nest, balanced);
    // Object-typed places get the deep value one level down.
    let wrapped = Json::Token(format!("{{\"deep\":{deep}}}"));
    let mut top: Vec<(String, Json)> = conversation
        .iter()
        .cloned()
        .map(|f| (f.key, f.value))
        .collect();
    let text = match place {
        Place::WholeDocument => deep,
        _ => {
            match place {
                Place::Metadata => set_field(&mut top, "metadata", wrapped),
                Place::StepData => set_field(&mut top, "stepData", wrapped),
                Place::LiveRef => set_field(&mut top, "sdkConversationRef", Json::Token(deep)),
                Place::UnknownField => set_field(&mut top, "x-deep", Json::Token(deep)),
                Place::UserId => set_field(&mut top, "userId", Json::Token(deep)),
                Place::History => set_field(&mut top, "history", Json::Token(deep)),
                Place::CardPayload | Place::UnknownMessageField | Place::Text => {
                    let (name, value) = match place {
                        Place::CardPayload => ("cardPayload", wrapped),
                        Place::UnknownMessageField => ("x-deep", Json::Token(deep)),
                        _ => ("text", Json::Token(deep)),
                    };
                    let mut message: Vec<(String, Json)> = vec![
                        ("\"id\"".into(), Json::Token("\"m\"".into())),
                        ("\"role\"".into(), Json::Token("\"user\"".into())),
                        ("\"type\"".into(), Json::Token("\"text\"".into())),
                        (
                            "\"timestamp\"".into(),
                            Json::Token("\"2026-02-22T10:00:00Z\"".into()),
                        ),
                    ];
                    set_field(&mut message, name, value);
                    let history = top.iter_mut().find(|(k, _)| k == "\"history\"");
                    if let Some((_, Json::Array(messages))) = history {
                        messages.push(Json::Object(message));
                    }
                }
                _ => {}
            }
            Json::Object(top).render(spacing)
        }
    };
    Deep {
        doc: Doc(text),
        place,
        depth,
        balanced,
    }
}

// ------------------------------------------------------------------ the tests

#[test]
fn generated_conversations_are_accepted_and_read_alike_by_v8() {
    let v8 = RefCell::new(V8::start());
    let strategy = (conversation(), spacing()).prop_map(|(c, ws)| Doc(object(c).render(&ws)));
    run(300, strategy, |Doc(doc)| {
        prop_assert!(
            check(&v8, &doc)?,
            "a valid conversation was refused: {:?}",
            validate_conversation(&doc).err()
        );
        Ok(())
    });
}

#[test]
fn mutated_conversations_never_panic_and_what_is_accepted_v8_reads_alike() {
    let v8 = RefCell::new(V8::start());
    let (cases, accepted) = (Cell::new(0u32), Cell::new(0u32));
    let strategy = (
        conversation(),
        prop::collection::vec(mutation(), 1..4),
        spacing(),
    )
        .prop_map(|(c, mutations, ws)| Doc(mutated(c, &mutations, &ws)));
    run(1000, strategy, |Doc(doc)| {
        cases.set(cases.get() + 1);
        if check(&v8, &doc)? {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    eprintln!(
        "mutated conversations: {} of {} accepted",
        accepted.get(),
        cases.get()
    );
    // Not vacuous: mutations that keep a document valid (an unknown field replaced, a text
    // edit in whitespace) must reach the V8 check often enough.
    assert!(
        accepted.get() * 20 >= cases.get(),
        "only {} of {} mutated documents were accepted: the V8 check saw too few",
        accepted.get(),
        cases.get()
    );
}

#[test]
fn arbitrary_json_never_panics_and_what_is_accepted_v8_reads_alike() {
    let v8 = RefCell::new(V8::start());
    let strategy = (
        prop_oneof![
            1 => json_value(),
            3 => prop::collection::vec((key(), json_value()), 0..14).prop_map(Json::Object),
        ],
        spacing(),
    )
        .prop_map(|(json, ws)| Doc(json.render(&ws)));
    run(1000, strategy, |Doc(doc)| check(&v8, &doc).map(|_| ()));
}

#[test]
fn nesting_thousands_deep_is_accepted_where_any_json_goes_and_refused_elsewhere() {
    let v8 = RefCell::new(V8::start());
    let strategy = (
        conversation(),
        1000usize..=3000,
        prop_oneof![Just(Nest::Arrays), Just(Nest::Objects), Just(Nest::Mixed)],
        select(Place::ALL.to_vec()),
        prop::bool::weighted(0.8),
        spacing(),
    )
        .prop_map(|(c, depth, nest, place, balanced, ws)| {
            deep_document(c, depth, nest, place, balanced, &ws)
        });
    run(150, strategy, |deep| {
        let accepted = check(&v8, &deep.doc.0)?;
        let expected = deep.balanced && deep.place.free_form();
        prop_assert_eq!(
            accepted,
            expected,
            "{:?} at depth {} ({}): {:?}",
            deep.place,
            deep.depth,
            if deep.balanced {
                "balanced"
            } else {
                "one bracket short"
            },
            validate_conversation(&deep.doc.0).err()
        );
        Ok(())
    });
}
