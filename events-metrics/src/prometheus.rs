//! A Prometheus registry that is a [`metrics::Recorder`]: counters and
//! gauges are one atomic each, histograms fixed buckets of atomics, so
//! recording never allocates and never locks; [`PrometheusRecorder::render`]
//! writes the text exposition format (0.0.4).
//!
//! Why not `metrics-exporter-prometheus`: its histograms keep every sample
//! in a growing chain of blocks until a scrape or an upkeep task drains
//! them, so recording allocates a block now and then and memory grows
//! while nobody scrapes. These histograms are a fixed set of counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// The buckets of a histogram no rule names, in seconds (Prometheus's
/// client defaults).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus registry and recorder. Clones share the registry: install
/// one as the global recorder (`metrics::set_global_recorder(r.clone())`)
/// and render with another, or give it to
/// [`Metrics::from_prometheus`](crate::Metrics::from_prometheus).
#[derive(Clone, Default)]
pub struct PrometheusRecorder {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
    buckets: Mutex<Vec<(String, Arc<[f64]>)>>,
}

#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<Kind>,
    series: BTreeMap<Vec<(String, String)>, Series>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

enum Series {
    Counter(Arc<Atomic>),
    Gauge(Arc<Atomic>),
    Histogram(Arc<Buckets>),
}

/// A counter (`u64`) or a gauge (`f64` bits).
#[derive(Default)]
struct Atomic(AtomicU64);

impl CounterFn for Atomic {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// Adds `delta` to the `f64` stored as bits in `cell`.
fn add_f64(cell: &AtomicU64, delta: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + delta).to_bits())
    });
}

