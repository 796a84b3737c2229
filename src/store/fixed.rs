//! Statements of fixed text that diesel prepares once per connection.
//!
//! diesel reuses a prepared statement only when its query says it is safe to cache: a
//! `sql_query` never is, and neither is an UPDATE built with the DSL (its `walk_ast` marks
//! every UPDATE unsafe to cache, whatever its SET clause). SQLite then parses and plans such
//! a statement on every execution: under PutSecretValue load, 11 % of the store writer's
//! time as measured (the two statements of a write's pending audit copy, 8 %, and the UPDATE
//! of the secret's change date). A [`Fixed`] statement is the same SQL every time,
//! so diesel may key its cache by the statement's marker type.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, Bool, HasSqlType, Integer, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};

/// One bind of a [`Fixed`] statement.
pub(super) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    /// A nullable text column (NULL is bound, not written: the text stays fixed).
    OptText(Option<&'a str>),
    /// A nullable boolean column.
    OptBool(Option<bool>),
    /// A nullable 64-bit integer column.
    OptInt(Option<i64>),
    /// A nullable 32-bit integer column.
    OptInt32(Option<i32>),
    /// A nullable blob column.
    OptBlob(Option<&'a [u8]>),
}

/// The text of a [`Fixed`] statement: the SQL around its binds, one piece more than
/// there are binds (a bind goes between each two pieces).
pub(super) trait FixedSql: 'static {
    fn pieces() -> &'static [&'static str];
}

/// A statement of `S`'s text with `args` bound in order. Run it with `RunQueryDsl`.
pub(super) struct Fixed<'a, S> {
    args: &'a [Arg<'a>],
    sql: PhantomData<S>,
}

impl<'a, S: FixedSql> Fixed<'a, S> {
    pub(super) fn new(args: &'a [Arg<'a>]) -> Self {
        Self {
            args,
            sql: PhantomData,
        }
    }
}

