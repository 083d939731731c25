//! The claims-refresh record: one per login that brought a refresh token, while
//! `session.refresh_claims` is on.
//!
//! The refresh token itself is kept sealed (the store never holds it in plain text); the row
//! says when the login is next due, which replica holds it now (a lease), and which groups
//! were last applied, so a refresh can tell whether they changed.

/// One login whose claims jitgate refreshes. Times are unix ms unless named otherwise.
#[derive(Clone, PartialEq)]
pub struct ClaimsRefreshRecord {
    /// A random id chosen at login.
    pub login_id: String,
    pub iss: String,
    pub sub: String,
    /// Unix seconds of the login and the IdP's session id (when it sends one): the row lives
    /// while a session with both does.
    pub login_at: i64,
    pub sid: Option<String>,
    /// The sealed refresh token (see `auth::sealed`); never logged, not even sealed.
    pub refresh_token: String,
    /// JSON list of the groups last applied; `None` when the IdP's answers carry none.
    pub groups: Option<String>,
    pub next_at_ms: i64,
    /// Refreshes in a row that did not get an answer (the IdP down, say).
    pub failures: i64,
    pub created_at_ms: i64,
    /// The lease this copy was taken under (unix ms it runs to; 0 when not taken): its
    /// refresh is recorded only while the row still has this lease (see [`ClaimsRefreshDone`]).
    /// Ignored when the row is put.
    pub lease_until_ms: i64,
}

impl std::fmt::Debug for ClaimsRefreshRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimsRefreshRecord")
            .field("login_id", &self.login_id)
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("login_at", &self.login_at)
            .field("sid", &self.sid)
            .field("refresh_token", &"***")
            .field("groups", &self.groups)
            .field("next_at_ms", &self.next_at_ms)
            .field("failures", &self.failures)
            .field("created_at_ms", &self.created_at_ms)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish()
    }
}

/// How one refresh went, to record on the row (which is released for the next one, unless
/// `release` is false: a write in the middle of a refresh).
///
/// It applies only while the row still holds `lease_until_ms`, the lease the refresh was
/// taken under: once that ran out and another replica took the row, the other replica's
/// refresh is the one that counts (its rotated token is the newer one).
#[derive(Clone, PartialEq)]
pub struct ClaimsRefreshDone<'a> {
    pub login_id: &'a str,
    /// The lease the refresh holds ([`ClaimsRefreshRecord::lease_until_ms`] as taken).
    pub lease_until_ms: i64,
    /// False keeps the lease: the refresh goes on and writes again.
    pub release: bool,
    /// The rotated refresh token, sealed, when the IdP sent a new one.
    pub refresh_token: Option<&'a str>,
    /// The groups now applied, when they changed.
    pub groups: Option<&'a str>,
    pub next_at_ms: i64,
    pub failures: i64,
}
