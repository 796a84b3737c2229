//! The keys ListSecrets pages are read by (`migrations/*/secret_list_indexes`).
//!
//! A page is read in two steps: keys (`secret_id`, `name` and the sort value) from an index
//! in the page's order, starting after the page token's position, a bounded number at a
//! time; then the full rows of the keys that pass the `name` filter
//! ([`Tx::secret_views_by_ids`]). Or, for a `name` filter of prefixes, the keys of the
//! secrets whose name starts with one of them (an index range), when there are few enough to
//! order in memory. Either way the work is bounded by what one page reads, not by how many
//! secrets the account holds.
//!
//! Text is compared byte by byte: SQLite's BINARY collation, PostgreSQL's "C" (named in the
//! SQL: the database's default collation may order differently), as Rust orders `str`.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Text};

use super::rows::{SecretRow, SecretView};
use super::schema::{secret_stages, secret_tags, secrets};
use super::{AnyConnection, StoreError, Tx};

/// What a never-read secret's `last_accessed_at` sorts as (the indexed expression).
pub const NEVER_ACCESSED: i64 = -1;

/// The orders ListSecrets reads in, each walking its own index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    Created,
    Changed,
    Accessed,
    Name,
}

/// A position in a [`ListOrder`]: the sort value and the secret id (ties broken by id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListPos {
    Num(i64, String),
    Text(String, String),
}

/// One index entry: a secret's id, name and dates (the ones its index holds; the others 0).
#[derive(Debug, Clone, QueryableByName)]
pub struct ListKey {
    #[diesel(sql_type = Text)]
    pub secret_id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub last_changed_at: i64,
    /// `COALESCE(last_accessed_at, NEVER_ACCESSED)`.
    #[diesel(sql_type = BigInt)]
    pub last_accessed_at: i64,
}

impl ListKey {
    /// This key's position in `order`.
    pub fn pos(&self, order: ListOrder) -> ListPos {
        let id = self.secret_id.clone();
        match order {
            ListOrder::Created => ListPos::Num(self.created_at, id),
            ListOrder::Changed => ListPos::Num(self.last_changed_at, id),
            ListOrder::Accessed => ListPos::Num(self.last_accessed_at, id),
            ListOrder::Name => ListPos::Text(self.name.clone(), id),
        }
    }
}

/// A bind of a listing statement.
enum Bind {
    Text(String),
    Int(i64),
}

