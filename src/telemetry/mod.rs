//! What jitgate records about its own work: audit events (written to the store, the
//! evidence auditors read), Prometheus metrics (counters and latency histograms the
//! admin listener serves) and the SCIM service's request log (`jitgate scim status`). Every
//! layer above may record; nothing here decides anything.

pub mod audit;
pub mod metrics;
pub mod scim_log;