impl GaugeFn for Atomic {
    fn increment(&self, value: f64) {
        add_f64(&self.0, value);
    }
    fn decrement(&self, value: f64) {
        add_f64(&self.0, -value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A histogram: a count per bucket (not cumulative), the overflow, the sum.
struct Buckets {
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }
    fn record_many(&self, value: f64, count: usize) {
        let slot = self.bounds.partition_point(|bound| *bound < value);
        self.counts[slot].fetch_add(count as u64, Ordering::Relaxed);
        add_f64(&self.sum, value * count as f64);
    }
}

impl PrometheusRecorder {
    /// An empty registry whose histograms use [`DEFAULT_BUCKETS`] unless
    /// [`buckets`](Self::buckets) names theirs.
    pub fn new() -> PrometheusRecorder {
        PrometheusRecorder::default()
    }

    /// Gives the histogram `name` these upper bounds (sorted here; not-a-
    /// number dropped). Histograms made before keep theirs.
    pub fn buckets(self, name: &str, bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| !b.is_nan()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        lock(&self.inner.buckets).push((name.to_owned(), bounds.into()));
        self
    }

    fn bounds(&self, name: &str) -> Arc<[f64]> {
        lock(&self.inner.buckets)
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or_else(|| DEFAULT_BUCKETS.into(), |(_, b)| Arc::clone(b))
    }

    fn describe(&self, name: KeyName, kind: Kind, description: SharedString) {
        let mut families = lock(&self.inner.families);
        let family = families.entry(name.as_str().to_owned()).or_default();
        family.kind.get_or_insert(kind);
        family.help = Some(description.into_owned());
    }

    /// The series of `key`, made with `make` the first time. A name
    /// registered as another type gets a series that records but is not
    /// rendered.
    fn series<T>(
        &self,
        key: &Key,
        kind: Kind,
        make: impl Fn() -> Series,
        pick: impl Fn(&Series) -> Option<T>,
    ) -> T {
        let mut families = lock(&self.inner.families);
        let family = families.entry(key.name().to_owned()).or_default();
        family.kind.get_or_insert(kind);
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let series = family.series.entry(labels).or_insert_with(&make);
        match pick(series) {
            Some(handle) => handle,
            // Another type under this name: a detached series.
            None => {
                drop(families);
                pick(&make()).expect("a fresh series of the asked type")
            }
        }
    }

    /// The text exposition format (0.0.4) of every series: families by
    /// name, each with its `# HELP` and `# TYPE`, series sorted by labels;
    /// histograms as cumulative `_bucket{le=..}` series, `_sum` and
    /// `_count`.
    pub fn render(&self) -> String {
        let families = lock(&self.inner.families);
        let mut out = String::new();
        for (name, family) in families.iter() {
            let Some(kind) = family.kind else { continue };
            if let Some(help) = &family.help {
                let help = help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let type_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# TYPE {name} {type_name}");
            for (labels, series) in &family.series {
                match (kind, series) {
                    (Kind::Counter, Series::Counter(c)) => {
                        let value = c.0.load(Ordering::Relaxed);
                        let _ = writeln!(out, "{name}{} {value}", label_set(labels, None));
                    }
                    (Kind::Gauge, Series::Gauge(g)) => {
                        let value = f64::from_bits(g.0.load(Ordering::Relaxed));
                        let _ =
                            writeln!(out, "{name}{} {}", label_set(labels, None), number(value));
                    }
                    (Kind::Histogram, Series::Histogram(h)) => {
                        let mut cumulative = 0u64;
                        for (i, count) in h.counts.iter().enumerate() {
                            cumulative += count.load(Ordering::Relaxed);
                            let le = h
                                .bounds
                                .get(i)
                                .map_or_else(|| "+Inf".to_owned(), |b| number(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_set(labels, Some(&le))
                            );
                        }
                        let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
                        let set = label_set(labels, None);
                        let _ = writeln!(out, "{name}_sum{set} {}", number(sum));
                        let _ = writeln!(out, "{name}_count{set} {cumulative}");
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for PrometheusRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let families = lock(&self.inner.families).len();
        f.debug_struct("PrometheusRecorder")
            .field("families", &families)
            .finish()
    }
}

/// `{a="1",b="2"}` with `le` last, escaped; empty when there is no label.
fn label_set(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A number as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, else Rust's
/// shortest form (`3`, `0.25`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Counter, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Gauge, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Histogram, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.series(
            key,
            Kind::Counter,
            || Series::Counter(Arc::default()),
            |s| match s {
                Series::Counter(c) => Some(Counter::from_arc(Arc::clone(c))),
                _ => None,
            },
        )
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.series(
            key,
            Kind::Gauge,
            || Series::Gauge(Arc::default()),
            |s| match s {
                Series::Gauge(g) => Some(Gauge::from_arc(Arc::clone(g))),
                _ => None,
            },
        )
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let bounds = self.bounds(key.name());
        let make = || {
            Series::Histogram(Arc::new(Buckets {
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                bounds: Arc::clone(&bounds),
                sum: AtomicU64::new(0f64.to_bits()),
            }))
        };
        self.series(key, Kind::Histogram, make, |s| match s {
            Series::Histogram(h) => Some(Histogram::from_arc(Arc::clone(h))),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_fixed_buckets_and_render_cumulatively() {
        let recorder = PrometheusRecorder::new().buckets("h_seconds", &[1.0, 0.1]);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("h_seconds", "a\nb");
            let h = metrics::histogram!("h_seconds", "q" => "a\"b");
            for v in [0.05, 0.1, 0.5, 2.0] {
                h.record(v);
            }
            metrics::counter!("c_total").increment(2);
            metrics::gauge!("g", "x" => "1").set(-1.5);
        });
        let text = recorder.render();
        assert_eq!(
            text,
            "# TYPE c_total counter\nc_total 2\n\
             # TYPE g gauge\ng{x=\"1\"} -1.5\n\
             # HELP h_seconds a\\nb\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{q=\"a\\\"b\",le=\"0.1\"} 2\n\
             h_seconds_bucket{q=\"a\\\"b\",le=\"1\"} 3\n\
             h_seconds_bucket{q=\"a\\\"b\",le=\"+Inf\"} 4\n\
             h_seconds_sum{q=\"a\\\"b\"} 2.65\n\
             h_seconds_count{q=\"a\\\"b\"} 4\n"
        );
    }
}
