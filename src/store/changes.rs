//! Change notifications, a store capability: how one replica hears that another changed a
//! user's grants.
//!
//! On PostgreSQL every grant write is announced with `NOTIFY` on [`GRANTS_CHANNEL`] (see
//! `grants_sql::announce`); [`listen`] holds a `LISTEN` connection, reconnecting every
//! second, and turns each notification into a [`GrantChange`]. A dropped connection may have
//! missed some, so it reports [`GrantChange::Missed`] then and on every reconnect, and the
//! listener re-reads everything. SQLite has no such feed: it serves one process, whose own
//! writes apply at once, and callers re-read after a short interval instead.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

/// The PostgreSQL channel on which grant changes are announced.
pub const GRANTS_CHANNEL: &str = "jitgate_grants";

/// One announced grant change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    /// Some grant of this user changed: re-read their grants.
    User {
        iss: String,
        sub: String,
        /// Set when the change was a revocation: the grant id, and when it would have
        /// ended (ms), so a replica refuses it even before it re-reads.
        revoked: Option<(String, i64)>,
    },
    /// Notifications may have been lost (connection dropped or re-made): re-read everyone.
    Missed,
}

impl GrantChange {
    /// Reads a notification payload: `iss\nsub\nid\nstatus\nexpires_at`.
    fn parse(payload: &str) -> Option<Self> {
        let parts: Vec<&str> = payload.split('\n').collect();
        let [iss, sub, rest @ ..] = parts.as_slice() else {
            return None;
        };
        let revoked = match rest {
            [id, "revoked", until, ..] => Some((id.to_string(), until.parse().unwrap_or(i64::MAX))),
            _ => None,
        };
        Some(GrantChange::User {
            iss: iss.to_string(),
            sub: sub.to_string(),
            revoked,
        })
    }
}

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Starts listening on PostgreSQL at `url`; the feed ends when the receiver is dropped.
pub(super) fn listen(url: String) -> mpsc::Receiver<GrantChange> {
    let (send, receive) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(GRANTS_CHANNEL).await {
                    Ok(()) => {
                        if send.send(GrantChange::Missed).await.is_err() {
                            return;
                        }
                        if !relay(&mut listener, &send).await {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for grant changes"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot connect for grant notifications"),
            }
            if send.send(GrantChange::Missed).await.is_err() {
                return;
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
    receive
}

/// Passes notifications on until the connection fails (true) or nobody listens (false).
async fn relay(listener: &mut PgListener, send: &mpsc::Sender<GrantChange>) -> bool {
    loop {
        let change = match listener.try_recv().await {
            Ok(Some(n)) => match GrantChange::parse(n.payload()) {
                Some(change) => change,
                None => continue,
            },
            // The connection dropped (sqlx reconnects): notifications may have been missed.
            Ok(None) => {
                tracing::warn!("grant notifications interrupted; re-reading grants");
                GrantChange::Missed
            }
            Err(e) => {
                tracing::warn!(error = %e, "grant notifications failed");
                return true;
            }
        };
        if send.send(change).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_user_and_a_revocation() {
        assert_eq!(
            GrantChange::parse("https://idp\nsub-1\ng-1\nrevoked\n1700"),
            Some(GrantChange::User {
                iss: "https://idp".into(),
                sub: "sub-1".into(),
                revoked: Some(("g-1".into(), 1700)),
            })
        );
        assert_eq!(
            GrantChange::parse("https://idp\nsub-1\ng-1\nactive\n1700"),
            Some(GrantChange::User {
                iss: "https://idp".into(),
                sub: "sub-1".into(),
                revoked: None,
            })
        );
        assert_eq!(GrantChange::parse("garbage"), None);
    }
}
