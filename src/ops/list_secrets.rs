//! ListSecrets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::describe_secret::Output as SecretListEntry;
use super::values::{self, Cursor, SortValue};
use super::{Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::secrets::{self, filters};
use crate::store::rows::{SecretRow, SecretView};
use crate::store::{ListKey, ListOrder, ListPos, StoreError, Tx, NEVER_ACCESSED};

/// Default and largest page.
pub const MAX_RESULTS: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<filters::Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub secret_list: Vec<SecretListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// What ListSecrets orders by (`SortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    CreatedDate,
    LastAccessedDate,
    LastChangedDate,
    Name,
}

impl SortBy {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "created-date" => Some(Self::CreatedDate),
            "last-accessed-date" => Some(Self::LastAccessedDate),
            "last-changed-date" => Some(Self::LastChangedDate),
            "name" => Some(Self::Name),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::CreatedDate => "created-date",
            Self::LastAccessedDate => "last-accessed-date",
            Self::LastChangedDate => "last-changed-date",
            Self::Name => "name",
        }
    }

    fn order(self) -> ListOrder {
        match self {
            Self::CreatedDate => ListOrder::Created,
            Self::LastAccessedDate => ListOrder::Accessed,
            Self::LastChangedDate => ListOrder::Changed,
            Self::Name => ListOrder::Name,
        }
    }
}

fn enum_error(field: &str, value: &str, set: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: {set}"
    ))
}

/// `SortOrder`: `asc` (the default) or `desc`; answers whether to sort descending.
pub fn parse_sort_order(order: Option<&str>) -> Result<bool, ApiError> {
    match order {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(other) => Err(enum_error("sortOrder", other, "[asc, desc]")),
    }
}

fn parse_sort_by(by: Option<&str>) -> Result<SortBy, ApiError> {
    match by {
        None => Ok(SortBy::CreatedDate),
        Some(s) => SortBy::parse(s).ok_or_else(|| {
            enum_error(
                "sortBy",
                s,
                "[created-date, last-accessed-date, last-changed-date, name]",
            )
        }),
    }
}

/// Validate `MaxResults` (1..=`max`) and `NextToken` (1..=4096 characters).
pub fn validate_paging(
    max_results: Option<i64>,
    next_token: Option<&str>,
    max: i64,
) -> Result<(), ApiError> {
    if let Some(m) = max_results {
        values::check_range("maxResults", m, 1, max)?;
    }
    if let Some(t) = next_token {
        secrets::check_len("nextToken", t.chars().count(), 1, 4096)?;
    }
    Ok(())
}

/// What filters see of a secret.
pub fn subject(view: &SecretView) -> filters::FilterSubject<'_> {
    filters::FilterSubject {
        name: &view.secret.name,
        description: view.secret.description.as_deref(),
        tags: &view.tags,
        primary_region: view.secret.primary_region.as_deref(),
        owning_service: view.secret.owning_service.as_deref(),
    }
}

#[derive(Debug)]
pub struct ListSecrets;

