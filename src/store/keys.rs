//! The key layout, shared with the ioredis store this package replaces.

use crate::error::{StoreError, StoreResult};

#[derive(Debug, Clone, Default)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    /// `prefix` is empty or ends with `:`, so `app:` and `app2:` never share a key.
    pub fn new(prefix: impl Into<String>) -> StoreResult<Self> {
        let prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with(':') {
            return Err(StoreError::invalid_config(
                "keyPrefix: expected '' or a prefix that ends with ':'",
            ));
        }
        Ok(KeyLayout { prefix })
    }

    /// `conv:<id>`: the conversation as JSON.
    pub fn conversation_key(&self, id: &str) -> String {
        format!("{}conv:{id}", self.prefix)
    }

    /// `user:<userId>:conversations`: sorted set of ids scored by `updatedAt` in epoch ms.
    pub fn user_index_key(&self, user_id: &str) -> String {
        format!("{}user:{user_id}:conversations", self.prefix)
    }
}

/// The key an atomic `set` writes the document to before its script renames it onto the
/// record (`nonce`: random bits of that call). It is the record's name, a marker and the
/// nonce, so it is that call's alone: no other writer's key, a record of this layout
/// included, can have it. It lives in the record's hash slot (a server that checks slots
/// refuses a transaction over two), by a hash tag around the record's name, or by the record's
/// own tag kept first. One kind of record name cannot be matched: one with a `}` and no tag (a
/// tag ends at the first `}`); its pending key hashes elsewhere, and a server that checks
/// slots refuses that set's transaction, which then goes one slot per command.
pub fn pending_key(record_key: &str, nonce: u128) -> String {
    if has_hash_tag(record_key) || record_key.contains('}') {
        format!("{record_key}#pending:{nonce:032x}")
    } else {
        format!("{{{record_key}}}#pending:{nonce:032x}")
    }
}

/// Whether Redis hashes only part of `key`: a `{` followed later by a `}`, with something
/// between the first of each.
fn has_hash_tag(key: &str) -> bool {
    key.split_once('{')
        .and_then(|(_, after)| after.find('}'))
        .is_some_and(|close| close > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn prefix_goes_in_front_of_both_keys() {
        let keys = KeyLayout::new("app1:").unwrap();
        assert_eq!(keys.conversation_key("c1"), "app1:conv:c1");
        assert_eq!(keys.user_index_key("u1"), "app1:user:u1:conversations");
        assert_eq!(KeyLayout::default().conversation_key("c1"), "conv:c1");
    }

    #[test]
    fn a_prefix_ends_with_a_colon() {
        for bad in ["app", "app:x", ":app"] {
            assert!(KeyLayout::new(bad).is_err(), "{bad}");
        }
        assert!(KeyLayout::new("").is_ok());
        assert!(KeyLayout::new("a:b:").is_ok());
    }

    #[test]
    fn a_pending_key_is_in_its_records_slot() {
        for record in ["conv:c1", "app:conv:{tag}x", "conv:a{b", "conv:{"] {
            let pending = pending_key(record, 7);
            assert_eq!(
                Slot::for_key(&pending),
                Slot::for_key(record),
                "{record} {pending}"
            );
            assert!(pending.ends_with("#pending:00000000000000000000000000000007"));
        }
        // A '}' without a tag cannot be matched: a tag ends at its first '}'.
        for record in ["conv:a}b", "conv:{}x"] {
            assert_ne!(Slot::for_key(pending_key(record, 7)), Slot::for_key(record));
        }
    }

    proptest! {
        #[test]
        fn any_record_without_an_untagged_brace_shares_its_pending_keys_slot(
            id in "[a-z{}:]{0,12}",
            nonce: u128,
        ) {
            let record = KeyLayout::default().conversation_key(&id);
            let pending = pending_key(&record, nonce);
            let wrapped = format!("{{{record}}}");
            prop_assert!(pending.starts_with(&record) || pending.starts_with(&wrapped));
            if has_hash_tag(&record) || !record.contains('}') {
                prop_assert_eq!(Slot::for_key(&pending), Slot::for_key(&record));
            }
            prop_assert_ne!(pending_key(&record, nonce.wrapping_add(1)), pending);
        }
    }
}
