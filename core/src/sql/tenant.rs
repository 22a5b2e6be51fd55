//! Statements over tenant tables, scoped to one verified tenant by construction.
//!
//! A [`TenantSql`] is made only from a [`TenantId`] (which only verified claims make). It reads a
//! tenant table only through [`TenantSql::from`] or [`TenantSql::from_joined`], which write each
//! table's own `tenant_id = ?` predicate right after it (a join's in its `ON`, the first table's as
//! the `WHERE`) and bind the tenant to it as they go, so every tenant table of a statement, joins and
//! subqueries included, carries its own predicate bound to that tenant, in the right position. The
//! rest of the SQL cannot name one: [`TenantSql::push`] and [`TenantSql::bind`] refuse a tenant
//! table's name (comma joins included; `table.column` aside) in debug builds, so in every test. [`unscoped_reads`] checks any [`Statement`] for
//! the same property from its text and binds (`core/tests/tenant_scope.rs` runs it over the query
//! path).

use super::{SqlValue, Statement};
use crate::claims::TenantId;
use crate::lifecycle;

/// Whether `name` is a table with a `tenant_id` column: one of [`lifecycle::TENANT_TABLES`] or
/// [`lifecycle::EXEMPT_TABLES`] (the one list of them, which a test keeps equal to the migrated schema).
pub fn is_tenant_table(name: &str) -> bool {
    lifecycle::TENANT_TABLES
        .iter()
        .map(|t| t.name)
        .chain(lifecycle::EXEMPT_TABLES)
        .any(|t| t.eq_ignore_ascii_case(name))
}

/// A join of [`TenantSql::from_joined`]: `kind` is `JOIN`, `LEFT JOIN` or `CROSS JOIN` (SQLite keeps
/// the tables' order); `on` is the join condition after the tenant's (no `?`, no tenant table).
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    /// `JOIN`, `LEFT JOIN` or `CROSS JOIN`.
    pub kind: &'a str,
    /// A tenant table.
    pub table: &'a str,
    /// Its alias.
    pub alias: &'a str,
    /// The rest of the join condition.
    pub on: &'a str,
}

/// A statement under construction for one tenant: SQL text and its binds, in placeholder order.
#[derive(Debug, Clone)]
pub struct TenantSql<'t> {
    tenant: &'t TenantId,
    sql: String,
    binds: Vec<SqlValue>,
}