impl Operation for ListSecrets {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListSecrets";
    const ACTION: &'static str = "secretsmanager:ListSecrets";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        validate_paging(input.max_results, input.next_token.as_deref(), MAX_RESULTS)?;
        filters::compile(input.filters.as_deref().unwrap_or_default())?;
        parse_sort_order(input.sort_order.as_deref())?;
        parse_sort_by(input.sort_by.as_deref())?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let compiled = filters::compile(input.filters.as_deref().unwrap_or_default())?;
        let descending = parse_sort_order(input.sort_order.as_deref())?;
        let sort_by = parse_sort_by(input.sort_by.as_deref())?;
        let mode = format!(
            "ListSecrets/{}/{}",
            sort_by.code(),
            if descending { "desc" } else { "asc" }
        );
        let after = input
            .next_token
            .as_deref()
            .map(|t| values::decode_next_token(&mode, t))
            .transpose()?;
        let max = usize::try_from(input.max_results.unwrap_or(MAX_RESULTS))
            .map_err(ApiError::internal)?;
        let include_deleted = input.include_planned_deletion.unwrap_or(false);
        let scope = auth.scope.clone();
        let order = sort_by.order();
        let query = ListQuery {
            order,
            descending,
            after: after.map(|c| list_pos(order, c)).transpose()?,
            include_deleted,
            max,
            limits: ReadLimits::DEFAULT,
        };
        ctx.store
            .read(move |tx| {
                let (page, next) = list_page(tx, &scope.account, &scope.region, &compiled, &query)?;
                let mut arns: HashMap<String, Option<String>> = HashMap::new();
                let mut secret_list = Vec::with_capacity(page.len());
                for view in page {
                    let kms_arn = match &view.secret.kms_key_id {
                        None => None,
                        Some(id) => match arns.get(id) {
                            Some(a) => a.clone(),
                            None => {
                                let a = tx.kms_key(id)?.map(|k| k.arn);
                                arns.insert(id.clone(), a.clone());
                                a
                            }
                        },
                    };
                    secret_list.push(SecretListEntry::from_view(view, kms_arn, true));
                }
                Ok(Output {
                    secret_list,
                    next_token: next.map(|p| values::encode_next_token(&mode, &cursor(p))),
                })
            })
            .await
    }
}

/// One page of a listing: its order, where it starts and how long it may be.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub order: ListOrder,
    pub descending: bool,
    /// The position of the previous page's end (from its `NextToken`).
    pub after: Option<ListPos>,
    /// Whether secrets scheduled for deletion are listed.
    pub include_deleted: bool,
    /// The most secrets the page holds (at least 1).
    pub max: usize,
    pub limits: ReadLimits,
}

/// How much one page may read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Index entries read at a time.
    pub key_chunk: usize,
    /// A page stops after reading this many index entries, or this many full rows, without
    /// having filled up, and answers what it found with a token for where it stopped (AWS's
    /// `ListSecrets` with filters likewise answers short or empty pages with a `NextToken`).
    pub max_keys: usize,
    pub max_rows: usize,
    /// The most name-prefix candidates a page orders in memory; a prefix that more names
    /// share is matched while walking the order's index instead.
    pub max_prefix_candidates: usize,
}

impl ReadLimits {
    /// Each bound costs a few milliseconds on a warm cache: index entries are read at
    /// about 0.2 µs each, a full row with its tags and stages at a few µs. A prefix shared
    /// by more than `max_prefix_candidates` names of N matches at least one name in
    /// N / `max_prefix_candidates` while walking the index, so a page of 100 reads at most
    /// about 100 × N / 10,000 entries: 10,000 at a million secrets.
    pub const DEFAULT: Self = Self {
        key_chunk: 1000,
        max_keys: 20_000,
        max_rows: 2_000,
        max_prefix_candidates: 10_000,
    };
}

