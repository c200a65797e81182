//! Which tables a SQL statement reads, found by parsing it (sqlparser, PostgreSQL dialect).
//!
//! This is what lets Updraft check `depends_on` against the query: a table read but not listed
//! is a missing edge (two tasks would race), a table listed but never read is a stale edge.
//! Tables the statement writes (`CREATE TABLE x AS`, `INSERT INTO x`) and CTE names are not reads.

use rustc_hash::FxHashSet as HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Query, Spanned, Statement, TableObject, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::diag::Pos;

/// A table a statement reads, normalised (unquoted parts lower-cased, parts joined by `.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRead {
    pub name: String,
    pub pos: Pos,
}

/// Normalises a table name as PostgreSQL does: unquoted identifiers fold to lower case.
/// Borrows when the name is already normal (the common case: no allocation).
pub fn normalize(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.bytes().any(|b| b.is_ascii_uppercase() || b == b'"' || !b.is_ascii()) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => out.push_str(quoted),
            None => out.push_str(&part.to_lowercase()),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn ident_text(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident_text(ident),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[derive(Default)]
struct Tables {
    relations: Vec<TableRead>,
    written: HashSet<String>,
    ctes: HashSet<String>,
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident_text(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::CreateTable(create) => {
                self.written.insert(object_name(&create.name));
            }
            Statement::CreateView(view) => {
                self.written.insert(object_name(&view.name));
            }
            Statement::Insert(insert) => {
                if let TableObject::TableName(name) = &insert.table {
                    self.written.insert(object_name(name));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let span = relation.span();
        self.relations.push(TableRead {
            name: object_name(relation),
            pos: Pos::new(
                u32::try_from(span.start.line).unwrap_or(1).max(1),
                u32::try_from(span.start.column).unwrap_or(1).max(1),
            ),
        });
        ControlFlow::Continue(())
    }
}

/// The tables `sql` reads, each once, at its first mention. Errors carry the parser's message
/// and the position it gave up at.
pub fn tables_read(sql: &str) -> Result<Vec<TableRead>, (Pos, String)> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| {
        let message = e.to_string();
        (position_in_message(&message).unwrap_or(Pos::START), message)
    })?;
    let mut tables = Tables::default();
    let _ = statements.visit(&mut tables);
    let mut seen = HashSet::default();
    Ok(tables
        .relations
        .into_iter()
        .filter(|t| !tables.written.contains(&t.name) && !tables.ctes.contains(&t.name))
        .filter(|t| seen.insert(t.name.clone()))
        .collect())
}

/// sqlparser reports positions inside its message text ("... at Line: 2, Column: 7").
fn position_in_message(message: &str) -> Option<Pos> {
    let line_at = message.rfind("Line: ")? + "Line: ".len();
    let line: String = message[line_at..].chars().take_while(char::is_ascii_digit).collect();
    let col_at = message.rfind("Column: ")? + "Column: ".len();
    let col: String = message[col_at..].chars().take_while(char::is_ascii_digit).collect();
    Some(Pos::new(line.parse().ok()?, col.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        tables_read(sql).expect("parses").into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn reads_not_writes() {
        assert_eq!(
            names("CREATE TABLE t1 AS\nSELECT count(*) FROM a\n  JOIN b ON a.x = b.x\nWHERE a.ds = '2026'"),
            ["a", "b"]
        );
        assert_eq!(names("INSERT INTO out SELECT * FROM Src WHERE id IN (SELECT id FROM other)"), ["src", "other"]);
    }

    #[test]
    fn ctes_are_not_tables() {
        assert_eq!(
            names("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN analytics.users u ON true"),
            ["orders", "analytics.users"]
        );
    }

    #[test]
    fn positions_point_into_the_sql() {
        let t = tables_read("SELECT 1\nFROM  orders").expect("parses");
        assert_eq!(t[0].pos, Pos::new(2, 7));
    }

    #[test]
    fn parse_errors_are_located() {
        let (pos, message) = tables_read("SELECT FROM WHERE\nnope(").expect_err("bad");
        assert!(pos.line >= 1, "{message}");
        assert!(message.contains("Expected"), "{message}");
    }

    #[test]
    fn normalizes_like_postgres() {
        assert_eq!(normalize("Analytics.\"Users\""), "analytics.Users");
    }
}
