//! The sign-in half of [`SqlStore`]: login transactions (state kept between the redirect to
//! the IdP and its callback) and hand-off codes (a fresh login moving to an app host). Both are
//! single-use, so they are taken with `DELETE … RETURNING`: two racing requests can never
//! both consume one.

use sqlx::Row;

use super::sql::SqlStore;
use super::{Handoff, LoginTransaction, StoreError};

impl SqlStore {
    pub(super) async fn put_login_transaction_row(
        &self,
        t: &LoginTransaction,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_transactions \
             (state_hash, browser_hash, nonce, pkce_verifier, target_host, return_to, \
              target_binding_hash, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.state_hash)
        .bind(&t.browser_hash)
        .bind(&t.nonce)
        .bind(&t.pkce_verifier)
        .bind(&t.target_host)
        .bind(&t.return_to)
        .bind(&t.target_binding_hash)
        .bind(t.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn take_login_transaction_row(
        &self,
        state_hash: &str,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM login_transactions WHERE state_hash = $1 RETURNING \
             state_hash, browser_hash, nonce, pkce_verifier, target_host, return_to, \
             target_binding_hash, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(LoginTransaction {
            state_hash: row.try_get("state_hash")?,
            browser_hash: row.try_get("browser_hash")?,
            nonce: row.try_get("nonce")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
            target_host: row.try_get("target_host")?,
            return_to: row.try_get("return_to")?,
            target_binding_hash: row.try_get("target_binding_hash")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    pub(super) async fn put_handoff_row(&self, h: &Handoff) -> Result<(), StoreError> {
        let session =
            serde_json::to_string(&h.session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO handoffs \
             (code_hash, target_host, return_to, browser_hash, session, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&h.code_hash)
        .bind(&h.target_host)
        .bind(&h.return_to)
        .bind(&h.browser_hash)
        .bind(session)
        .bind(h.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn take_handoff_row(
        &self,
        code_hash: &str,
    ) -> Result<Option<Handoff>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM handoffs WHERE code_hash = $1 \
             RETURNING code_hash, target_host, return_to, browser_hash, session, expires_at",
        )
        .bind(code_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session: String = row.try_get("session")?;
        Ok(Some(Handoff {
            code_hash: row.try_get("code_hash")?,
            target_host: row.try_get("target_host")?,
            return_to: row.try_get("return_to")?,
            browser_hash: row.try_get("browser_hash")?,
            session: serde_json::from_str(&session)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}
