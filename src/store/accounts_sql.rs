//! The accounts half of [`SqlStore`]: provisioned-account records and provisioning leases.
//!
//! A lease is one row per (app, iss, sub); claiming it is a single upsert that only replaces
//! an expired lease, so among replicas racing on one PostgreSQL exactly one wins.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::sql::SqlStore;
use super::url::Backend;
use super::{AccountKey, AccountRecord, StoreError};

const ACCOUNT_COLUMNS: &str = "app, iss, sub, username, account_id, attrs_hash, attributes, \
                               claims_at, created_at, updated_at, last_seen, deactivated_at";

fn account_from_row(row: &AnyRow) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        app: row.try_get("app")?,
        iss: row.try_get("iss")?,
        sub: row.try_get("sub")?,
        username: row.try_get("username")?,
        account_id: row.try_get("account_id")?,
        attrs_hash: row.try_get("attrs_hash")?,
        attributes: row.try_get("attributes")?,
        claims_at: row.try_get("claims_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seen: row.try_get("last_seen")?,
        deactivated_at: row.try_get("deactivated_at")?,
    })
}

impl SqlStore {
    pub(super) async fn get_account_row(
        &self,
        key: AccountKey<'_>,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE app = $1 AND iss = $2 AND sub = $3"
        ))
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub(super) async fn put_account_row(&self, a: &AccountRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (app, iss, sub) DO UPDATE SET username = excluded.username, \
             account_id = excluded.account_id, attrs_hash = excluded.attrs_hash, \
             attributes = excluded.attributes, claims_at = excluded.claims_at, \
             updated_at = excluded.updated_at, last_seen = excluded.last_seen \
             WHERE accounts.deactivated_at IS NULL AND accounts.claims_at <= excluded.claims_at"
        ))
        .bind(&a.app)
        .bind(&a.iss)
        .bind(&a.sub)
        .bind(&a.username)
        .bind(&a.account_id)
        .bind(&a.attrs_hash)
        .bind(&a.attributes)
        .bind(a.claims_at)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(a.last_seen)
        .bind(a.deactivated_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn deactivate_account_row(
        &self,
        key: AccountKey<'_>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET deactivated_at = $1, updated_at = $1 \
             WHERE app = $2 AND iss = $3 AND sub = $4",
        )
        .bind(at)
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn reactivate_account_row(
        &self,
        key: AccountKey<'_>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET deactivated_at = NULL, updated_at = $1 \
             WHERE app = $2 AND iss = $3 AND sub = $4 AND deactivated_at IS NOT NULL",
        )
        .bind(at)
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn forget_account_row(&self, key: AccountKey<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM accounts WHERE app = $1 AND iss = $2 AND sub = $3")
            .bind(key.app)
            .bind(key.iss)
            .bind(key.sub)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn touch_account_row(
        &self,
        key: AccountKey<'_>,
        last_seen: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET last_seen = $1 \
             WHERE app = $2 AND iss = $3 AND sub = $4 AND last_seen < $1",
        )
        .bind(last_seen)
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn list_account_rows(
        &self,
        app: &str,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE app = $1 ORDER BY last_seen, username"
        ))
        .bind(app)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// The database's clock in unix seconds, as SQL.
    fn db_now(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "CAST(strftime('%s', 'now') AS BIGINT)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)",
        }
    }

    pub(super) async fn claim_lease(
        &self,
        key: AccountKey<'_>,
        owner: &str,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let now = self.db_now();
        let row = sqlx::query(&format!(
            "INSERT INTO provisioning_leases (app, iss, sub, owner, expires_at) \
             VALUES ($1, $2, $3, $4, {now} + $5) \
             ON CONFLICT (app, iss, sub) DO UPDATE \
             SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE provisioning_leases.expires_at <= {now} \
             RETURNING owner"
        ))
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .bind(owner)
        .bind(lease_secs)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(row.try_get::<String, _>("owner")? == owner),
            None => Ok(false),
        }
    }

    pub(super) async fn release_lease(
        &self,
        key: AccountKey<'_>,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM provisioning_leases \
             WHERE app = $1 AND iss = $2 AND sub = $3 AND owner = $4",
        )
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn lease_held(&self, key: AccountKey<'_>) -> Result<bool, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT owner FROM provisioning_leases \
             WHERE app = $1 AND iss = $2 AND sub = $3 AND expires_at > {}",
            self.db_now()
        ))
        .bind(key.app)
        .bind(key.iss)
        .bind(key.sub)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}
