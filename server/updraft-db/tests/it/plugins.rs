//! The plugin store on both databases: component bytes (blobs through sqlx's `Any` driver:
//! BLOB on SQLite, BYTEA on PostgreSQL) come back exactly, each stored once; names point to
//! the current version; replaced and removed versions keep their bytes.

use updraft_db::DbError;
use updraft_db::plugins::NewPlugin;

use crate::support::{Backends, fresh};

/// Bytes with every byte value, NULs and invalid UTF-8 included, and a size past what fits in
/// one network packet.
fn component(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn new<'a>(name: &'a str, version: &'a str, sha256: &'a str, content: &'a [u8], by: &'a str) -> NewPlugin<'a> {
    NewPlugin { name, version, sha256, content, installed_by: by }
}

#[tokio::test]
async fn components_round_trip_and_names_point_to_the_current_version() {
    for backend in Backends::ALL {
        let t = fresh(backend).await;
        let db = t.migrated().await;
        let v1 = component(0, 3 << 20);
        let v2 = component(7, 1000);
        assert!(v1.contains(&0) && std::str::from_utf8(&v1).is_err());

        assert!(db.plugin_versions().await.expect("list").is_empty());
        db.put_plugin(&new("greet", "1.0.0", "aaa1", &v1, "admin")).await.expect("put v1");
        let listed = db.plugin_versions().await.expect("list");
        assert_eq!(listed.len(), 1, "{backend:?}");
        assert_eq!(
            (listed[0].name.as_str(), listed[0].sha256.as_str(), listed[0].version.as_str()),
            ("greet", "aaa1", "1.0.0")
        );
        assert_eq!((listed[0].size_bytes, listed[0].installed_by.as_str()), (3 << 20, "admin"));
        assert!(listed[0].installed_at > updraft_db::Timestamp::EPOCH);
        assert_eq!(db.plugin_component("aaa1").await.expect("fetch").as_deref(), Some(v1.as_slice()), "{backend:?}");
        assert_eq!(db.plugin_component("nope").await.expect("fetch"), None);

        // A new version replaces the pointer; the old bytes stay for tries dispatched with them.
        db.put_plugin(&new("greet", "2.0.0", "bbb2", &v2, "cli ops@laptop")).await.expect("put v2");
        let listed = db.plugin_versions().await.expect("list");
        assert_eq!((listed[0].sha256.as_str(), listed[0].version.as_str()), ("bbb2", "2.0.0"));
        assert_eq!(listed[0].installed_by, "cli ops@laptop");
        assert_eq!(db.plugin_component("aaa1").await.expect("fetch").as_deref(), Some(v1.as_slice()));
        assert_eq!(db.plugin_component("bbb2").await.expect("fetch").as_deref(), Some(v2.as_slice()));

        // Putting known bytes again only moves the pointer: each component is stored once.
        db.put_plugin(&new("greet", "1.0.0", "aaa1", &v1, "admin")).await.expect("back to v1");
        assert_eq!(db.plugin_versions().await.expect("list")[0].sha256, "aaa1");
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM plugin_component").fetch_one(db.pool()).await.expect("count");
        assert_eq!(stored, 2, "{backend:?}");
        assert!(db.has_plugin_component("bbb2").await.expect("has"));
        assert!(!db.has_plugin_component("ccc3").await.expect("has"));

        // A hash already stored under another name is refused, and changes nothing.
        let refused = db.put_plugin(&new("other", "1.0.0", "aaa1", &v1, "admin")).await;
        assert!(
            matches!(&refused, Err(DbError::Conflict(m)) if m.contains("stored as operator `greet`")),
            "{refused:?}"
        );
        assert_eq!(db.plugin_versions().await.expect("list").len(), 1);

        // Removing only while the name still points to a given version.
        assert!(!db.delete_plugin("greet", Some("bbb2")).await.expect("delete"), "v1 is current, not v2");
        assert!(db.delete_plugin("greet", Some("aaa1")).await.expect("delete"));
        assert!(db.plugin_versions().await.expect("list").is_empty());
        assert!(!db.delete_plugin("greet", None).await.expect("delete again"));
        assert_eq!(db.plugin_component("bbb2").await.expect("fetch").as_deref(), Some(v2.as_slice()));
        db.put_plugin(&new("greet", "2.0.0", "bbb2", &v2, "admin")).await.expect("put");
        assert!(db.delete_plugin("greet", None).await.expect("delete any version"));
        t.drop_db(db).await;
    }
}