/// A listing statement's text for one backend, with its binds in order.
struct Sql {
    pg: bool,
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn new(pg: bool) -> Self {
        Self {
            pg,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// A text column compared byte by byte.
    fn col(&mut self, name: &str) -> &mut Self {
        self.text.push_str(name);
        if self.pg {
            self.text.push_str(" COLLATE \"C\"");
        }
        self
    }

    fn bind(&mut self, b: Bind) -> &mut Self {
        self.binds.push(b);
        if self.pg {
            self.text.push_str(&format!("${}", self.binds.len()));
        } else {
            self.text.push('?');
        }
        self
    }

    fn load<Conn, DB>(self, conn: &mut Conn) -> QueryResult<Vec<ListKey>>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<Text>
            + diesel::sql_types::HasSqlType<BigInt>,
        Conn: diesel::Connection<Backend = DB> + diesel::connection::LoadConnection,
        String: diesel::serialize::ToSql<Text, DB>,
        i64: diesel::serialize::ToSql<BigInt, DB>,
        ListKey: QueryableByName<DB>,
        for<'f> BoxedSqlQuery<'f, DB, diesel::query_builder::SqlQuery>:
            diesel::query_dsl::LoadQuery<'f, Conn, ListKey>,
    {
        let mut q = diesel::sql_query(self.text).into_boxed::<DB>();
        for b in self.binds {
            q = match b {
                Bind::Text(t) => q.bind::<Text, _>(t),
                Bind::Int(n) => q.bind::<BigInt, _>(n),
            };
        }
        q.load(conn)
    }
}

/// The columns of a [`ListKey`] as a listing index holds them.
const KEY_COLUMNS: &str = "secret_id, name, created_at, last_changed_at, \
     COALESCE(last_accessed_at, -1) AS last_accessed_at";

impl Tx<'_> {
    fn is_pg(&self) -> bool {
        matches!(self.conn, AnyConnection::Postgresql(_))
    }

    fn load_keys(&mut self, sql: Sql) -> Result<Vec<ListKey>, StoreError> {
        let r = match &mut *self.conn {
            AnyConnection::Sqlite(c) => sql.load(c),
            AnyConnection::Postgresql(c) => sql.load(c),
        };
        r.map_err(|e| self.db(e))
    }

    /// Up to `limit` keys of `account`/`region` in `order` (descending when `desc`), after
    /// `after` when given. Read from the order's index alone (the other dates answer 0,
    /// the name and the sort value are exact).
    pub fn secret_keys_in_order(
        &mut self,
        account: &str,
        region: &str,
        order: ListOrder,
        desc: bool,
        after: Option<&ListPos>,
        limit: i64,
    ) -> Result<Vec<ListKey>, StoreError> {
        let sql = keys_in_order_sql(self.is_pg(), account, region, order, desc, after, limit);
        self.load_keys(sql)
    }

    /// Up to `limit` keys of `account`/`region` whose name starts with `prefix` (every
    /// date exact), in name order.
    pub fn secret_keys_by_prefix(
        &mut self,
        account: &str,
        region: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<ListKey>, StoreError> {
        let sql = keys_by_prefix_sql(self.is_pg(), account, region, prefix, limit);
        self.load_keys(sql)
    }

    /// The secrets `ids` with their stages and tags, in the order of `ids` (an id with no
    /// secret is left out).
    pub fn secret_views_by_ids(&mut self, ids: &[&str]) -> Result<Vec<SecretView>, StoreError> {
        let mut rows: HashMap<String, SecretRow> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let found: Vec<SecretRow> = secrets::table
                .filter(secrets::secret_id.eq_any(chunk))
                .select(SecretRow::as_select())
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            rows.extend(found.into_iter().map(|r| (r.secret_id.clone(), r)));
        }
        let ordered: Vec<SecretRow> = ids.iter().filter_map(|id| rows.remove(*id)).collect();
        self.attach_stages_and_tags(ordered)
    }

    /// `rows` with their stages (grouped by version) and tags, in the same order.
    pub(super) fn attach_stages_and_tags(
        &mut self,
        rows: Vec<SecretRow>,
    ) -> Result<Vec<SecretView>, StoreError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.secret_id.as_str()).collect();
        let mut stages: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut tags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let st: Vec<(String, String, String)> = secret_stages::table
                .filter(secret_stages::secret_id.eq_any(chunk))
                .select((
                    secret_stages::secret_id,
                    secret_stages::stage,
                    secret_stages::version_id,
                ))
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            for (sid, stage, vid) in st {
                stages
                    .entry(sid)
                    .or_default()
                    .entry(vid)
                    .or_default()
                    .push(stage);
            }
            let tg: Vec<(String, String, String)> = secret_tags::table
                .filter(secret_tags::secret_id.eq_any(chunk))
                .order((secret_tags::secret_id.asc(), secret_tags::position.asc()))
                .select((
                    secret_tags::secret_id,
                    secret_tags::tag_key,
                    secret_tags::tag_value,
                ))
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            for (sid, k, v) in tg {
                tags.entry(sid).or_default().push((k, v));
            }
        }
        Ok(rows
            .into_iter()
            .map(|secret| {
                let st = stages.remove(&secret.secret_id).unwrap_or_default();
                let tg = tags.remove(&secret.secret_id).unwrap_or_default();
                SecretView {
                    secret,
                    stages: st.into_iter().collect(),
                    tags: tg,
                }
            })
            .collect())
    }
}

