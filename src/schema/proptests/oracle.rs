//! The V8 oracle, and serde_json where it agrees with JSON.parse.

use super::*;

// ------------------------------------------------------------------ the V8 oracle

/// Reads one request per line and answers one JSON string per line: "ok" or what differs.
pub(super) const V8_CHECK: &str = r#"
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
pub(super) struct V8 {
    pub(super) child: Child,
    pub(super) requests: Option<ChildStdin>,
    pub(super) verdicts: BufReader<ChildStdout>,
}

impl V8 {
    pub(super) fn start() -> V8 {
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
    pub(super) fn disagreement(
        &mut self,
        doc: &str,
        summary: &ConversationSummary,
    ) -> Option<String> {
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
pub(super) fn serde_value_diverges(error: &serde_json::Error) -> bool {
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
pub(super) fn serde_disagreement(doc: &str, summary: &ConversationSummary) -> Option<String> {
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
pub(super) fn check(v8: &RefCell<V8>, doc: &str) -> Result<bool, TestCaseError> {
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