impl<'t> TenantSql<'t> {
    /// An empty statement for `tenant`.
    pub fn new(tenant: &'t TenantId) -> Self {
        Self {
            tenant,
            sql: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends `sql`, which holds no `?` and reads no tenant table.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        debug_assert!(!sql.contains('?'), "push binds nothing: {sql}");
        debug_assert!(
            tenant_reads(sql).is_empty(),
            "a tenant table outside from/join: {sql}"
        );
        self.sql.push_str(sql);
        self
    }

    /// Appends `sql`, which holds exactly one `?` and reads no tenant table, and binds `value` to it.
    pub fn bind(&mut self, sql: &str, value: impl Into<SqlValue>) -> &mut Self {
        self.bind_all(sql, [value.into()])
    }

    /// Appends `sql`, which reads no tenant table, and binds `values` to its `?`s, one each in order.
    pub fn bind_all(&mut self, sql: &str, values: impl IntoIterator<Item = SqlValue>) -> &mut Self {
        let before = self.binds.len();
        self.binds.extend(values);
        debug_assert_eq!(sql.matches('?').count(), self.binds.len() - before, "{sql}");
        debug_assert!(
            tenant_reads(sql).is_empty(),
            "a tenant table outside from/join: {sql}"
        );
        self.sql.push_str(sql);
        self
    }

    /// ` FROM {table} {alias} WHERE {alias}.tenant_id = ?`, bound to the tenant (no alias when
    /// `alias` is empty). Go on with ` AND …`.
    pub fn from(&mut self, table: &str, alias: &str) -> &mut Self {
        self.scoped(" FROM", table, alias, "WHERE")
    }

    /// ` FROM {table} {alias}`, then for each [`Join`] ` {kind} {table} {alias} ON {alias}.tenant_id = ?
    /// AND {on}`, then ` WHERE {alias}.tenant_id = ?`: every table with its own predicate, each bound to
    /// the tenant. Go on with ` AND …`.
    pub fn from_joined(&mut self, table: &str, alias: &str, joins: &[Join]) -> &mut Self {
        debug_assert!(is_tenant_table(table), "not a tenant table: {table}");
        debug_assert!(!alias.is_empty());
        self.sql.push_str(&format!(" FROM {table} {alias}"));
        for j in joins {
            debug_assert!(
                matches!(j.kind, "JOIN" | "LEFT JOIN" | "CROSS JOIN"),
                "{}",
                j.kind
            );
            debug_assert!(
                !j.on.contains('?') && tenant_reads(j.on).is_empty(),
                "{}",
                j.on
            );
            self.scoped(&format!(" {}", j.kind), j.table, j.alias, "ON");
            self.sql.push_str(" AND ");
            self.sql.push_str(j.on);
        }
        self.predicate(alias, " WHERE ")
    }

    fn scoped(&mut self, keyword: &str, table: &str, alias: &str, clause: &str) -> &mut Self {
        debug_assert!(is_tenant_table(table), "not a tenant table: {table}");
        self.sql.push_str(keyword);
        self.sql.push(' ');
        self.sql.push_str(table);
        if !alias.is_empty() {
            self.sql.push(' ');
            self.sql.push_str(alias);
        }
        self.predicate(alias, &format!(" {clause} "))
    }

    /// `{clause}{alias}.tenant_id = ?`, bound to the tenant.
    fn predicate(&mut self, alias: &str, clause: &str) -> &mut Self {
        self.sql.push_str(clause);
        if !alias.is_empty() {
            self.sql.push_str(alias);
            self.sql.push('.');
        }
        self.sql.push_str("tenant_id = ?");
        self.binds.push(self.tenant.as_str().into());
        self
    }

    /// The SQL written so far (for tests and size decisions).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many values are bound so far (D1 takes at most 100 per statement).
    pub fn bind_count(&self) -> usize {
        self.binds.len()
    }

    /// The statement.
    pub fn finish(self) -> Statement {
        debug_assert_eq!(
            self.sql.matches('?').count(),
            self.binds.len(),
            "{}",
            self.sql
        );
        Statement::new(self.sql, self.binds)
    }
}

/// A token of SQL text: a word, a placeholder (`?` or `?N`), a string literal or one other character.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Placeholder(Option<usize>),
    Literal,
    Other(char),
}

fn tokens(sql: &str) -> Vec<Token<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' {
            // '' inside a literal is a quote.
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Literal);
        } else if let Some(close) = match c {
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'[' => Some(b']'),
            _ => None,
        } {
            // A quoted identifier is a word.
            let start = i + 1;
            i = start;
            while i < b.len() && b[i] != close {
                i += 1;
            }
            out.push(Token::Word(&sql[start..i.min(b.len())]));
            i += 1;
        } else if c == b'?' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Placeholder(sql[start..i].parse().ok()));
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token::Word(&sql[start..i]));
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            i += ch.len_utf8();
            out.push(Token::Other(ch));
        }
    }
    out
}

fn is_keyword(word: &str, k: &str) -> bool {
    word.eq_ignore_ascii_case(k)
}

/// The tenant tables `sql` names (a name followed by `.` qualifies a column and is not counted).
fn tenant_reads(sql: &str) -> Vec<String> {
    let t = tokens(sql);
    (0..t.len())
        .filter_map(|i| match (&t[i], t.get(i + 1)) {
            (Token::Word(w), next) if is_tenant_table(w) && next != Some(&Token::Other('.')) => {
                Some((*w).to_owned())
            }
            _ => None,
        })
        .collect()
}

