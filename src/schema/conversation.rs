//! One streaming pass over a stored conversation. Leaf values are taken as
//! borrowed `RawValue`s: serde_json's skipper checks their syntax exactly as
//! JSON.parse does (control characters refused, lone surrogates accepted),
//! and nothing is unescaped or copied unless a check needs the text.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::literal::{
    is_non_empty_string, is_object, is_one_of, is_step, is_string, is_timestamp, is_uuid,
    string_content, timestamp, well_formed_text,
};
use super::ConversationSummary;

const STRING: &str = "expected a string";
const NON_EMPTY: &str = "expected a non-empty string";
const UUID: &str = "expected a UUID";
const TIMESTAMP: &str = "expected an ISO 8601 UTC timestamp like 2026-02-22T10:00:00.000Z";
const OBJECT: &str = "expected an object";
const ARRAY: &str = "expected an array";
const STATUS: &str = "expected 'active' | 'completed' | 'abandoned'";
const ROLE: &str = "expected 'user' | 'agent'";
const MESSAGE_TYPE: &str = "expected 'text' | 'adaptiveCard' | 'typing' | 'error'";
const STEP: &str = "expected an integer >= 0";
const USER_ID_UNICODE: &str = "expected a non-empty string without lone surrogates";
const REQUIRED: &str = "required";
const DUPLICATE: &str = "duplicate field";

const STATUSES: &[&str] = &["active", "completed", "abandoned"];
const ROLES: &[&str] = &["user", "agent"];
const MESSAGE_TYPES: &[&str] = &["text", "adaptiveCard", "typing", "error"];

/// Holds the first validation message; serde errors only carry the abort.
#[derive(Default)]
pub(super) struct Ctx {
    first: Cell<Option<String>>,
}

impl Ctx {
    /// Records `path: what` unless an inner value already failed, and aborts.
    fn fail<E: de::Error>(&self, path: Path<'_>, what: &str) -> E {
        let first = self
            .first
            .take()
            .unwrap_or_else(|| format!("{path}: {what}"));
        self.first.set(Some(first));
        E::custom("")
    }

    pub(super) fn take(&self) -> Option<String> {
        self.first.take()
    }
}

/// Where a failure is: `conversation`, `userId`, `history[3]`, `history[3].role`.
#[derive(Clone, Copy)]
struct Path<'a> {
    item: Option<usize>,
    field: Option<&'a str>,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        item: None,
        field: None,
    };

    fn top(field: &'a str) -> Self {
        Path {
            item: None,
            field: Some(field),
        }
    }

    fn item(index: usize) -> Self {
        Path {
            item: Some(index),
            field: None,
        }
    }

    fn field(self, field: &'a str) -> Path<'a> {
        Path {
            field: Some(field),
            ..self
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.item, self.field) {
            (None, None) => f.write_str("conversation"),
            (None, Some(field)) => f.write_str(field),
            (Some(i), None) => write!(f, "history[{i}]"),
            (Some(i), Some(field)) => write!(f, "history[{i}].{field}"),
        }
    }
}

/// The known fields of one object kind, each with its bit for duplicate checks.
trait Field: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn bit(self) -> u32;
}

macro_rules! fields {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum $ty { $($variant),* }
        impl Field for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),*];
            fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
            fn bit(self) -> u32 {
                1 << self as u32
            }
        }
    };
}

fields!(Conv {
    ExternalId = "externalId",
    SdkConversationRef = "sdkConversationRef",
    History = "history",
    UserId = "userId",
    TenantId = "tenantId",
    CreatedAt = "createdAt",
    UpdatedAt = "updatedAt",
    Status = "status",
    WorkflowId = "workflowId",
    CurrentStep = "currentStep",
    StepData = "stepData",
    Metadata = "metadata",
});

fields!(Msg {
    Id = "id",
    Role = "role",
    Type = "type",
    Text = "text",
    CardPayload = "cardPayload",
    Timestamp = "timestamp",
});

const CONV_REQUIRED: [Conv; 7] = [
    Conv::ExternalId,
    Conv::History,
    Conv::UserId,
    Conv::TenantId,
    Conv::CreatedAt,
    Conv::UpdatedAt,
    Conv::Status,
];
const MSG_REQUIRED: [Msg; 4] = [Msg::Id, Msg::Role, Msg::Type, Msg::Timestamp];

/// The keys met so far in one object; unknown ones are only kept once one shows up.
struct Keys<'de> {
    scope: Path<'static>,
    known: u32,
    unknown: Option<HashSet<Cow<'de, [u8]>>>,
}

impl<'de> Keys<'de> {
    fn new(scope: Path<'static>) -> Self {
        Keys {
            scope,
            known: 0,
            unknown: None,
        }
    }

    /// The known field `key` names, None for an unknown one; a repeat aborts.
    fn next<F: Field, E: de::Error>(
        &mut self,
        ctx: &Ctx,
        key: &'de RawValue,
    ) -> Result<Option<F>, E> {
        let name = string_content(key.get()).unwrap_or(Cow::Borrowed(b""));
        if let Some(&field) = F::ALL.iter().find(|f| f.name().as_bytes() == &*name) {
            if self.known & field.bit() != 0 {
                return Err(ctx.fail(self.scope.field(field.name()), DUPLICATE));
            }
            self.known |= field.bit();
            return Ok(Some(field));
        }
        let unknown = self.unknown.get_or_insert_with(HashSet::new);
        if unknown.contains(&*name) {
            return Err(ctx.fail(self.scope.field(&short_name(&name)), DUPLICATE));
        }
        unknown.insert(name);
        Ok(None)
    }

