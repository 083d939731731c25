//! What jitgate changes outside itself over a user's life: their accounts in each app,
//! created and kept current through the app's own API ([`provision`]); purpose-based,
//! time-bound elevated access ([`grants`]: the per-request check, and the request, approve,
//! expire and end calls); and the company directory the IdP pushes over SCIM
//! ([`directory`]); and, for IdPs without SCIM, the claims refreshed with each login's
//! refresh token ([`claims_refresh`]). They read the validated policy and write through the
//! store.

pub mod claims_refresh;
pub mod directory;
pub mod grants;
pub mod provision;
