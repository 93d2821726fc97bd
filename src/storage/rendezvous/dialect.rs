//! [`RendezvousDialect`]: what differs between SQLite and PostgreSQL in the rendezvous
//! statements (list parameters, key lookups, refreshing the planner's statistics).

use sqlx::{Database, Postgres, Sqlite};

use crate::storage::sql::Statement;

/// What differs between the engines in the rendezvous statements.
pub(crate) trait RendezvousDialect: Database {
    /// Appends a condition true when `column` holds one of `values`.
    fn push_bytes_in<'a>(statement: &mut Statement<'a, Self>, column: &str, values: &'a [&'a [u8]]);

    /// Appends a condition true when `column` holds one of `ids`.
    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]);

    /// Rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// `SELECT id, peer_id, namespace` of the stored registrations with one of `keys`
    /// (`(peer id, namespace)`): one unique-index lookup per key, whatever the table's size.
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self>;

    /// A statement refreshing the planner's statistics of the registrations table, run when
    /// the registration count doubles ([`statistics_are_stale`]); `None` when the engine
    /// plans discovers well without.
    const ANALYZE: Option<&'static str>;
}

/// Whether a batch that took the registration count from `before` to `after` crossed a
/// power of two from 1,024 up: the points where the planner's statistics are refreshed.
pub(crate) fn statistics_are_stale(before: u64, after: u64) -> bool {
    after >= 1024 && before.max(1).ilog2() < after.ilog2()
}

impl RendezvousDialect for Sqlite {
    /// SQLite walks the covering `(namespace, id, ...)` index without statistics.
    const ANALYZE: Option<&'static str> = None;

    fn push_bytes_in<'a>(
        statement: &mut Statement<'a, Self>,
        column: &str,
        values: &'a [&'a [u8]],
    ) {
        statement.push(column).push(" IN (");
        let mut list = statement.list();
        for value in values {
            list.bind(*value);
        }
        statement.push(")");
    }

    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]) {
        statement.push(column).push(" IN (");
        let mut list = statement.list();
        for id in ids {
            list.bind(*id);
        }
        statement.push(")");
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    /// A join from the keys (a `VALUES` list) to the registrations: SQLite's nested loop
    /// probes the `(peer_id, namespace)` index once per key. (`(peer_id, namespace) IN
    /// (VALUES ...)` would scan the whole index.) `CROSS JOIN` makes the keys the outer loop
    /// whatever the planner estimates: with a plain `JOIN` it chose to scan the table once
    /// the table held tens of thousands of rows (44 ms per batch at 100,000, three quarters of
    /// the registration time).
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self> {
        let mut query = Statement::new("WITH k (peer_id, namespace) AS (");
        query.push_values(keys, |values, (peer, namespace)| {
            values.bind(*peer).bind(*namespace);
        });
        query.push(
            ") SELECT r.id, r.peer_id, r.namespace FROM k \
             CROSS JOIN rendezvous_registrations AS r \
             ON r.peer_id = k.peer_id AND r.namespace = k.namespace",
        );
        query
    }
}

impl RendezvousDialect for Postgres {
    /// Without statistics (or with those of a much smaller table), PostgreSQL reads a whole
    /// namespace with a bitmap scan and sorts it to return one page: 35 ms for a namespace of
    /// 100,000 registrations instead of well under one.
    const ANALYZE: Option<&'static str> = Some("ANALYZE rendezvous_registrations");

    /// `column = ANY(?)` with one array parameter (see the PostgreSQL backend on long lists).
    fn push_bytes_in<'a>(
        statement: &mut Statement<'a, Self>,
        column: &str,
        values: &'a [&'a [u8]],
    ) {
        statement
            .push(column)
            .push(" = ANY(")
            .bind(values.to_vec())
            .push(")");
    }

    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]) {
        statement
            .push(column)
            .push(" = ANY(")
            .bind(ids.to_vec())
            .push(")");
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    /// The keys as two array parameters, each probing the `(peer_id, namespace)` index in a
    /// `LATERAL` subquery: its `LIMIT` keeps the planner from turning the lookups into a hash
    /// join over the whole table.
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self> {
        let peers: Vec<&'a [u8]> = keys.iter().map(|(peer, _)| *peer).collect();
        let namespaces: Vec<&'a str> = keys.iter().map(|(_, namespace)| *namespace).collect();
        let mut query = Statement::new("SELECT r.id, k.peer_id, k.namespace FROM unnest(");
        query.bind(peers).push("::bytea[], ").bind(namespaces).push(
            "::text[]) AS k (peer_id, namespace) CROSS JOIN LATERAL (SELECT id \
                 FROM rendezvous_registrations AS r \
                 WHERE r.peer_id = k.peer_id AND r.namespace = k.namespace LIMIT 1) AS r",
        );
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_when_the_count_doubles() {
        assert!(!statistics_are_stale(0, 1023));
        assert!(statistics_are_stale(0, 1024));
        assert!(statistics_are_stale(1000, 1100));
        assert!(!statistics_are_stale(1024, 2047));
        assert!(statistics_are_stale(2047, 2048));
        assert!(statistics_are_stale(3000, 100_000));
        assert!(!statistics_are_stale(100_000, 100_000));
        assert!(!statistics_are_stale(5000, 10), "shrinking");
    }

    #[test]
    fn key_lookups_probe_the_unique_index() {
        let keys: Vec<(&[u8], &str)> = vec![(b"p1", "a"), (b"p2", "b")];
        let (sql, _) = Sqlite::registrations_with_keys(&keys).finish().unwrap();
        assert_eq!(
            sql,
            "WITH k (peer_id, namespace) AS (VALUES (?, ?), (?, ?)) \
             SELECT r.id, r.peer_id, r.namespace FROM k CROSS JOIN rendezvous_registrations AS r \
             ON r.peer_id = k.peer_id AND r.namespace = k.namespace"
        );
        let (sql, _) = Postgres::registrations_with_keys(&keys).finish().unwrap();
        assert!(
            sql.starts_with(
                "SELECT r.id, k.peer_id, k.namespace FROM unnest($1::bytea[], $2::text[])"
            ),
            "{sql}"
        );
    }

    #[test]
    fn postgres_lists_are_one_array_parameter() {
        let values: Vec<&[u8]> = vec![b"a", b"b"];
        let mut query = Statement::<Postgres>::new("SELECT 1 WHERE ");
        Postgres::push_bytes_in(&mut query, "peer_id", &values);
        query.push(" AND ");
        Postgres::push_ids_in(&mut query, "id", &[1, 2, 3]);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(sql, "SELECT 1 WHERE peer_id = ANY($1) AND id = ANY($2)");
        let mut query = Statement::<Sqlite>::new("SELECT 1 WHERE ");
        Sqlite::push_bytes_in(&mut query, "peer_id", &values);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(sql, "SELECT 1 WHERE peer_id IN (?, ?)");
    }
}
