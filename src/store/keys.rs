//! The key layout, shared with the ioredis store this package replaces.

#[derive(Debug, Clone, Default)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    pub fn new(prefix: impl Into<String>) -> Self {
        KeyLayout {
            prefix: prefix.into(),
        }
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
        let keys = KeyLayout::new("app1:");
        assert_eq!(keys.conversation_key("c1"), "app1:conv:c1");
        assert_eq!(keys.user_index_key("u1"), "app1:user:u1:conversations");
        assert_eq!(KeyLayout::default().conversation_key("c1"), "conv:c1");
    }
}