/// Where `stmt` reads a tenant table without its own predicate bound to `tenant`: a tenant table is
/// named only right after `FROM` or `JOIN` (or to qualify a column, `table.column`), and each such read
/// is followed by `[alias] WHERE|ON [alias.]tenant_id = ?` (the form [`TenantSql`] writes), that
/// placeholder bound to `tenant`. An empty list when every read is scoped.
/// Placeholders are numbered as SQLite does (`?` is one more than the largest so far, `?N` is N).
pub fn unscoped_reads(stmt: &Statement, tenant: &TenantId) -> Vec<String> {
    let t = tokens(&stmt.sql);
    // The SQLite number of each placeholder, by token index.
    let mut numbers = vec![0; t.len()];
    let mut largest = 0;
    for (i, tok) in t.iter().enumerate() {
        if let Token::Placeholder(n) = tok {
            let n = n.unwrap_or(largest + 1);
            largest = largest.max(n);
            numbers[i] = n;
        }
    }
    let word = |i: usize| match t.get(i) {
        Some(Token::Word(w)) => Some(*w),
        _ => None,
    };
    let mut problems = Vec::new();
    for i in 0..t.len() {
        let Some(k) = word(i) else { continue };
        if is_tenant_table(k) && t.get(i + 1) != Some(&Token::Other('.')) {
            // A tenant table anywhere but right after FROM or JOIN (a comma join, a write).
            if !(i > 0
                && word(i - 1).is_some_and(|p| is_keyword(p, "FROM") || is_keyword(p, "JOIN")))
            {
                problems.push(format!("{k} (token {i}) outside FROM/JOIN"));
            }
            continue;
        }
        if !(is_keyword(k, "FROM") || is_keyword(k, "JOIN")) {
            continue;
        }
        let Some(table) = word(i + 1).filter(|w| is_tenant_table(w)) else {
            continue;
        };
        let mut j = i + 2;
        let alias = match word(j) {
            Some(w) if is_keyword(w, "WHERE") || is_keyword(w, "ON") => None,
            Some(w) if is_keyword(w, "AS") => {
                j += 2;
                word(j - 1)
            }
            Some(w) => {
                j += 1;
                Some(w)
            }
            None => None,
        };
        // `FROM t a JOIN …`: the first table's predicate opens the WHERE of the same SELECT.
        if is_keyword(k, "FROM")
            && word(j).is_some_and(|w| ["JOIN", "LEFT", "CROSS"].iter().any(|k| is_keyword(w, k)))
        {
            let mut depth = 0i32;
            while j < t.len() {
                match &t[j] {
                    Token::Other('(') => depth += 1,
                    Token::Other(')') if depth == 0 => break,
                    Token::Other(')') => depth -= 1,
                    Token::Word(w) if depth == 0 && is_keyword(w, "WHERE") => break,
                    _ => {}
                }
                j += 1;
            }
        }
        let clause = word(j).is_some_and(|w| is_keyword(w, "WHERE") || is_keyword(w, "ON"));
        j += 1;
        let qualified = match alias {
            Some(a) => {
                let ok = word(j) == Some(a) && t.get(j + 1) == Some(&Token::Other('.'));
                j += 2;
                ok
            }
            None => true,
        };
        let column = word(j).is_some_and(|w| is_keyword(w, "tenant_id"));
        let equals = t.get(j + 1) == Some(&Token::Other('='));
        let bound = matches!(t.get(j + 2), Some(Token::Placeholder(_)))
            && stmt.binds.get(numbers[j + 2].wrapping_sub(1))
                == Some(&SqlValue::Text(tenant.as_str().to_owned()));
        if !(clause && qualified && column && equals && bound) {
            problems.push(format!("{table} (token {i})"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        TenantId::for_tests("acme").unwrap()
    }

    #[test]
    fn from_and_join_write_and_bind_each_tables_predicate() {
        let t = acme();
        let mut q = TenantSql::new(&t);
        q.push("SELECT COUNT(*)")
            .from_joined(
                "page_visits",
                "pv",
                &[Join {
                    kind: "LEFT JOIN",
                    table: "sessions",
                    alias: "s",
                    on: "s.session_key = pv.session_key",
                }],
            )
            .bind(" AND pv.first_ts >= ?", 5)
            .push(" AND EXISTS (SELECT 1")
            .from("goals", "")
            .push(")");
        let s = q.finish();
        assert_eq!(
            s.sql,
            "SELECT COUNT(*) FROM page_visits pv LEFT JOIN sessions s ON s.tenant_id = ? AND \
             s.session_key = pv.session_key WHERE pv.tenant_id = ? AND pv.first_ts >= ? AND EXISTS \
             (SELECT 1 FROM goals WHERE tenant_id = ?)"
        );
        assert_eq!(
            s.binds,
            vec![
                "acme".into(),
                "acme".into(),
                SqlValue::Int(5),
                "acme".into()
            ]
        );
        assert!(unscoped_reads(&s, &t).is_empty());
    }

    #[test]
    fn a_read_without_its_own_predicate_is_reported() {
        let t = acme();
        let (acme, evil, one) = (
            SqlValue::from("acme"),
            SqlValue::from("evil"),
            SqlValue::Int(1),
        );
        // (SQL, binds, tenant tables reported)
        let cases: [(&str, Vec<SqlValue>, usize); 12] = [
            (
                "SELECT 1 FROM sessions WHERE tenant_id = ?",
                vec![acme.clone()],
                0,
            ),
            (
                "SELECT 1 FROM sessions AS s WHERE s.tenant_id = ?1 AND x = ?",
                vec![acme.clone(), one.clone()],
                0,
            ),
            // Another tenant's bind.
            ("SELECT 1 FROM sessions WHERE tenant_id = ?", vec![evil], 1),
            // The predicate not first, so its bind could be anyone's.
            (
                "SELECT 1 FROM sessions s WHERE s.first_ts = ? AND s.tenant_id = ?",
                vec![one.clone(), acme.clone()],
                1,
            ),
            // A correlated predicate instead of a bound one.
            (
                "SELECT 1 FROM sessions s WHERE s.tenant_id = ? AND EXISTS \
                 (SELECT 1 FROM session_goals g WHERE g.tenant_id = s.tenant_id)",
                vec![acme.clone()],
                1,
            ),
            // A join without its own predicate; then neither table has one.
            (
                "SELECT 1 FROM sessions s JOIN page_visits pv ON pv.session_key = s.session_key \
                 WHERE s.tenant_id = ?",
                vec![acme.clone()],
                1,
            ),
            (
                "SELECT 1 FROM sessions s JOIN page_visits pv ON pv.session_key = s.session_key \
                 WHERE s.first_ts = ?",
                vec![one],
                2,
            ),
            // A joined subquery's WHERE is not the first table's.
            (
                "SELECT 1 FROM sessions s JOIN (SELECT 1 FROM goals WHERE tenant_id = ?) \
                 WHERE s.tenant_id = ?",
                vec![acme.clone(), acme.clone()],
                0,
            ),
            // Text in a literal is no read; a subquery is not a tenant table.
            (
                "SELECT 1 FROM sessions s WHERE s.tenant_id = ? AND s.x = 'FROM sessions'",
                vec![acme.clone()],
                0,
            ),
            ("SELECT 1 FROM (SELECT 2) x", vec![], 0),
            // A comma join (neither table has its predicate next to it), a quoted name.
            (
                "SELECT 1 FROM sessions s, page_visits pv WHERE s.tenant_id = ?",
                vec![acme],
                2,
            ),
            ("SELECT 1 FROM \"sessions\" WHERE first_ts = 1", vec![], 1),
        ];
        for (sql, binds, reported) in cases {
            let problems = unscoped_reads(&Statement::new(sql, binds), &t);
            assert_eq!(problems.len(), reported, "{sql}: {problems:?}");
        }
    }
}