/// The statement of [`Tx::secret_keys_in_order`].
fn keys_in_order_sql(
    pg: bool,
    account: &str,
    region: &str,
    order: ListOrder,
    desc: bool,
    after: Option<&ListPos>,
    limit: i64,
) -> Sql {
    let (index, value) = match order {
        ListOrder::Created => ("secrets_list_created", "created_at"),
        ListOrder::Changed => ("secrets_list_changed", "last_changed_at"),
        ListOrder::Accessed => ("secrets_list_accessed", "COALESCE(last_accessed_at, -1)"),
        ListOrder::Name => ("secrets_list_name", "name"),
    };
    let text_value = order == ListOrder::Name;
    let mut sql = Sql::new(pg);
    sql.push("SELECT secret_id, name, ");
    for (col, num) in [
        ("created_at", ListOrder::Created),
        ("last_changed_at", ListOrder::Changed),
    ] {
        if order == num {
            sql.push(col);
        } else {
            sql.push("CAST(0 AS BIGINT)");
        }
        sql.push(&format!(" AS {col}, "));
    }
    if order == ListOrder::Accessed {
        sql.push(value);
    } else {
        sql.push("CAST(0 AS BIGINT)");
    }
    sql.push(" AS last_accessed_at FROM secrets");
    if !pg {
        sql.push(&format!(" INDEXED BY {index}"));
    }
    sql.push(" WHERE account_id = ")
        .bind(Bind::Text(account.to_owned()))
        .push(" AND region = ")
        .bind(Bind::Text(region.to_owned()));
    let (ge, gt) = if desc { ("<=", "<") } else { (">=", ">") };
    let value_col = |sql: &mut Sql| {
        if text_value {
            sql.col(value);
        } else {
            sql.push(value);
        }
    };
    if let Some(pos) = after {
        let (v, id) = match pos {
            ListPos::Num(n, id) => (Bind::Int(*n), id),
            ListPos::Text(t, id) => (Bind::Text(t.clone()), id),
        };
        let v2 = match &v {
            Bind::Int(n) => Bind::Int(*n),
            Bind::Text(t) => Bind::Text(t.clone()),
        };
        // `v >= x AND (v > x OR id > y)`: the first term is the index range's start.
        sql.push(" AND ");
        value_col(&mut sql);
        sql.push(&format!(" {ge} ")).bind(v).push(" AND (");
        value_col(&mut sql);
        sql.push(&format!(" {gt} ")).bind(v2).push(" OR ");
        sql.col("secret_id")
            .push(&format!(" {gt} "))
            .bind(Bind::Text(id.clone()))
            .push(")");
    }
    let dir = if desc { "DESC" } else { "ASC" };
    sql.push(" ORDER BY ");
    value_col(&mut sql);
    sql.push(&format!(" {dir}, "));
    sql.col("secret_id")
        .push(&format!(" {dir} LIMIT "))
        .bind(Bind::Int(limit));
    sql
}

/// The statement of [`Tx::secret_keys_by_prefix`].
fn keys_by_prefix_sql(pg: bool, account: &str, region: &str, prefix: &str, limit: i64) -> Sql {
    let mut sql = Sql::new(pg);
    sql.push(&format!("SELECT {KEY_COLUMNS} FROM secrets"));
    if !pg {
        sql.push(" INDEXED BY secrets_list_name");
    }
    sql.push(" WHERE account_id = ")
        .bind(Bind::Text(account.to_owned()))
        .push(" AND region = ")
        .bind(Bind::Text(region.to_owned()))
        .push(" AND ")
        .col("name")
        .push(" >= ")
        .bind(Bind::Text(prefix.to_owned()));
    if let Some(end) = prefix_end(prefix) {
        sql.push(" AND ")
            .col("name")
            .push(" < ")
            .bind(Bind::Text(end));
    }
    sql.push(" ORDER BY ")
        .col("name")
        .push(" LIMIT ")
        .bind(Bind::Int(limit));
    sql
}

