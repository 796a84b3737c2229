//! The unique ids of the roles declared in the policies directory (`migrations/*/role_ids`).

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::{StoreError, Tx};

diesel::table! {
    role_ids (account_id, role_name) {
        account_id -> Text,
        role_name -> Text,
        role_id -> Text,
        created_at -> BigInt,
    }
}

impl Tx<'_> {
    /// The id kept for role `name` of `account`, if the role is known.
    pub fn role_id(&mut self, account: &str, name: &str) -> Result<Option<String>, StoreError> {
        role_ids::table
            .filter(role_ids::account_id.eq(account))
            .filter(role_ids::role_name.eq(name))
            .select(role_ids::role_id)
            .get_result(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// The ids of `roles` (account, role name): the one kept for a role already known, one
    /// made by `new_id` for a role not known yet. The ids of roles not in `roles` are dropped:
    /// a role declared again later is a new role.
    pub fn sync_role_ids(
        &mut self,
        roles: &[(String, String)],
        now_ms: i64,
        mut new_id: impl FnMut() -> String,
    ) -> Result<BTreeMap<(String, String), String>, StoreError> {
        let known: Vec<(String, String, String)> = role_ids::table
            .select((role_ids::account_id, role_ids::role_name, role_ids::role_id))
            .load(self.conn)
            .map_err(|e| self.db(e))?;
        let mut out = BTreeMap::new();
        let wanted: std::collections::BTreeSet<&(String, String)> = roles.iter().collect();
        for (account, name, id) in known {
            let key = (account, name);
            if wanted.contains(&key) {
                out.insert(key, id);
            } else {
                diesel::delete(
                    role_ids::table
                        .filter(role_ids::account_id.eq(&key.0))
                        .filter(role_ids::role_name.eq(&key.1)),
                )
                .execute(self.conn)
                .map_err(|e| self.db(e))?;
            }
        }
        for key in roles {
            if out.contains_key(key) {
                continue;
            }
            let id = new_id();
            diesel::insert_into(role_ids::table)
                .values((
                    role_ids::account_id.eq(&key.0),
                    role_ids::role_name.eq(&key.1),
                    role_ids::role_id.eq(&id),
                    role_ids::created_at.eq(now_ms),
                ))
                .execute(self.conn)
                .map_err(|e| {
                    let err = self.db(e);
                    // Another server inserted the same role meanwhile: run again, reading its id.
                    if err.is_unique_violation() {
                        self.retry_on_failure();
                    }
                    err
                })?;
            out.insert(key.clone(), id);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_kept_while_declared_and_new_when_declared_again() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::Store::open(&format!("sqlite://{}/r.db", dir.path().display())).unwrap();
        let n = std::cell::Cell::new(0);
        let sync = |roles: &[(&str, &str)]| {
            let roles: Vec<(String, String)> = roles
                .iter()
                .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
                .collect();
            store
                .write_blocking(|tx| {
                    Ok(tx.sync_role_ids(&roles, 1, || {
                        n.set(n.get() + 1);
                        format!("AROA{}", n.get())
                    })?)
                })
                .unwrap()
        };
        let key = |a: &str, r: &str| (a.to_owned(), r.to_owned());
        let first = sync(&[("1", "a"), ("1", "b")]);
        assert_eq!(first[&key("1", "a")], "AROA1");
        assert_eq!(first[&key("1", "b")], "AROA2");
        let same = sync(&[("1", "a"), ("1", "b")]);
        assert_eq!(first, same);
        let without_b = sync(&[("1", "a")]);
        assert_eq!(without_b.len(), 1);
        let again = sync(&[("1", "a"), ("1", "b")]);
        assert_eq!(again[&key("1", "a")], "AROA1");
        assert_eq!(again[&key("1", "b")], "AROA3");
    }
}
