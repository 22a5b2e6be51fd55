//! SQL statements as data: the core writes them (rollups, queries), the worker only executes them on D1.
//!
//! Keeping SQL in the core means the same statements run natively against SQLite in `cargo test`,
//! against the same migrations D1 applies. Every statement binds its values; none interpolates input.
//! Statements over tenant tables are built with [`TenantSql`], which scopes every table it reads to
//! one verified tenant.

use serde::Serialize;
use serde_json::Value;

mod tenant;

pub use tenant::{is_tenant_table, unscoped_reads, Join, TenantSql};

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

/// An integer column of a D1 row. D1 hands numbers over as JavaScript numbers, so an integer may arrive
/// as an integral float; a non-integral or out-of-range number, text, NULL or a missing column is `None`.
/// The one reader of integers from rows: [`count`] is it with NULL as zero.
pub fn int(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// A counter column: [`int`], with NULL (an empty `SUM`), a missing column or a non-integer as 0.
pub fn count(v: Option<&Value>) -> i64 {
    int(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_arrive_as_numbers_or_integral_floats() {
        assert_eq!(int(Some(&json!(42))), Some(42));
        assert_eq!(int(Some(&json!(42.0))), Some(42));
        assert_eq!(int(Some(&json!(-7))), Some(-7));
        assert_eq!(int(Some(&json!(1.5))), None);
        assert_eq!(int(Some(&json!(1.0e16))), None);
        assert_eq!(int(Some(&json!("42"))), None);
        assert_eq!(int(Some(&Value::Null)), None);
        assert_eq!(int(None), None);
    }

    #[test]
    fn counters_read_null_and_missing_as_zero() {
        assert_eq!(count(Some(&json!(3.0))), 3);
        assert_eq!(count(Some(&Value::Null)), 0);
        assert_eq!(count(None), 0);
    }
}
