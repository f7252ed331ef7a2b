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

#[cfg(test)]
mod tests {
    use super::*;

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
}