/// The least string greater than every string that starts with `prefix` (byte order), or
/// `None` when there is none (an empty prefix, or one of only `0xFF`-like ends: a prefix
/// whose last character is `char::MAX` is widened until one can be incremented).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value (skipping the surrogate gap); its UTF-8 encoding is greater
        // byte-wise than that of `last` and of every string that starts with `last`.
        let next = match u32::from(last) {
            0xD7FF => Some('\u{E000}'),
            n => n.checked_add(1).and_then(char::from_u32),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end("prod/").as_deref(), Some("prod0"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let names = [
            "",
            "a",
            "a ",
            "a!",
            "a/b",
            "a0",
            "aZ",
            "a~",
            "a\u{7f}",
            "a\u{e9}",
            "a\u{10FFFF}x",
            "b",
            "prod",
            "prod/",
            "prod/x",
            "prod0",
            "prod.",
            "proe",
            "prodz",
        ];
        for p in ["", "a", "prod", "prod/", "a\u{e9}", "~", "a\u{10FFFF}"] {
            for n in names {
                let in_range = n >= p && prefix_end(p).is_none_or(|end| n < end.as_str());
                assert_eq!(in_range, n.starts_with(p), "prefix {p:?}, name {n:?}");
            }
        }
    }
}

/// A store on a fresh database of the PostgreSQL server `STRONGROOM_TEST_DATABASE_URL`
/// names, or `None` when it is not set.
#[cfg(test)]
pub fn fresh_postgres_store() -> Option<super::Store> {
    use diesel::connection::SimpleConnection;
    let base = std::env::var("STRONGROOM_TEST_DATABASE_URL").ok()?;
    let mut conn = diesel::PgConnection::establish(&base).unwrap();
    let name = format!("sr_list_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
    Some(super::Store::open(&url).unwrap())
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use diesel::sql_types::Integer;

    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = Integer)]
        #[allow(dead_code, reason = "read by diesel, not by the test")]
        id: i32,
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// SQLite's plan of a listing statement, one line per step.
    fn plan(store: &super::super::Store, sql: Sql) -> String {
        store
            .read_blocking(move |tx| {
                let AnyConnection::Sqlite(c) = &mut *tx.conn else {
                    return Err(crate::error::ApiError::internal("not a SQLite store"));
                };
                let mut q = diesel::sql_query(format!("EXPLAIN QUERY PLAN {}", sql.text))
                    .into_boxed::<diesel::sqlite::Sqlite>();
                for b in sql.binds {
                    q = match b {
                        Bind::Text(t) => q.bind::<Text, _>(t),
                        Bind::Int(n) => q.bind::<BigInt, _>(n),
                    };
                }
                let rows: Vec<PlanRow> = q.load(c).map_err(StoreError::from)?;
                Ok(rows
                    .into_iter()
                    .map(|r| r.detail)
                    .collect::<Vec<_>>()
                    .join("\n"))
            })
            .unwrap()
    }

    /// Every listing statement reads one index range in order, from the index alone: no
    /// scan of the table, no sort of what it read.
    #[test]
    fn listing_statements_read_an_index_range_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::super::Store::open(&format!("sqlite://{}/p.db", dir.path().display())).unwrap();
        let num = ListPos::Num(5, "id".into());
        let text = ListPos::Text("n".into(), "id".into());
        for (order, index, after) in [
            (ListOrder::Created, "secrets_list_created", &num),
            (ListOrder::Changed, "secrets_list_changed", &num),
            (ListOrder::Accessed, "secrets_list_accessed", &num),
            (ListOrder::Name, "secrets_list_name", &text),
        ] {
            for desc in [false, true] {
                for after in [None, Some(after)] {
                    let p = plan(
                        &store,
                        keys_in_order_sql(false, "a", "r", order, desc, after, 10),
                    );
                    assert!(
                        p.contains(&format!(
                            "USING COVERING INDEX {index} (account_id=? AND region=?"
                        )),
                        "{order:?} desc={desc} after={after:?}: {p}"
                    );
                    assert!(!p.contains("TEMP B-TREE"), "{order:?}: {p}");
                    if after.is_some() {
                        assert!(p.contains(">?") || p.contains("<?"), "{order:?}: {p}");
                    }
                }
            }
        }
        let p = plan(&store, keys_by_prefix_sql(false, "a", "r", "prod/", 10));
        assert!(
            p.contains("USING COVERING INDEX secrets_list_name (account_id=? AND region=? AND name>? AND name<?)"),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }
}
