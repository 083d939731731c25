//! Store URLs: the one place that knows which URL scheme names which backend.
//!
//! `sqlite://PATH` is the embedded default (one process); `postgres://` (or `postgresql://`)
//! is for several replicas sharing state. Config validation, the demo and [`super::open`]
//! all ask here, so a new backend is added in this file and its own `*_sql` code only.

use std::path::Path;

/// Which database a store URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The schemes a store URL may start with, for error messages.
pub const SCHEMES: &str = "sqlite:// or postgres://";

/// The backend `url` names, or `None` if its scheme is not one jitgate knows.
pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite://") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// The URL of the embedded store in the file at `path`.
pub fn embedded(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_name_backends_and_anything_else_is_refused() {
        assert_eq!(backend_of("sqlite://data/j.db"), Some(Backend::Sqlite));
        assert_eq!(backend_of("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("mysql://h/db"), None);
        assert_eq!(backend_of("data/j.db"), None);
        assert_eq!(
            backend_of(&embedded(Path::new("/var/lib/jitgate/j.db"))),
            Some(Backend::Sqlite)
        );
    }
}
