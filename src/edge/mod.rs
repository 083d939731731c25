//! The edge: pingora's `ProxyHttp` implementation, the request path every request takes.
//!
//! `proxy.rs` holds the phases and their chart; `admit.rs` the decision `request_filter`
//! makes, step by step; `request_target.rs` how the host and path are read;
//! `identity_headers.rs` what the app receives; `refusal.rs` the one table from refusals and
//! failures to HTTP answers, which `answer.rs` writes.

mod admit;
mod answer;
pub mod identity_headers;
pub mod proxy;
pub mod refusal;
pub mod request_target;
