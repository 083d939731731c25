//! What jitgate records about its own work: audit events (written to the store, the
//! evidence auditors read) and Prometheus metrics (counters and latency histograms the
//! admin listener serves). Every layer above may record; nothing here decides anything.

pub mod audit;
pub mod metrics;
