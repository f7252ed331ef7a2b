//! `[STORE]` log lines, handed to whatever sink the binding supplies (the `logger` option).

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
}

pub type LogSink = Arc<dyn Fn(LogLevel, String) + Send + Sync>;

#[derive(Clone)]
pub struct Logger {
    sink: LogSink,
}

impl Logger {
    pub fn new(sink: LogSink) -> Self {
        Logger { sink }
    }

    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message.as_ref());
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message.as_ref());
    }

    fn log(&self, level: LogLevel, message: &str) {
        let line = crate::error::printable(format!("[STORE] {message}"));
        (self.sink)(level, line);
    }
}
