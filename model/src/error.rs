use std::fmt;

/// A rejected input, naming the module, the field (a dotted path such as
/// `nodes.testclient1.links.webserver.port`) and the reason, so a UI can show it next to the
/// field and an API client can act on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub module: String,
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(module: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { module: module.into(), field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.module.is_empty() {
            write!(f, "{}: {}", self.field, self.reason)
        } else if self.field.is_empty() {
            write!(f, "module `{}`: {}", self.module, self.reason)
        } else {
            write!(f, "module `{}`, field `{}`: {}", self.module, self.field, self.reason)
        }
    }
}

impl std::error::Error for FieldError {}