impl<S: FixedSql> QueryId for Fixed<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S, DB> QueryFragment<DB> for Fixed<'_, S>
where
    S: FixedSql,
    DB: Backend
        + HasSqlType<Text>
        + HasSqlType<BigInt>
        + HasSqlType<Bool>
        + HasSqlType<Integer>
        + HasSqlType<Binary>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    bool: ToSql<Bool, DB>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    Option<bool>: ToSql<Nullable<Bool>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    Option<i32>: ToSql<Nullable<Integer>, DB>,
    for<'x> Option<&'x [u8]>: ToSql<Nullable<Binary>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let pieces = S::pieces();
        if pieces.len() != self.args.len() + 1 {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "a fixed statement of {} pieces given {} binds",
                    pieces.len(),
                    self.args.len()
                )
                .into(),
            ));
        }
        for (i, piece) in pieces.iter().enumerate() {
            out.push_sql(piece);
            match self.args.get(i) {
                Some(Arg::Text(t)) => out.push_bind_param::<Text, str>(t)?,
                Some(Arg::Int(n)) => out.push_bind_param::<BigInt, i64>(n)?,
                Some(Arg::OptText(t)) => out.push_bind_param::<Nullable<Text>, Option<&str>>(t)?,
                Some(Arg::OptBool(b)) => out.push_bind_param::<Nullable<Bool>, Option<bool>>(b)?,
                Some(Arg::OptInt(n)) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(n)?,
                Some(Arg::OptInt32(n)) => {
                    out.push_bind_param::<Nullable<Integer>, Option<i32>>(n)?;
                }
                Some(Arg::OptBlob(b)) => {
                    out.push_bind_param::<Nullable<Binary>, Option<&[u8]>>(b)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl<S, Conn> RunQueryDsl<Conn> for Fixed<'_, S> {}

/// Declare a marker type for a [`Fixed`] statement made of literal pieces.
macro_rules! fixed_sql {
    ($(#[$doc:meta])* $name:ident = [$($piece:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub(super) struct $name;
        impl $crate::store::fixed::FixedSql for $name {
            fn pieces() -> &'static [&'static str] {
                &[$($piece),+]
            }
        }
    };
}
pub(super) use fixed_sql;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use diesel::SqliteConnection;

    fixed_sql!(
        /// Test statement.
        SetName = ["UPDATE t SET name = ", " WHERE id = ", ""]
    );
    fixed_sql!(
        /// Test statement with a wrong number of binds.
        OneBind = ["UPDATE t SET name = ", ""]
    );

    #[test]
    fn a_fixed_statement_binds_in_order_and_is_prepared_once() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
            .unwrap();
        for (id, name) in [(1, "x"), (2, "y"), (1, "z")] {
            let n = Fixed::<SetName>::new(&[Arg::Text(name), Arg::Int(id)])
                .execute(&mut c)
                .unwrap();
            assert_eq!(n, 1);
        }
        let names: Vec<(i64, String)> = diesel::sql_query("SELECT id, name FROM t ORDER BY id")
            .load::<Row>(&mut c)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        assert_eq!(names, vec![(1, "z".to_owned()), (2, "y".to_owned())]);
        // Prepared once: the first run caches the statement, the next reuse it.
        let cached = count_cached(&mut c);
        for id in [1, 2, 1] {
            Fixed::<SetName>::new(&[Arg::Text("q"), Arg::Int(id)])
                .execute(&mut c)
                .unwrap();
        }
        assert_eq!(cached.load(SeqCst), 0, "already cached by the runs above");
        let mut fresh = SqliteConnection::establish(":memory:").unwrap();
        fresh
            .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT);")
            .unwrap();
        let cached = count_cached(&mut fresh);
        for id in [1, 2, 1] {
            Fixed::<SetName>::new(&[Arg::Text("q"), Arg::Int(id)])
                .execute(&mut fresh)
                .unwrap();
        }
        assert_eq!(cached.load(SeqCst), 1);
    }

    fixed_sql!(
        /// Test statement with every nullable kind of bind.
        InsertNullable = ["INSERT INTO n (id, big, small, data) VALUES (", ", ", ", ", ", ", ")"]
    );

    #[derive(QueryableByName, Debug, PartialEq)]
    struct NullableRow {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        big: Option<i64>,
        #[diesel(sql_type = Nullable<Integer>)]
        small: Option<i32>,
        #[diesel(sql_type = Nullable<Binary>)]
        data: Option<Vec<u8>>,
    }

    #[test]
    fn nullable_integers_and_blobs_bind_as_values_or_null() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(
            "CREATE TABLE n (id BIGINT PRIMARY KEY, big BIGINT, small INTEGER, data BLOB);",
        )
        .unwrap();
        let blob = [0_u8, 1, 255, 0];
        Fixed::<InsertNullable>::new(&[
            Arg::Int(1),
            Arg::OptInt(Some(1 << 40)),
            Arg::OptInt32(Some(-7)),
            Arg::OptBlob(Some(&blob)),
        ])
        .execute(&mut c)
        .unwrap();
        Fixed::<InsertNullable>::new(&[
            Arg::Int(2),
            Arg::OptInt(None),
            Arg::OptInt32(None),
            Arg::OptBlob(None),
        ])
        .execute(&mut c)
        .unwrap();
        let rows: Vec<NullableRow> =
            diesel::sql_query("SELECT id, big, small, data FROM n ORDER BY id")
                .load(&mut c)
                .unwrap();
        assert_eq!(
            rows,
            vec![
                NullableRow {
                    id: 1,
                    big: Some(1 << 40),
                    small: Some(-7),
                    data: Some(blob.to_vec()),
                },
                NullableRow {
                    id: 2,
                    big: None,
                    small: None,
                    data: None,
                },
            ]
        );
        let types: Vec<NullableTypes> =
            diesel::sql_query("SELECT typeof(data) AS t FROM n ORDER BY id")
                .load(&mut c)
                .unwrap();
        assert_eq!(
            types.iter().map(|r| r.t.as_str()).collect::<Vec<_>>(),
            vec!["blob", "null"]
        );
    }

    #[derive(QueryableByName)]
    struct NullableTypes {
        #[diesel(sql_type = Text)]
        t: String,
    }

    /// What this module works around: diesel never caches an UPDATE built with its DSL.
    #[test]
    fn diesel_prepares_a_dsl_update_on_every_run() {
        diesel::table! { t (id) { id -> BigInt, name -> Text, } }
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT);")
            .unwrap();
        let cached = count_cached(&mut c);
        for id in [1_i64, 2, 1] {
            diesel::update(t::table.find(id))
                .set(t::name.eq("q"))
                .execute(&mut c)
                .unwrap();
        }
        assert_eq!(cached.load(SeqCst), 0);
    }

    /// Count the statements `c` prepares and caches from now on.
    fn count_cached(c: &mut SqliteConnection) -> Arc<AtomicUsize> {
        let n = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&n);
        c.set_instrumentation(move |e: InstrumentationEvent<'_>| {
            if matches!(e, InstrumentationEvent::CacheQuery { .. }) {
                seen.fetch_add(1, SeqCst);
            }
        });
        n
    }

    #[test]
    fn a_fixed_statement_with_the_wrong_number_of_binds_is_an_error_not_a_panic() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT);")
            .unwrap();
        let r = Fixed::<OneBind>::new(&[Arg::Text("a"), Arg::Int(1)]).execute(&mut c);
        assert!(r.is_err());
    }

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
    }
}
