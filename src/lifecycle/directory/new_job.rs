//! A new lifecycle job, as the directory's writes (and a claims refresh) queue it: a row due
//! now, with who caused it and why, for the runner in `effects.rs` to take.

use serde_json::Value;

use crate::store::LifecycleJob;
use crate::util::clock::now_ms;
use crate::util::random::{uuid, RandomError};

/// A new pending job, due now.
pub fn job(
    kind: &str,
    subject: Value,
    by: &str,
    reason: &str,
) -> Result<LifecycleJob, RandomError> {
    let now = now_ms();
    Ok(LifecycleJob {
        id: uuid()?,
        kind: kind.to_string(),
        subject: subject.to_string(),
        by: by.to_string(),
        reason: reason.to_string(),
        state: "pending".into(),
        attempts: 0,
        next_at_ms: now,
        created_at_ms: now,
        updated_at_ms: now,
        last_error: None,
    })
}
