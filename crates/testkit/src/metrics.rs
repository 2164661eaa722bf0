//! A metrics recorder for tests: counts every counter by name and labels, so
//! a test can install it for its own thread (`metrics::set_default_local_recorder`)
//! and check what was counted without a process-wide exporter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counters keyed `name{label=value,…}` (labels in the order they were given).
#[derive(Default)]
pub struct CountingRecorder(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl CountingRecorder {
    /// The value of counter `name` with exactly `labels` (e.g. `"outcome=ok"`), 0 if never counted.
    pub fn get(&self, name: &str, labels: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&format!("{name}{{{labels}}}"))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl CountingRecorder {
    /// Every counter seen, as `name{labels}`: to check that no label carries
    /// something it must not (a client id, a user).
    pub fn keys(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::Counter::from_arc(Arc::clone(all.entry(name).or_default()))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
