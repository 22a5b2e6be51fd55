//! SQL statements as data: the core writes them (rollups, queries), the worker only executes them on D1.
//!
//! Keeping SQL in the core means the same statements run natively against SQLite in `cargo test`,
//! against the same migrations D1 applies. Every statement binds its values; none interpolates input.

use serde::Serialize;

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

/// One SQL statement with its bound values, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text with `?` placeholders only.
    pub sql: String,
    /// Values for the placeholders.
    pub binds: Vec<SqlValue>,
}

impl Statement {
    /// A statement from SQL text and its binds.
    pub fn new(sql: impl Into<String>, binds: Vec<SqlValue>) -> Self {
        Self {
            sql: sql.into(),
            binds,
        }
    }
}
