//! The operator's commands beyond `run`: `jitgate accounts …` and `jitgate grants …`.

pub mod accounts;
pub mod grants;
pub mod operator;
