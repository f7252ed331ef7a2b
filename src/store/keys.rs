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

    /// The key an atomic `set` writes the document to before its script renames it onto
    /// `record_key` (`nonce`: random bits of that call): `<prefix>{<record key>}#pending:<hex>`.
    /// It is that call's alone (no other writer's key can have the name), it starts with the
    /// prefix (an ACL key pattern for the prefix covers it), and its hash tag is the record's
    /// name, so it lives in the record's slot (a server that checks slots refuses a transaction
    /// over two). A tag ends at the first `}`, so for a record key with a `}` (its own tag
    /// included), or a prefix with a `{`, it is `<record key>#pending:<hex>` instead: in the
    /// record's slot when the record has a tag, elsewhere when not, and a server that checks
    /// slots then refuses that set's transaction, which goes one slot per command.
    pub fn pending_key(&self, record_key: &str, nonce: u128) -> String {
        if record_key.contains('}') || self.prefix.contains('{') {
            format!("{record_key}#pending:{nonce:032x}")
        } else {
            format!("{}{{{record_key}}}#pending:{nonce:032x}", self.prefix)
        }
    }
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
    fn a_pending_key_starts_with_the_prefix_and_is_in_its_records_slot() {
        for prefix in ["", "app:", "{app}:", "a{:"] {
            let keys = KeyLayout::new(prefix).unwrap();
            for id in ["c1", "{tag}x", "a{b", "{"] {
                let record = keys.conversation_key(id);
                let pending = keys.pending_key(&record, 7);
                assert!(pending.starts_with(prefix), "{pending}");
                assert!(pending.ends_with("#pending:00000000000000000000000000000007"));
                if prefix != "a{:" {
                    assert_eq!(Slot::for_key(&pending), Slot::for_key(&record), "{pending}");
                }
            }
        }
        assert_eq!(
            KeyLayout::new("app:")
                .unwrap()
                .pending_key("app:conv:c1", 255),
            "app:{app:conv:c1}#pending:000000000000000000000000000000ff"
        );
        // A '}' without a tag cannot be matched: a tag ends at its first '}'.
        for id in ["a}b", "{}x"] {
            let record = KeyLayout::default().conversation_key(id);
            let pending = KeyLayout::default().pending_key(&record, 7);
            assert_ne!(Slot::for_key(pending), Slot::for_key(&record));
        }
    }

    proptest! {
        #[test]
        fn a_pending_key_shares_its_records_slot_unless_a_brace_prevents_it(
            prefix in "([a-z{}]{0,4}:)?",
            id in "[a-z{}:]{0,12}",
            nonce: u128,
        ) {
            let keys = KeyLayout::new(prefix.clone()).unwrap();
            let record = keys.conversation_key(&id);
            let pending = keys.pending_key(&record, nonce);
            prop_assert!(pending.starts_with(&prefix));
            let tagged = record.split_once('{').and_then(|(_, after)| after.find('}')).is_some_and(|close| close > 0);
            if tagged || (!record.contains('}') && !prefix.contains('{')) {
                prop_assert_eq!(Slot::for_key(&pending), Slot::for_key(&record));
            }
            prop_assert_ne!(keys.pending_key(&record, nonce.wrapping_add(1)), pending);
        }
    }
}