/// The secrets of one page of `account`/`region` that pass `filters` (and are not deleted,
/// unless `query.include_deleted`), in `query`'s order, and the position to continue from
/// when more may follow.
///
/// The page is read in `query.order` from `query.after` on: index entries first (a
/// `key_chunk` at a time), the entries whose name fails the `name` filters dropped, then
/// the full rows of the rest, on which `filters` is applied whole. With a `name` filter of
/// prefixes ([`filters::CompiledFilters::name_prefixes`]) shared by at most
/// `max_prefix_candidates` names, the entries are those names', ordered in memory.
/// A page ends when it holds `query.max` secrets and one more match was seen (position:
/// its last secret), when the secrets run out (no position), or when it has read
/// `max_keys` entries or `max_rows` rows (position: the last read).
pub fn list_page(
    tx: &mut Tx<'_>,
    account: &str,
    region: &str,
    filters: &filters::CompiledFilters,
    query: &ListQuery,
) -> Result<(Vec<SecretView>, Option<ListPos>), StoreError> {
    let limits = query.limits;
    if let Some(prefixes) = filters.name_prefixes() {
        let mut keys: Vec<ListKey> = Vec::new();
        let mut over = false;
        for prefix in prefixes {
            let room = limits
                .max_prefix_candidates
                .saturating_add(1)
                .saturating_sub(keys.len());
            let found = tx.secret_keys_by_prefix(account, region, prefix, as_limit(room))?;
            keys.extend(found);
            if keys.len() > limits.max_prefix_candidates {
                over = true;
                break;
            }
        }
        if !over {
            let order = query.order;
            let mut keyed: Vec<(ListPos, ListKey)> = keys
                .into_iter()
                .filter(|k| filters.matches_name(&k.name))
                .map(|k| (k.pos(order), k))
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            // Overlapping prefixes (`a`, `ab`) find a secret twice.
            keyed.dedup_by(|a, b| a.0 == b.0);
            if query.descending {
                keyed.reverse();
            }
            let mut rest = keyed.into_iter().map(|(_, k)| k).filter(|k| {
                query.after.as_ref().is_none_or(|after| {
                    let p = k.pos(order);
                    if query.descending {
                        p < *after
                    } else {
                        p > *after
                    }
                })
            });
            return fill_page(tx, filters, query, false, |_, _, n| {
                Ok(rest.by_ref().take(n).collect())
            });
        }
    }
    let (account, region) = (account.to_owned(), region.to_owned());
    fill_page(tx, filters, query, true, move |tx, after, n| {
        tx.secret_keys_in_order(
            &account,
            &region,
            query.order,
            query.descending,
            after,
            as_limit(n),
        )
    })
}

