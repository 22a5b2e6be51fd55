//! The one error type for admin JSON bodies (tenants, settings, tokens, keys): every variant names the
//! field at fault or says what the body must be, so a 400 tells the caller what to fix.

use std::fmt;

/// Why a JSON body was rejected (400).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A known field with a value that is not allowed.
    Invalid {
        /// The field's name.
        field: String,
        /// What the value must be.
        message: String,
    },
    /// A field the body may not have.
    UnknownField {
        /// The field's name (at most 64 characters of it).
        field: String,
        /// Which fields the body may have, as a sentence.
        allowed: String,
    },
    /// The body is not a JSON object.
    NotAnObject {
        /// What the body must be, as a sentence.
        expected: String,
    },
    /// A PATCH tried to change a field that is fixed at creation.
    FixedAtCreation(&'static str),
}

impl FieldError {
    /// A field with a value that is not allowed; `message` says what it must be.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A field the body may not have; `allowed` says which it may.
    pub fn unknown(field: &str, allowed: impl Into<String>) -> Self {
        Self::UnknownField {
            field: field.chars().take(64).collect(),
            allowed: allowed.into(),
        }
    }

    /// A body that is not a JSON object; `expected` says what it must be.
    pub fn not_an_object(expected: impl Into<String>) -> Self {
        Self::NotAnObject {
            expected: expected.into(),
        }
    }

    /// The field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } | Self::UnknownField { field, .. } => Some(field),
            Self::FixedAtCreation(field) => Some(field),
            Self::NotAnObject { .. } => None,
        }
    }

    /// A message that names the field and says what is allowed.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid { field, message } => format!("invalid '{field}': {message}"),
            Self::UnknownField { field, allowed } => format!("unknown field '{field}': {allowed}"),
            Self::NotAnObject { expected } => expected.clone(),
            Self::FixedAtCreation(f) => format!(
                "'{f}' is fixed at creation: export the data, erase the tenant and create it again to change it"
            ),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_names_the_field_or_the_expected_shape() {
        let e = FieldError::invalid("plan", "expected \"free\", \"pro\" or \"enterprise\"");
        assert_eq!(e.field(), Some("plan"));
        assert!(e.message().starts_with("invalid 'plan': expected"));
        let long = "x".repeat(100);
        let e = FieldError::unknown(&long, "a key body has only public_key");
        assert_eq!(e.field().map(str::len), Some(64));
        assert!(e.message().ends_with("a key body has only public_key"));
        let e = FieldError::not_an_object("the body must be a JSON object");
        assert_eq!(
            (e.field(), e.message().as_str()),
            (None, "the body must be a JSON object")
        );
        assert!(FieldError::FixedAtCreation("database")
            .message()
            .contains("erase the tenant"));
    }
}
