//! The directory half of [`SqlStore`]: SCIM users, groups and memberships.
//!
//! Uniqueness is the database's job, not a check before the write: unique indexes on the
//! lowercased userName/displayName and on externalId make a racing second create fail, and
//! that unique violation becomes [`DirectoryWrite::Duplicate`]. A replace is a
//! compare-and-swap on `version`. Writes that touch memberships run in one transaction that on
//! PostgreSQL first takes a transaction-scoped advisory lock, so a group write and a member's
//! deletion never interleave (SQLite has one writer at a time anyway). Reads of groups run in
//! one snapshot (a read transaction; REPEATABLE READ on PostgreSQL), so a group's version and
//! its members agree. A user's write and the lifecycle jobs it causes commit in one
//! transaction. Orders are computed here, byte-wise, so both backends sort alike
//! whatever the database's collation.

use std::collections::{BTreeSet, HashMap};

use sqlx::any::{AnyQueryResult, AnyRow};
use sqlx::{Any, Executor, Row, Transaction};

use super::directory::name_key;
use super::lifecycle_sql::insert_jobs;
use super::sql::SqlStore;
use super::url::Backend;
use super::{
    DirectoryGroup, DirectoryKey, DirectoryUser, DirectoryWrite, LifecycleJob, StoreError,
};

const USER_COLUMNS: &str =
    "id, user_name, external_id, active, resource, version, created_at_ms, updated_at_ms";

const GROUP_COLUMNS: &str =
    "id, display_name, external_id, resource, version, created_at_ms, updated_at_ms";

/// Members added per INSERT: well under either database's limit on bound parameters.
const MEMBERS_PER_INSERT: usize = 500;

/// The PostgreSQL advisory lock that serializes directory writes touching memberships.
const DIRECTORY_WRITE_LOCK: i64 = 0x6a69_7464_6972; // "jitdir"

/// Which groups a read wants: SQL over `directory_groups`, with `$1` bound to the argument.
const ALL_GROUPS: &str = "";
const GROUP_BY_ID: &str = "WHERE id = $1";
const GROUPS_OF_USER: &str =
    "WHERE id IN (SELECT group_id FROM directory_members WHERE user_id = $1)";