    fn missing<F: Field>(&self, required: &[F]) -> Option<F> {
        required.iter().copied().find(|f| self.known & f.bit() == 0)
    }
}

/// A field name fit for a message: lossy, escaped, and cut if long.
fn short_name(name: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(name);
    let mut short: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        short.push('…');
    }
    short
}

fn want(ok: bool, expected: &'static str) -> Result<(), &'static str> {
    if ok {
        Ok(())
    } else {
        Err(expected)
    }
}

/// Validates the whole document; the first failure is left in `ctx`.
pub(super) fn validate(json: &str, ctx: &Ctx) -> Result<ConversationSummary, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let summary = (&mut de)
        .deserialize_map(ConversationVisitor { ctx })
        .map_err(|_: serde_json::Error| ctx.fail(Path::ROOT, OBJECT))?;
    de.end()?;
    Ok(summary)
}

struct ConversationVisitor<'c> {
    ctx: &'c Ctx,
}

impl<'de> Visitor<'de> for ConversationVisitor<'_> {
    type Value = ConversationSummary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a conversation object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut keys = Keys::new(Path::ROOT);
        let mut user = None;
        let mut external_id = None;
        let mut updated_at_ms = None;
        let mut has_live_ref = false;
        while let Some(key) = map.next_key::<&'de RawValue>()? {
            let Some(field) = keys.next::<Conv, A::Error>(ctx, key)? else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match field {
                Conv::SdkConversationRef => {
                    has_live_ref = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Conv::History => map.next_value_seed(HistorySeed { ctx })?,
                _ => {
                    let raw = map.next_value::<&'de RawValue>()?.get();
                    let checked = match field {
                        Conv::ExternalId => {
                            external_id = well_formed_text(raw);
                            want(is_uuid(raw), UUID)
                        }
                        Conv::WorkflowId => want(is_uuid(raw), UUID),
                        Conv::UserId => {
                            user = well_formed_text(raw);
                            match user {
                                Some(_) => Ok(()),
                                None if is_non_empty_string(raw) => Err(USER_ID_UNICODE),
                                None => Err(NON_EMPTY),
                            }
                        }
                        Conv::TenantId => want(is_non_empty_string(raw), NON_EMPTY),
                        Conv::CreatedAt => want(is_timestamp(raw), TIMESTAMP),
                        Conv::UpdatedAt => {
                            updated_at_ms = timestamp(raw);
                            want(updated_at_ms.is_some(), TIMESTAMP)
                        }
                        Conv::Status => want(is_one_of(raw, STATUSES), STATUS),
                        Conv::CurrentStep => want(is_step(raw), STEP),
                        Conv::StepData | Conv::Metadata => want(is_object(raw), OBJECT),
                        Conv::SdkConversationRef | Conv::History => Ok(()),
                    };
                    if let Err(expected) = checked {
                        return Err(ctx.fail(Path::top(field.name()), expected));
                    }
                }
            }
        }
        if let Some(field) = keys.missing(&CONV_REQUIRED) {
            return Err(ctx.fail(Path::top(field.name()), REQUIRED));
        }
        match (user, external_id, updated_at_ms) {
            (Some(user_id), Some(external_id), Some(updated_at_ms)) => Ok(ConversationSummary {
                user_id,
                external_id,
                updated_at_ms,
                has_live_ref,
            }),
            // Unreachable: both are required and a bad value has already aborted.
            _ => Err(ctx.fail(Path::ROOT, OBJECT)),
        }
    }
}

struct HistorySeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for HistorySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ctx = self.ctx;
        d.deserialize_seq(self)
            .map_err(|_: D::Error| ctx.fail(Path::top(Conv::History.name()), ARRAY))
    }
}

impl<'de> Visitor<'de> for HistorySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(MessageSeed {
                ctx: self.ctx,
                index,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
}

struct MessageSeed<'c> {
    ctx: &'c Ctx,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let (ctx, index) = (self.ctx, self.index);
        d.deserialize_map(self)
            .map_err(|_: D::Error| ctx.fail(Path::item(index), OBJECT))
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let scope = Path::item(self.index);
        let mut keys = Keys::new(scope);
        while let Some(key) = map.next_key::<&'de RawValue>()? {
            let Some(field) = keys.next::<Msg, A::Error>(ctx, key)? else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let raw = map.next_value::<&'de RawValue>()?.get();
            let checked = match field {
                Msg::Id | Msg::Text => want(is_string(raw), STRING),
                Msg::Role => want(is_one_of(raw, ROLES), ROLE),
                Msg::Type => want(is_one_of(raw, MESSAGE_TYPES), MESSAGE_TYPE),
                Msg::CardPayload => want(is_object(raw), OBJECT),
                Msg::Timestamp => want(is_timestamp(raw), TIMESTAMP),
            };
            if let Err(expected) = checked {
                return Err(ctx.fail(scope.field(field.name()), expected));
            }
        }
        match keys.missing(&MSG_REQUIRED) {
            Some(field) => Err(ctx.fail(scope.field(field.name()), REQUIRED)),
            None => Ok(()),
        }
    }
}
