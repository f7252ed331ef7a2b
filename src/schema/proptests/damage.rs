//! Mutations of valid conversations, and nesting thousands deep.

use super::*;

// ------------------------------------------------------------------ mutations

/// One change to a valid conversation: to a top-level field, a message's field, or the text.
#[derive(Clone, Debug)]
pub(super) enum Mutation {
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
pub(super) enum Spot {
    Start,
    End,
    /// Before the n-th of `{}[]:,"`.
    Structural(Index),
    Anywhere(Index),
}

pub(super) fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        1 => Just(Spot::Start),
        1 => Just(Spot::End),
        3 => any::<Index>().prop_map(Spot::Structural),
        3 => any::<Index>().prop_map(Spot::Anywhere),
    ]
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    Conversation,
    Message(Index),
}

pub(super) fn mutation() -> impl Strategy<Value = Mutation> {
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
pub(super) fn fields_of(
    conversation: &mut [Field],
    target: Target,
) -> Option<&mut Vec<(String, Json)>> {
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

pub(super) fn mutate_fields(fields: &mut Vec<(String, Json)>, mutation: &Mutation) {
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
pub(super) fn offset(text: &str, spot: Spot) -> usize {
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

pub(super) fn mutate_text(text: &mut String, mutation: &Mutation) {
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
pub(super) fn mutated(
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
pub(super) enum Nest {
    Arrays,
    Objects,
    Mixed,
}

/// `depth` levels of brackets around `null`; unbalanced drops the last closing bracket.
pub(super) fn deep_value(depth: usize, nest: Nest, balanced: bool) -> String {
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
pub(super) enum Place {
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
    pub(super) const ALL: [Place; 10] = [
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

    pub(super) fn free_form(self) -> bool {
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
pub(super) struct Deep {
    pub(super) doc: Doc,
    pub(super) place: Place,
    pub(super) depth: usize,
    pub(super) balanced: bool,
}

pub(super) fn set_field(fields: &mut Vec<(String, Json)>, name: &str, value: Json) {
    let key = format!("\"{name}\"");
    fields.retain(|(k, _)| *k != key);
    fields.push((key, value));
}

pub(super) fn deep_document(
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
