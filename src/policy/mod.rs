//! Policy files: `policies/*.yaml -> PolicyFile (raw) -> validate -> PolicySet (ready to use)`.
//!
//! One file describes one app: the hosts it is served on, its upstream, the identity headers
//! jitgate sends it, and ordered routes saying who may reach which paths. Anything no route
//! allows is denied. `load_dir` validates every file and the set as a whole (an app name or a
//! host claimed twice is an error) and reports all problems as `file:line:column: message`.
//! A [`Permitted`] can only be made by [`AppPolicy::decide`], so code after the check cannot
//! forget it.

pub mod connector;
mod file;
mod grants;
pub mod header_names;
mod header_rules;
mod load;
pub mod path_pattern;
#[cfg(test)]
mod properties;
mod provisioning;
mod validate;
mod validated;

pub use grants::GrantType;
pub use header_rules::{wire_name, WELL_KNOWN_IDENTITY_HEADERS};
pub use load::load_dir;
pub use path_pattern::{normalize_path, without_path_parameters, PathError, PathPattern};
pub use validated::{
    Allow, AppPolicy, IdentityHeader, Permitted, PolicySet, Route, RouteDenied, Upstream,
};