fn as_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Walk the entries `next_keys` answers (after a position, at most a count, in order) and
/// fill a page (see [`list_page`]); `bounded`: stop at the per-page read limits.
fn fill_page(
    tx: &mut Tx<'_>,
    filters: &filters::CompiledFilters,
    query: &ListQuery,
    bounded: bool,
    mut next_keys: impl FnMut(&mut Tx<'_>, Option<&ListPos>, usize) -> Result<Vec<ListKey>, StoreError>,
) -> Result<(Vec<SecretView>, Option<ListPos>), StoreError> {
    let order = query.order;
    let limits = query.limits;
    let max = query.max.max(1);
    let mut page: Vec<SecretView> = Vec::new();
    let mut pos = query.after.clone();
    let (mut keys_read, mut rows_read) = (0_usize, 0_usize);
    loop {
        let chunk_len = limits.key_chunk.max(1);
        let chunk = next_keys(tx, pos.as_ref(), chunk_len)?;
        let exhausted = chunk.len() < chunk_len;
        keys_read = keys_read.saturating_add(chunk.len());
        let mut idx = 0;
        while idx < chunk.len() {
            // The next few entries whose name passes, read whole together: as many as the
            // page still needs (and one more), at least a handful.
            let want = max.saturating_add(1).saturating_sub(page.len()).max(16);
            let mut end = idx;
            let mut ids: Vec<&str> = Vec::new();
            while end < chunk.len() && ids.len() < want {
                if let Some(k) = chunk.get(end) {
                    if filters.matches_name(&k.name) {
                        ids.push(&k.secret_id);
                    }
                }
                end = end.saturating_add(1);
            }
            let views = if ids.is_empty() {
                Vec::new()
            } else {
                tx.secret_views_by_ids(&ids)?
            };
            rows_read = rows_read.saturating_add(views.len());
            let mut views = views.into_iter().peekable();
            for key in chunk.get(idx..end).unwrap_or_default() {
                pos = Some(key.pos(order));
                let Some(view) = views.next_if(|v| v.secret.secret_id == key.secret_id) else {
                    continue;
                };
                let listed = query.include_deleted || view.secret.deleted_at.is_none();
                if !listed || !filters.matches(&subject(&view)) {
                    continue;
                }
                if page.len() >= max {
                    // One more follows: the next page starts after this page's last.
                    let last = page.last().map(|v| row_pos(order, &v.secret));
                    return Ok((page, last));
                }
                page.push(view);
            }
            idx = end;
            if bounded && rows_read >= limits.max_rows && idx < chunk.len() {
                return Ok((page, pos));
            }
        }
        if exhausted {
            return Ok((page, None));
        }
        if bounded && (keys_read >= limits.max_keys || rows_read >= limits.max_rows) {
            return Ok((page, pos));
        }
    }
}

/// A secret's position in `order` (as its index entry's).
fn row_pos(order: ListOrder, s: &SecretRow) -> ListPos {
    let id = s.secret_id.clone();
    match order {
        ListOrder::Created => ListPos::Num(s.created_at, id),
        ListOrder::Changed => ListPos::Num(s.last_changed_at, id),
        ListOrder::Accessed => ListPos::Num(s.last_accessed_at.unwrap_or(NEVER_ACCESSED), id),
        ListOrder::Name => ListPos::Text(s.name.clone(), id),
    }
}

/// The token form of a position.
pub fn cursor(p: ListPos) -> Cursor {
    match p {
        ListPos::Num(n, id) => Cursor {
            value: SortValue::Num(n),
            id,
        },
        ListPos::Text(t, id) => Cursor {
            value: SortValue::Text(t),
            id,
        },
    }
}

/// A token's position in `order`; a token whose value is not of the order's kind, or holds
/// a NUL character (no name or id has one, and PostgreSQL's text cannot), is
/// `InvalidNextTokenException`.
pub fn list_pos(order: ListOrder, c: Cursor) -> Result<ListPos, ApiError> {
    let nul = c.id.contains('\0') || matches!(&c.value, SortValue::Text(t) if t.contains('\0'));
    if nul {
        return Err(ApiError::InvalidNextToken(
            "The NextToken value is invalid.".into(),
        ));
    }
    match (order, c.value) {
        (ListOrder::Name, SortValue::Text(t)) => Ok(ListPos::Text(t, c.id)),
        // Nothing sorts before a never-read secret.
        (ListOrder::Accessed, SortValue::Num(n)) => Ok(ListPos::Num(n.max(NEVER_ACCESSED), c.id)),
        (ListOrder::Created | ListOrder::Changed, SortValue::Num(n)) => Ok(ListPos::Num(n, c.id)),
        _ => Err(ApiError::InvalidNextToken(
            "The NextToken value is invalid.".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    fn row(i: usize, account: &str, region: &str) -> SecretRow {
        let prefix = ["a", "ab", "b", "prod", "prod/legacy", "prod-x", "Prod"][i % 7];
        let name = format!("{prefix}/s{:03}", (i * 37) % 1000);
        SecretRow {
            secret_id: format!("{:08x}-id", (i * 2_654_435_761) % 4_294_967_291),
            account_id: account.to_owned(),
            region: region.to_owned(),
            arn: format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-abcdef"),
            name,
            description: i.is_multiple_of(4).then(|| format!("secret number {i}")),
            kms_key_id: None,
            // Ties on every date, broken by the id.
            created_at: 1_000 + i64::try_from(i % 37).unwrap(),
            last_changed_at: 2_000 + i64::try_from((i * 7) % 23).unwrap(),
            last_accessed_at: (!i.is_multiple_of(3))
                .then(|| i64::try_from(i % 11).unwrap() * 86_400_000),
            deleted_at: i.is_multiple_of(13).then_some(5),
            purge_at: None,
            owning_service: None,
            primary_region: None,
            resource_policy: None,
            tag_list: false,
            secret_type: None,
            external_rotation_metadata: None,
            external_rotation_role_arn: None,
            rotation_enabled: None,
            rotation_lambda_arn: None,
            rotation_rules: None,
            last_rotated_at: None,
            next_rotation_at: None,
            cross_account_status: None,
            cross_account_primary_arn: None,
            cross_account_replica: false,
        }
    }

    fn seed(store: &Store) -> Vec<String> {
        let mut ids = Vec::new();
        let rows: Vec<SecretRow> = (0..90)
            .map(|i| row(i, ACCOUNT, REGION))
            .chain((90..100).map(|i| row(i, "444455556666", REGION)))
            .chain((100..110).map(|i| row(i, ACCOUNT, "eu-west-1")))
            .collect();
        for r in &rows {
            if r.account_id == ACCOUNT && r.region == REGION {
                ids.push(r.secret_id.clone());
            }
        }
        store
            .write_blocking(move |tx| {
                for (i, r) in rows.iter().enumerate() {
                    tx.insert_secret(r)?;
                    let tags = match i % 5 {
                        0 => vec![("env".to_owned(), "prod".to_owned())],
                        1 => vec![
                            ("env".to_owned(), "dev".to_owned()),
                            ("team".into(), "x".into()),
                        ],
                        _ => Vec::new(),
                    };
                    tx.replace_tags(&r.secret_id, &tags)?;
                }
                Ok(())
            })
            .unwrap();
        ids
    }

    fn filters_of(spec: &[(&str, &[&str])]) -> filters::CompiledFilters {
        let fs: Vec<filters::Filter> = spec
            .iter()
            .map(|(k, vs)| filters::Filter {
                key: Some((*k).to_owned()),
                values: Some(vs.iter().map(|v| (*v).to_owned()).collect()),
            })
            .collect();
        filters::compile(&fs).unwrap()
    }

    /// Every secret of the account and region, read one by one by id.
    fn all_views(store: &Store, ids: &[String]) -> Vec<SecretView> {
        let ids = ids.to_vec();
        store
            .read_blocking(move |tx| {
                let mut out = Vec::new();
                for id in &ids {
                    let r = tx.secret_by_id(id)?.unwrap();
                    out.push(tx.secret_view(r)?);
                }
                Ok(out)
            })
            .unwrap()
    }

    /// What the listing must answer: `views` filtered and sorted by position in memory.
    fn reference(
        views: &[SecretView],
        f: &filters::CompiledFilters,
        order: ListOrder,
        desc: bool,
        include_deleted: bool,
    ) -> Vec<String> {
        let mut views: Vec<&SecretView> = views
            .iter()
            .filter(|v| include_deleted || v.secret.deleted_at.is_none())
            .filter(|v| f.matches(&subject(v)))
            .collect();
        views.sort_by_key(|v| row_pos(order, &v.secret));
        if desc {
            views.reverse();
        }
        views
            .into_iter()
            .map(|v| v.secret.secret_id.clone())
            .collect()
    }

    const TINY: ReadLimits = ReadLimits {
        key_chunk: 3,
        max_keys: 7,
        max_rows: 4,
        max_prefix_candidates: 5,
    };

    fn check_all(store: &Store) {
        let ids = seed(store);
        let views = all_views(store, &ids);
        let specs: Vec<Vec<(&str, &[&str])>> = vec![
            vec![],
            vec![("name", &["a"])],
            vec![("name", &["prod"])],
            vec![("name", &["prod/", "b"])],
            vec![("name", &["a", "!ab"])],
            vec![("name", &["!prod"])],
            vec![("name", &["!prod", "!a"]), ("tag-key", &["env"])],
            vec![("name", &[""])],
            vec![("name", &["!"])],
            vec![("name", &["zzz"])],
            vec![("name", &["prod"]), ("tag-value", &["dev"])],
            vec![("name", &["a", "ab"])],
            vec![("name", &["prod"]), ("name", &["prod/l"])],
            vec![("description", &["number"])],
            vec![("all", &["prod"])],
        ];
        for spec in &specs {
            let f = filters_of(spec);
            for order in [
                ListOrder::Created,
                ListOrder::Changed,
                ListOrder::Accessed,
                ListOrder::Name,
            ] {
                for desc in [false, true] {
                    for include_deleted in [false, true] {
                        let want = reference(&views, &f, order, desc, include_deleted);
                        for (max, limits) in [
                            (4, ReadLimits::DEFAULT),
                            (7, ReadLimits::DEFAULT),
                            (100, ReadLimits::DEFAULT),
                            (3, TINY),
                        ] {
                            let what = format!(
                                "{spec:?} {order:?} desc={desc} deleted={include_deleted} \
                                     max={max} {limits:?}"
                            );
                            let pages =
                                paginate(store, &f, order, desc, include_deleted, max, limits);
                            let got: Vec<String> = pages.iter().flatten().cloned().collect();
                            assert_eq!(got, want, "{what}");
                            assert!(pages.iter().all(|p| p.len() <= max), "{what}");
                            if limits.max_keys == ReadLimits::DEFAULT.max_keys {
                                // Under the read limits: full pages, no empty last page.
                                let chunks: Vec<Vec<String>> = if want.is_empty() {
                                    vec![Vec::new()]
                                } else {
                                    want.chunks(max).map(<[String]>::to_vec).collect()
                                };
                                assert_eq!(pages, chunks, "{what}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every page of a listing, following its tokens (through their encoded form).
    fn paginate(
        store: &Store,
        f: &filters::CompiledFilters,
        order: ListOrder,
        desc: bool,
        include_deleted: bool,
        max: usize,
        limits: ReadLimits,
    ) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after: Option<ListPos> = None;
        for _ in 0..10_000 {
            let query = ListQuery {
                order,
                descending: desc,
                after: after.clone(),
                include_deleted,
                max,
                limits,
            };
            let f = f.clone();
            let (page, next) = store
                .read_blocking(move |tx| Ok(list_page(tx, ACCOUNT, REGION, &f, &query)?))
                .unwrap();
            pages.push(page.into_iter().map(|v| v.secret.secret_id).collect());
            match next {
                None => return pages,
                Some(p) => {
                    let token = values::encode_next_token("m", &cursor(p));
                    let c = values::decode_next_token("m", &token).unwrap();
                    after = Some(list_pos(order, c).unwrap());
                }
            }
        }
        panic!("the listing does not end");
    }

    #[test]
    fn pages_equal_the_whole_sorted_filtered_list_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/l.db", dir.path().display())).unwrap();
        check_all(&store);
    }

    #[test]
    fn pages_equal_the_whole_sorted_filtered_list_on_postgres() {
        let Some(store) = crate::store::fresh_postgres_store() else {
            eprintln!("skipped: STRONGROOM_TEST_DATABASE_URL is not set");
            return;
        };
        check_all(&store);
    }

    #[test]
    fn a_token_of_the_wrong_kind_is_invalid() {
        let num = Cursor {
            value: SortValue::Num(5),
            id: "x".into(),
        };
        let text = Cursor {
            value: SortValue::Text("n".into()),
            id: "x".into(),
        };
        assert!(matches!(
            list_pos(ListOrder::Name, num.clone()),
            Err(ApiError::InvalidNextToken(_))
        ));
        assert!(matches!(
            list_pos(ListOrder::Created, text),
            Err(ApiError::InvalidNextToken(_))
        ));
        assert_eq!(
            list_pos(
                ListOrder::Accessed,
                Cursor {
                    value: SortValue::Num(i64::MIN),
                    id: "x".into()
                }
            )
            .unwrap(),
            ListPos::Num(NEVER_ACCESSED, "x".into())
        );
        assert_eq!(
            list_pos(ListOrder::Changed, num).unwrap(),
            ListPos::Num(5, "x".into())
        );
    }
}
