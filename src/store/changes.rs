//! Change notifications, a store capability: how one replica hears that another changed a
//! user's grants or ended sessions.
//!
//! On PostgreSQL every grant write is announced with `NOTIFY` on [`GRANTS_CHANNEL`] (see
//! `grants_sql::announce`), and every statement that deletes sessions announces their id
//! hashes on [`SESSIONS_CHANNEL`] (see `sessions_sql`), in the same transaction. [`listen`]
//! holds a `LISTEN` connection for one channel, reconnecting every second, and turns each
//! notification into a change ([`GrantChange`], [`SessionChange`]). A dropped connection may
//! have missed some, so it reports `Missed` then and on every reconnect, and the listener
//! re-reads everything. SQLite has no such feed: it serves one process, whose own writes
//! apply at once, and callers re-read after a short interval instead.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

/// The PostgreSQL channel on which grant changes are announced.
pub const GRANTS_CHANNEL: &str = "jitgate_grants";

/// The PostgreSQL channel on which ended sessions are announced (payload: their id hashes,
/// one per line).
pub const SESSIONS_CHANNEL: &str = "jitgate_sessions";

/// A kind of change announced on one channel: how to read its payloads.
pub(super) trait Announced: Sized + Send + 'static {
    /// The channel it is announced on.
    const CHANNEL: &'static str;
    /// What changes, for the log ("grant", "session").
    const WHAT: &'static str;
    /// Reads one payload; `None` for one this version does not understand.
    fn parse(payload: &str) -> Option<Self>;
    /// Notifications may have been lost: everything must be re-read.
    fn missed() -> Self;
}

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

impl Announced for GrantChange {
    const CHANNEL: &'static str = GRANTS_CHANNEL;
    const WHAT: &'static str = "grant";

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

    fn missed() -> Self {
        GrantChange::Missed
    }
}

/// Sessions ended (or changed, for a mover) by any process sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// These sessions (id hashes) were deleted or their identity replaced: drop them from
    /// the cache (a changed one is read again from the store on its next request).
    Changed(Vec<String>),
    /// Notifications may have been lost (connection dropped or re-made): drop every cached
    /// session, so each is read from the store again.
    Missed,
}

impl Announced for SessionChange {
    const CHANNEL: &'static str = SESSIONS_CHANNEL;
    const WHAT: &'static str = "session";

    /// Reads a notification payload: id hashes, one per line.
    fn parse(payload: &str) -> Option<Self> {
        let hashes: Vec<String> = payload
            .split('\n')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        (!hashes.is_empty()).then_some(SessionChange::Changed(hashes))
    }

    fn missed() -> Self {
        SessionChange::Missed
    }
}

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Starts listening on PostgreSQL at `url` for changes of kind `C`; the feed ends when the
/// receiver is dropped.
pub(super) fn listen<C: Announced>(url: String) -> mpsc::Receiver<C> {
    let (send, receive) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(C::CHANNEL).await {
                    Ok(()) => {
                        if send.send(C::missed()).await.is_err() {
                            return;
                        }
                        if !relay(&mut listener, &send).await {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for {} changes", C::WHAT),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect for {} notifications", C::WHAT)
                }
            }
            if send.send(C::missed()).await.is_err() {
                return;
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
    receive
}

/// Passes notifications on until the connection fails (true) or nobody listens (false).
async fn relay<C: Announced>(listener: &mut PgListener, send: &mpsc::Sender<C>) -> bool {
    loop {
        let change = match listener.try_recv().await {
            Ok(Some(n)) => match C::parse(n.payload()) {
                Some(change) => change,
                None => continue,
            },
            // The connection dropped (sqlx reconnects): notifications may have been missed.
            Ok(None) => {
                tracing::warn!(
                    "{} notifications interrupted; re-reading {}s",
                    C::WHAT,
                    C::WHAT
                );
                C::missed()
            }
            Err(e) => {
                tracing::warn!(error = %e, "{} notifications failed", C::WHAT);
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

    #[test]
    fn session_payloads_list_the_ended_hashes() {
        assert_eq!(
            SessionChange::parse("h1\nh2"),
            Some(SessionChange::Changed(vec!["h1".into(), "h2".into()]))
        );
        assert_eq!(SessionChange::parse(""), None);
    }
}
