//! The edge: pingora's `ProxyHttp` implementation, the request path every request takes.

pub mod identity_headers;
pub mod proxy;
pub mod refusal;
