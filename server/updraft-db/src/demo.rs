//! The demo warehouse `updraft standalone` gives the example DAGs: a SQLite file with small
//! `orders`, `users` and `products` tables, so the examples run to success on a new machine.

use std::path::Path;

use sqlx::Executor;

use crate::DbError;

const SEED: &str = "
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT, country TEXT, signed_up_at TEXT);
CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, user_id INTEGER, product_id INTEGER, quantity INTEGER,
                                   amount REAL, status TEXT, ordered_at TEXT);
INSERT OR IGNORE INTO users VALUES
  (1, 'Ana@example.com', 'BR', '2025-11-02'), (2, 'bo@example.com', 'US', '2025-12-14'),
  (3, 'chen@example.com', 'CN', '2026-01-03'), (4, NULL, 'DE', '2026-01-09'), (5, 'eve@example.com', 'BR', '2026-02-01');
INSERT OR IGNORE INTO products VALUES
  (1, 'Widget', 'tools', 9.5), (2, 'Gadget', 'tools', 25.0), (3, 'Book', 'media', 12.0), (4, 'Lamp', 'home', 40.0);
INSERT OR IGNORE INTO orders VALUES
  (1, 1, 1, 2, 19.0, 'paid', '2026-01-05'), (2, 1, 3, 1, 12.0, 'paid', '2026-01-06'),
  (3, 2, 2, 1, 25.0, 'paid', '2026-01-06'), (4, 3, 4, 1, 40.0, 'cancelled', '2026-01-07'),
  (5, 5, 1, 5, 47.5, 'paid', '2026-02-02'), (6, 2, 4, 2, 80.0, 'paid', '2026-02-03');
";

/// Creates (or tops up) the demo warehouse at `path`.
pub async fn seed_demo_warehouse(path: &Path) -> Result<(), DbError> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let options: sqlx::any::AnyConnectOptions = url.parse()?;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
    conn.execute(SEED).await?;
    <sqlx::AnyConnection as sqlx::Connection>::close(conn).await?;
    Ok(())
}