fn user_from_row(row: &AnyRow) -> Result<DirectoryUser, StoreError> {
    Ok(DirectoryUser {
        id: row.try_get("id")?,
        user_name: row.try_get("user_name")?,
        external_id: row.try_get("external_id")?,
        active: row.try_get::<i64, _>("active")? != 0,
        resource: row.try_get("resource")?,
        version: row.try_get("version")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn group_from_row(row: &AnyRow, members: Vec<String>) -> Result<DirectoryGroup, StoreError> {
    Ok(DirectoryGroup {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        external_id: row.try_get("external_id")?,
        resource: row.try_get("resource")?,
        members,
        version: row.try_get("version")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// `Ok(None)` when the statement broke a unique index: the id, name or externalId is taken.
fn unless_duplicate(
    result: Result<AnyQueryResult, sqlx::Error>,
) -> Result<Option<AnyQueryResult>, StoreError> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

impl SqlStore {
    pub(super) async fn put_directory_user_row(
        &self,
        u: &DirectoryUser,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        // The jobs a write causes commit with it or not at all.
        let mut tx = self.pool().begin().await?;
        let result = match read_version {
            None => {
                sqlx::query(&format!(
                    "INSERT INTO directory_users ({USER_COLUMNS}, user_name_key) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)"
                ))
                .bind(&u.id)
                .bind(&u.user_name)
                .bind(&u.external_id)
                .bind(i64::from(u.active))
                .bind(&u.resource)
                .bind(u.created_at_ms)
                .bind(u.updated_at_ms)
                .bind(name_key(&u.user_name))
                .execute(&mut *tx)
                .await
            }
            Some(read_version) => {
                sqlx::query(
                    "UPDATE directory_users SET user_name = $1, user_name_key = $2, \
                     external_id = $3, active = $4, resource = $5, updated_at_ms = $6, \
                     version = version + 1 WHERE id = $7 AND version = $8",
                )
                .bind(&u.user_name)
                .bind(name_key(&u.user_name))
                .bind(&u.external_id)
                .bind(i64::from(u.active))
                .bind(&u.resource)
                .bind(u.updated_at_ms)
                .bind(&u.id)
                .bind(read_version)
                .execute(&mut *tx)
                .await
            }
        };
        let Some(done) = unless_duplicate(result)? else {
            tx.rollback().await?;
            return Ok(DirectoryWrite::Duplicate);
        };
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return self.missing_or_stale("directory_users", &u.id).await;
        }
        insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(DirectoryWrite::Written)
    }

    /// Why a compare-and-swap on `table` wrote nothing: the id is gone, or the version moved.
    async fn missing_or_stale(&self, table: &str, id: &str) -> Result<DirectoryWrite, StoreError> {
        let found = sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match found {
            Some(_) => DirectoryWrite::Stale,
            None => DirectoryWrite::Missing,
        })
    }

    pub(super) async fn get_directory_user_row(
        &self,
        key: DirectoryKey<'_>,
    ) -> Result<Option<DirectoryUser>, StoreError> {
        let (column, value) = match key {
            DirectoryKey::Id(id) => ("id", id.to_string()),
            DirectoryKey::UserName(name) => ("user_name_key", name_key(name)),
            DirectoryKey::ExternalId(external_id) => ("external_id", external_id.to_string()),
        };
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM directory_users WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub(super) async fn list_directory_user_rows(&self) -> Result<Vec<DirectoryUser>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM directory_users"))
            .fetch_all(self.pool())
            .await?;
        let mut users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(users)
    }

    pub(super) async fn delete_directory_user_row(
        &self,
        id: &str,
        at_ms: i64,
        jobs: &[LifecycleJob],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_directory_write().await?;
        let done = sqlx::query("DELETE FROM directory_users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE directory_groups SET version = version + 1, updated_at_ms = $1 \
             WHERE id IN (SELECT group_id FROM directory_members WHERE user_id = $2)",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM directory_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn put_directory_group_row(
        &self,
        g: &DirectoryGroup,
        read_version: Option<i64>,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        let mut tx = self.begin_directory_write().await?;
        let result = match read_version {
            None => {
                sqlx::query(&format!(
                    "INSERT INTO directory_groups ({GROUP_COLUMNS}, display_name_key) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $7)"
                ))
                .bind(&g.id)
                .bind(&g.display_name)
                .bind(&g.external_id)
                .bind(&g.resource)
                .bind(g.created_at_ms)
                .bind(g.updated_at_ms)
                .bind(name_key(&g.display_name))
                .execute(&mut *tx)
                .await
            }
            Some(read_version) => {
                sqlx::query(
                    "UPDATE directory_groups SET display_name = $1, display_name_key = $2, \
                     external_id = $3, resource = $4, updated_at_ms = $5, \
                     version = version + 1 WHERE id = $6 AND version = $7",
                )
                .bind(&g.display_name)
                .bind(name_key(&g.display_name))
                .bind(&g.external_id)
                .bind(&g.resource)
                .bind(g.updated_at_ms)
                .bind(&g.id)
                .bind(read_version)
                .execute(&mut *tx)
                .await
            }
        };
        let Some(done) = unless_duplicate(result)? else {
            tx.rollback().await?;
            return Ok(DirectoryWrite::Duplicate);
        };
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return self.missing_or_stale("directory_groups", &g.id).await;
        }
        sqlx::query("DELETE FROM directory_members WHERE group_id = $1")
            .bind(&g.id)
            .execute(&mut *tx)
            .await?;
        let members: Vec<&String> = g
            .members
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in members.chunks(MEMBERS_PER_INSERT) {
            // Only ids that name a user become members; the rest are dropped.
            let placeholders = (2..chunk.len() + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO directory_members (group_id, user_id) \
                 SELECT CAST($1 AS TEXT), id FROM directory_users WHERE id IN ({placeholders})"
            );
            let mut insert = sqlx::query(&sql).bind(&g.id);
            for member in chunk {
                insert = insert.bind(*member);
            }
            insert.execute(&mut *tx).await?;
        }
        insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(DirectoryWrite::Written)
    }

    pub(super) async fn get_directory_group_row(
        &self,
        id: &str,
    ) -> Result<Option<DirectoryGroup>, StoreError> {
        Ok(self.load_groups(GROUP_BY_ID, Some(id)).await?.pop())
    }

    pub(super) async fn list_directory_group_rows(
        &self,
    ) -> Result<Vec<DirectoryGroup>, StoreError> {
        self.load_groups(ALL_GROUPS, None).await
    }

    pub(super) async fn groups_of_directory_user_rows(
        &self,
        user_id: &str,
    ) -> Result<Vec<DirectoryGroup>, StoreError> {
        self.load_groups(GROUPS_OF_USER, Some(user_id)).await
    }

    pub(super) async fn delete_directory_group_row(
        &self,
        id: &str,
        read_version: i64,
        jobs: &[LifecycleJob],
    ) -> Result<DirectoryWrite, StoreError> {
        let mut tx = self.begin_directory_write().await?;
        let done = sqlx::query("DELETE FROM directory_groups WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(read_version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return self.missing_or_stale("directory_groups", id).await;
        }
        sqlx::query("DELETE FROM directory_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(DirectoryWrite::Written)
    }

    /// The groups `filter` selects (one of the `*_GROUP*` constants, `$1` bound to `arg`),
    /// each with its members, oldest first. A membership counts only while its user exists.
    async fn load_groups(
        &self,
        filter: &str,
        arg: Option<&str>,
    ) -> Result<Vec<DirectoryGroup>, StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let groups_sql = format!("SELECT {GROUP_COLUMNS} FROM directory_groups {filter}");
        let members_sql = format!(
            "SELECT m.group_id, m.user_id FROM directory_members m \
             JOIN directory_users u ON u.id = m.user_id \
             WHERE m.group_id IN (SELECT id FROM directory_groups {filter})"
        );
        let mut groups_query = sqlx::query(&groups_sql);
        let mut members_query = sqlx::query(&members_sql);
        if let Some(arg) = arg {
            groups_query = groups_query.bind(arg);
            members_query = members_query.bind(arg);
        }
        let group_rows = groups_query.fetch_all(&mut *tx).await?;
        let member_rows = members_query.fetch_all(&mut *tx).await?;
        tx.commit().await?;

        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for row in &member_rows {
            let group_id: String = row.try_get("group_id")?;
            members
                .entry(group_id)
                .or_default()
                .push(row.try_get("user_id")?);
        }
        let mut groups = group_rows
            .iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let mut ids = members.remove(&id).unwrap_or_default();
                ids.sort();
                ids.dedup();
                group_from_row(row, ids)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        groups.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(groups)
    }

    /// A transaction for a directory write that touches memberships: serialized with every
    /// other such write (PostgreSQL advisory lock; SQLite has a single writer).
    async fn begin_directory_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(DIRECTORY_WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// A read-only transaction whose statements all see one snapshot of the database.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Postgres {
            (&mut *tx)
                .execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await?;
        }
        Ok(tx)
    }
}
