//! Counters and a latency histogram for the per-request path, kept per worker thread.
//!
//! A plain prometheus counter is one memory location that every worker thread writes on
//! every request, so the threads take turns on its cache line. Here each thread adds to its
//! own shard (one cache line per shard) and nothing shared is written; the shards are summed
//! when `/metrics` is scraped. Counters are then added to their ordinary prometheus series
//! (so names and labels stay what they were); the histogram is exported by its own collector.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto;

/// Shards per counter: threads beyond this many share them (still exact, just shared).
const SHARDS: usize = 16;

/// This thread's shard, assigned round-robin the first time it counts anything.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

#[derive(Default)]
#[repr(align(64))]
struct CounterShard(AtomicU64);

/// A counter each thread adds to in its own cache line.
pub struct HotCounter {
    shards: [CounterShard; SHARDS],
    /// How much of the sum prometheus has been given (see [`HotCounter::flush_into`]).
    flushed: Mutex<u64>,
}

impl Default for HotCounter {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| CounterShard::default()),
            flushed: Mutex::new(0),
        }
    }
}

impl std::fmt::Debug for HotCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HotCounter({})", self.sum())
    }
}

impl HotCounter {
    pub fn inc(&self) {
        if let Some(s) = self.shards.get(shard()) {
            s.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn sum(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Adds what was counted since the last flush to `counter`.
    pub fn flush_into(&self, counter: &prometheus::IntCounter) {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let sum = self.sum();
        counter.inc_by(sum.saturating_sub(*flushed));
        *flushed = sum.max(*flushed);
    }
}

/// Upper bounds (seconds) of the decision-latency buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.01, 0.1, 1.0,
];

/// One thread's buckets (the last one counts what is above every bound) and sum.
#[derive(Default)]
#[repr(align(64))]
struct HistogramShard {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A latency histogram each thread adds to in its own cache lines.
pub struct HotHistogram {
    shards: [HistogramShard; SHARDS],
}

impl Default for HotHistogram {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| HistogramShard::default()),
        }
    }
}

impl std::fmt::Debug for HotHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HotHistogram")
    }
}

impl HotHistogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let Some(shard) = self.shards.get(shard()) else {
            return;
        };
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = shard.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        shard.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Cumulative counts per bound, the total count and the sum in seconds.
    fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
        let mut sum_nanos = 0u64;
        for shard in &self.shards {
            for (total, b) in counts.iter_mut().zip(&shard.buckets) {
                *total += b.load(Ordering::Relaxed);
            }
            sum_nanos = sum_nanos.wrapping_add(shard.sum_nanos.load(Ordering::Relaxed));
        }
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        let mut running = 0;
        for c in counts.iter().take(LATENCY_BUCKETS.len()) {
            running += c;
            cumulative.push(running);
        }
        let total = counts.iter().sum();
        (cumulative, total, sum_nanos as f64 / 1e9)
    }
}

/// Exports one [`HotHistogram`] per app as `decision_seconds{app}`.
pub struct DecisionLatency {
    desc: Desc,
    by_app: Arc<Mutex<HashMap<String, Arc<super::AppMetrics>>>>,
}

impl DecisionLatency {
    pub fn new(
        by_app: Arc<Mutex<HashMap<String, Arc<super::AppMetrics>>>>,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            desc: Desc::new(
                "decision_seconds".into(),
                "Time from request head to forward/answer decision".into(),
                vec!["app".into()],
                HashMap::new(),
            )?,
            by_app,
        })
    }
}

impl Collector for DecisionLatency {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let apps: Vec<(String, Arc<super::AppMetrics>)> = {
            let by_app = self.by_app.lock().unwrap_or_else(|p| p.into_inner());
            by_app.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let mut family = proto::MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        for (app, metrics) in apps {
            let (cumulative, count, sum) = metrics.decision_latency.snapshot();
            let mut histogram = proto::Histogram::default();
            histogram.set_sample_count(count);
            histogram.set_sample_sum(sum);
            for (bound, cumulative) in LATENCY_BUCKETS.iter().zip(cumulative) {
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(*bound);
                bucket.set_cumulative_count(cumulative);
                histogram.mut_bucket().push(bucket);
            }
            let mut label = proto::LabelPair::default();
            label.set_name("app".into());
            label.set_value(app);
            let mut metric = proto::Metric::default();
            metric.mut_label().push(label);
            metric.set_histogram(histogram);
            family.mut_metric().push(metric);
        }
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_and_flush_once() {
        let counter = HotCounter::default();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..1000).for_each(|_| counter.inc()));
            }
        });
        assert_eq!(counter.sum(), 8000);
        let exported = prometheus::IntCounter::new("c", "c").unwrap();
        counter.flush_into(&exported);
        counter.flush_into(&exported);
        assert_eq!(exported.get(), 8000);
        counter.inc();
        counter.flush_into(&exported);
        assert_eq!(exported.get(), 8001);
    }

    #[test]
    fn latencies_land_in_cumulative_buckets() {
        let h = HotHistogram::default();
        h.observe(std::time::Duration::from_micros(3));
        h.observe(std::time::Duration::from_micros(40));
        h.observe(std::time::Duration::from_secs(2));
        let (cumulative, count, sum) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(cumulative[0], 1); // <= 5 µs
        assert_eq!(cumulative[3], 2); // <= 50 µs
        assert_eq!(cumulative[LATENCY_BUCKETS.len() - 1], 2); // <= 1 s
        assert!((sum - 2.000_043).abs() < 1e-9);
    }
}
