//! Monitoring: Prometheus in the env, scraping every instrumented runnable as it starts and
//! stops, plus per-container resource metrics exported from the engine's stats.
//!
//! ```no_run
//! # async fn f(env: &e2e_runtime::Env) -> e2e_runtime::Result<()> {
//! let mon = e2e_runtime::monitoring::start(env).await?;
//! // ... start instrumented runnables: they are discovered as they start ...
//! let up = mon.query("up").await?;
//! println!("{} targets up; UI at {}", up.len(), mon.ui_url()?);
//! # Ok(()) }
//! ```
//!
//! Discovery is file based: the env rewrites a discovery file whenever an instrumented runnable
//! starts, stops or dies, and Prometheus re-reads it every second, without restarting. With a
//! local engine the file is `/shared/monitoring/targets.json` (a bind mount, replaced whole);
//! with any other it is copied into the container (`/etc/e2e-monitoring/targets.json`).
//!
//! Resource metrics (`container_cpu_usage_seconds_total`, `container_memory_usage_bytes`,
//! `container_network_{receive,transmit}_bytes_total`, labelled `name` and `runnable`, job
//! `containers`) come from this process, which reads the engine's stats, so the privileged
//! cadvisor image is not needed. With a local engine Prometheus scrapes them from an exporter
//! listening on the env network's gateway; where Prometheus cannot reach this process (a
//! remote engine, a test inside a container) this process pushes them to Prometheus's
//! remote-write receiver every scrape interval, through its published port.
//!
//! The test process's own usage comes the same way, as job `test_process` (labelled `pid`):
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_threads`, `process_open_fds`, `process_start_time_seconds`, read from `/proc/self`
//! at each scrape: no cgroup to set up.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env::{Env, InstrumentedSet};
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::runnable::{Runnable, StartOptions};

/// The Prometheus image monitoring runs by default.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "quay.io/prometheus/prometheus:v2.42.0";

/// Writes the env's running instrumented runnables as a Prometheus file-discovery file, whole
/// (Prometheus may read it at any moment).
fn write_targets(file: &Path, set: &InstrumentedSet) {
    let tmp = file.with_extension("json.tmp");
    let text = targets_json(set);
    if std::fs::write(&tmp, text).and_then(|()| set_readable(&tmp)).and_then(|()| std::fs::rename(&tmp, file)).is_err()
    {
        crate::say::say!(warn, "could not update the monitoring targets in {}", file.display());
    }
}

/// The env's running instrumented runnables as Prometheus file-discovery groups.
fn targets_json(set: &InstrumentedSet) -> String {
    let groups: Vec<_> = set
        .iter()
        .map(|(container, t)| {
            serde_json::json!({
                "targets": [t.address],
                "labels": {
                    "runnable": t.runnable,
                    "container": container,
                    "__metrics_path__": t.path,
                    "__scheme__": t.scheme,
                }
            })
        })
        .collect();
    serde_json::to_string_pretty(&groups).expect("JSON of strings")
}

/// Where monitoring's files reach Prometheus: the env's shared directory, bind-mounted (a local
/// engine), or copies into its container.
#[derive(Debug, Clone)]
enum Files {
    Shared { dir: PathBuf, internal: String },
    Copied(Runnable),
}

/// Where copied files go in the Prometheus container.
const COPIED_DIR: &str = "/etc/e2e-monitoring";

impl Files {
    /// The path of file `name` inside the container.
    fn internal(&self, name: &str) -> String {
        match self {
            Files::Shared { internal, .. } => format!("{internal}/{name}"),
            Files::Copied(_) => format!("{COPIED_DIR}/{name}"),
        }
    }

    async fn write_config(&self, config: String) -> Result<()> {
        match self {
            Files::Shared { dir, .. } => {
                let file = dir.join("prometheus.yml");
                std::fs::write(&file, config)
                    .and_then(|()| set_readable(&file))
                    .map_err(|e| Error::io(format!("writing {}", file.display()), e))
            }
            Files::Copied(prometheus) => prometheus.copy_to(&self.internal("prometheus.yml"), config).await,
        }
    }

    async fn write_targets(&self, set: &InstrumentedSet) {
        match self {
            Files::Shared { dir, .. } => write_targets(&dir.join("targets.json"), set),
            Files::Copied(prometheus) => {
                // A copy may be read half-written; Prometheus then keeps the targets it had and
                // reads the file again at its next refresh.
                if let Err(e) = prometheus.copy_to(&self.internal("targets.json"), targets_json(set)).await {
                    crate::say::say!(warn, "could not update the monitoring targets: {e}");
                }
            }
        }
    }
}

/// Keeps the discovery file in step with the env's instrumented runnables, until the env goes.
async fn discover(mut instrumented: tokio::sync::watch::Receiver<InstrumentedSet>, files: Files) {
    loop {
        let set = instrumented.borrow_and_update().clone();
        files.write_targets(&set).await;
        if instrumented.changed().await.is_err() {
            return;
        }
    }
}

fn set_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// How monitoring is started.
#[derive(Debug, Clone)]
pub struct MonitoringOptions {
    image: String,
    scrape_interval: Duration,
    container_metrics: bool,
}

impl Default for MonitoringOptions {
    fn default() -> Self {
        MonitoringOptions {
            image: DEFAULT_PROMETHEUS_IMAGE.to_string(),
            scrape_interval: Duration::from_secs(1),
            container_metrics: true,
        }
    }
}

impl MonitoringOptions {
    /// The Prometheus image (default [`DEFAULT_PROMETHEUS_IMAGE`]).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// How often targets are scraped (default 1 s).
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// Whether to export per-container resource metrics (default on).
    pub fn container_metrics(mut self, on: bool) -> Self {
        self.container_metrics = on;
        self
    }
}

/// Prometheus running in an env. Dropping it stops the container metrics exporter; the
/// Prometheus container goes with the env.
#[derive(Debug)]
pub struct Monitoring {
    prometheus: Runnable,
    exporter: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        if let Some(e) = self.exporter.take() {
            e.abort();
        }
    }
}

/// One series of a PromQL result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels (with `__name__` when the result keeps it).
    pub metric: BTreeMap<String, String>,
    /// Its value (the last one, for a range result).
    pub value: f64,
}

/// Starts Prometheus in `env` with default options. See [`start_with`].
pub async fn start(env: &Env) -> Result<Monitoring> {
    start_with(env, MonitoringOptions::default()).await
}

/// Starts Prometheus in `env` as the runnable `monitoring`, waits until it is ready, and has it
/// discover every instrumented runnable of the env, those started before and after.
pub async fn start_with(env: &Env, options: MonitoringOptions) -> Result<Monitoring> {
    let mut exporter = None;
    let mut container_job = String::new();
    let mut push = false;
    if options.container_metrics {
        match env.gateway().await {
            Some(gateway) => {
                let listener = tokio::net::TcpListener::bind((gateway.as_str(), 0))
                    .await
                    .map_err(|e| Error::io(format!("listening on the env network's gateway {gateway}"), e))?;
                let port = listener.local_addr().map_err(|e| Error::io("reading the exporter's address", e))?.port();
                exporter = Some(crate::task::spawn(serve_container_metrics(listener, env.clone())));
                container_job = format!(
                    "  - job_name: containers\n    static_configs:\n      - targets: ['{gateway}:{port}']\n\
                     \x20 - job_name: {PROCESS_JOB}\n    metrics_path: {PROCESS_PATH}\n    static_configs:\n      - targets: ['{gateway}:{port}']\n"
                );
            }
            // Prometheus cannot reach this process: it is sent the metrics instead.
            None => push = true,
        }
    }
    let files = if env.shares_host_files() {
        let dir = env.shared_dir().join("monitoring");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Some(Files::Shared { dir, internal: format!("{}/monitoring", env.internal_shared_dir()) })
    } else {
        None
    };
    let config_path =
        files.as_ref().map_or_else(|| format!("{COPIED_DIR}/prometheus.yml"), |f| f.internal("prometheus.yml"));
    let targets_path =
        files.as_ref().map_or_else(|| format!("{COPIED_DIR}/targets.json"), |f| f.internal("targets.json"));
    let mut command = vec![
        format!("--config.file={config_path}"),
        "--storage.tsdb.path=/prometheus".to_string(),
        "--storage.tsdb.retention.time=1d".to_string(),
        "--web.enable-lifecycle".to_string(),
    ];
    if push {
        command.push("--web.enable-remote-write-receiver".to_string());
    }
    let prometheus = env.runnable("monitoring").with_ports([("http", 9090)]).init(
        StartOptions::new(options.image).command(command).metrics("http").readiness(Probe::http("http", "/-/ready")),
    );
    let files = files.unwrap_or_else(|| Files::Copied(prometheus.clone()));

    let interval = humantime::format_duration(options.scrape_interval);
    let config = format!(
        "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n  external_labels:\n    env: {env_name}\n\
         scrape_configs:\n\
         \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['localhost:9090']\n\
         \x20 - job_name: e2e\n    tls_config:\n      insecure_skip_verify: true\n    file_sd_configs:\n      - files: ['{targets_path}']\n        refresh_interval: 1s\n\
         {container_job}",
        env_name = env.name(),
    );
    files.write_config(config).await?;
    // The env tells of runnables as they start, stop and die; those already running are in
    // the first file written.
    files.write_targets(&env.watch_instrumented().borrow().clone()).await;
    crate::task::spawn(discover(env.watch_instrumented(), files));

    prometheus.start_and_wait_ready().await?;
    if push {
        exporter =
            Some(crate::task::spawn(push_container_metrics(env.clone(), prometheus.clone(), options.scrape_interval)));
    }
    Ok(Monitoring { prometheus, exporter })
}

impl Monitoring {
    /// The Prometheus runnable.
    pub fn prometheus(&self) -> &Runnable {
        &self.prometheus
    }

    /// The address of Prometheus's UI for this host.
    pub fn ui_url(&self) -> Result<String> {
        Ok(format!("http://{}", self.prometheus.endpoint("http")?))
    }

    /// Opens the UI in a browser; where none can be opened, prints the URL instead. Returns the
    /// URL either way.
    pub fn open_ui(&self) -> Result<String> {
        let url = self.ui_url()?;
        if !crate::standalone::open_in_browser(&url) {
            crate::say::say!(info, "monitoring UI: {url}");
        }
        Ok(url)
    }

    /// Runs an instant PromQL query.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let url = format!("{}/api/v1/query", self.ui_url()?);
        let failed = |detail: String| Error::Query { query: promql.to_string(), detail };
        let resp = self
            .prometheus
            .http()
            .get(&crate::http::with_query(&url, &[("query", promql)]), &[])
            .await
            .map_err(|e| failed(e.0))?;
        let body = resp.json().await.map_err(|e| failed(e.0))?;
        if body["status"] != "success" {
            return Err(failed(format!("{}: {}", body["errorType"], body["error"])));
        }
        parse_result(&body["data"]).map_err(failed)
    }

    /// Runs the query until `done` accepts its result, or fails after `timeout` with the last
    /// result seen.
    pub async fn wait_query(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            let last = match self.query(promql).await {
                Ok(samples) if done(&samples) => return Ok(samples),
                Ok(samples) => format!("last result: {samples:?}"),
                Err(e) => format!("last error: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(Error::Query {
                    query: promql.to_string(),
                    detail: format!("condition not met after {}; {last}", humantime::format_duration(timeout)),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

fn parse_result(data: &serde_json::Value) -> std::result::Result<Vec<Sample>, String> {
    let value_of = |v: &serde_json::Value| -> std::result::Result<f64, String> {
        let text = v.get(1).and_then(|s| s.as_str()).ok_or_else(|| format!("unexpected value {v}"))?;
        match text {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            t => t.parse().map_err(|e| format!("value {t:?}: {e}")),
        }
    };
    let labels = |m: &serde_json::Value| -> BTreeMap<String, String> {
        m.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| Ok(Sample { metric: labels(&s["metric"]), value: value_of(&s["value"])? }))
            .collect(),
        Some("matrix") => data["result"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let last = s["values"].as_array().and_then(|v| v.last()).ok_or("an empty series")?;
                Ok(Sample { metric: labels(&s["metric"]), value: value_of(last)? })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample { metric: BTreeMap::new(), value: value_of(&data["result"])? }]),
        other => Err(format!("unsupported result type {other:?}")),
    }
}

/// Serves `/metrics` with the resource usage of the env's containers, read at each scrape.
async fn serve_container_metrics(listener: tokio::net::TcpListener, env: Env) {
    use hyper::service::service_fn;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // A persistent error (out of file descriptors) must not spin the CPU.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let env = env.clone();
        crate::task::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let env = env.clone();
                async move {
                    let body = if req.uri().path() == PROCESS_PATH {
                        process_metrics()
                    } else {
                        container_metrics(&env).await
                    };
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("Content-Type", "text/plain; version=0.0.4")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .expect("a valid response"),
                    )
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// One family of the containers' exposition: name, type, help and the value it reads.
type UsageFamily = (&'static str, &'static str, &'static str, fn(&crate::engine::Usage) -> f64);

fn usage_families() -> [UsageFamily; 4] {
    [
        ("container_cpu_usage_seconds_total", "counter", "CPU time used.", |u| u.cpu_seconds),
        ("container_memory_usage_bytes", "gauge", "Memory in use.", |u| u.memory_bytes),
        ("container_network_receive_bytes_total", "counter", "Bytes received.", |u| u.rx_bytes),
        ("container_network_transmit_bytes_total", "counter", "Bytes sent.", |u| u.tx_bytes),
    ]
}

/// Sends the env's containers' resource usage to Prometheus's remote-write receiver every
/// `every`, as if it had scraped them (job `containers`), until aborted.
async fn push_container_metrics(env: Env, prometheus: Runnable, every: Duration) {
    let Ok(endpoint) = prometheus.endpoint("http") else { return };
    let url = format!("http://{endpoint}/api/v1/write");
    let mut warned = false;
    loop {
        let stats = env.container_stats().await;
        let millis =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut series = Vec::new();
        for (name, _, _, value) in usage_families() {
            for (d, usage) in &stats {
                let labels = [
                    ("__name__", name),
                    ("instance", "e2e"),
                    ("job", "containers"),
                    ("name", d.container.as_str()),
                    ("runnable", d.name.as_str()),
                ];
                series.push((labels, value(usage)));
            }
        }
        let mut body = write_request(&series, millis);
        // And this test process's own usage, as its job.
        let pid = std::process::id().to_string();
        let process: Vec<([(&str, &str); 4], f64)> = process_usage()
            .into_iter()
            .map(|(name, _, _, value)| {
                ([("__name__", name), ("instance", "e2e"), ("job", PROCESS_JOB), ("pid", pid.as_str())], value)
            })
            .collect();
        body.extend(write_request(&process, millis));
        let body = snap::raw::Encoder::new().compress_vec(&body).expect("snappy of bytes");
        let sent = prometheus
            .http()
            .post(
                &url,
                &[
                    ("content-encoding", "snappy"),
                    ("content-type", "application/x-protobuf"),
                    ("x-prometheus-remote-write-version", "0.1.0"),
                ],
                body,
            )
            .await;
        let failed = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("{}: {}", r.status(), r.text().await.unwrap_or_default().trim())),
            Err(e) => Some(e.0),
        };
        if let Some(why) = failed.filter(|_| !warned) {
            crate::say::say!(warn, "monitoring: sending container metrics to {url} failed: {why}");
            warned = true;
        }
        tokio::time::sleep(every).await;
    }
}

/// A remote-write `WriteRequest` (protobuf) of one sample per series, at `millis`; each
/// series's labels sorted by name, as the protocol asks.
fn write_request<const N: usize>(series: &[([(&str, &str); N], f64)], millis: i64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        out.push(tag);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut request = Vec::new();
    for (labels, value) in series {
        let mut ts = Vec::new();
        for (name, v) in labels {
            let mut label = Vec::new();
            field(&mut label, 0x0a, name.as_bytes()); // Label.name = 1
            field(&mut label, 0x12, v.as_bytes()); // Label.value = 2
            field(&mut ts, 0x0a, &label); // TimeSeries.labels = 1
        }
        let mut sample = vec![0x09]; // Sample.value = 1, a double
        sample.extend_from_slice(&value.to_le_bytes());
        sample.push(0x10); // Sample.timestamp = 2, a varint
        varint(&mut sample, millis as u64);
        field(&mut ts, 0x12, &sample); // TimeSeries.samples = 2
        field(&mut request, 0x0a, &ts); // WriteRequest.timeseries = 1
    }
    request
}

/// The exposition of the env's containers' resource usage.
/// The job of this test process's own usage, and the exporter's path for it.
pub const PROCESS_JOB: &str = "test_process";
const PROCESS_PATH: &str = "/process";

/// This process's usage, as the Prometheus client libraries' process collector names it:
/// CPU seconds, resident and virtual memory, threads, open file descriptors, start time.
fn process_usage() -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Vec::new() };
    // The fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else { return Vec::new() };
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    // rest[0] is field 3 (state): field n is f[n - 3].
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
    // SAFETY: sysconf reads a constant of the system.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK) as f64, libc::sysconf(libc::_SC_PAGESIZE) as f64) };
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())))
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
    vec![
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the test process.",
            (field(14) + field(15)) / ticks,
        ),
        ("process_resident_memory_bytes", "gauge", "Resident memory of the test process.", field(24) * page),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory of the test process.", field(23)),
        ("process_threads", "gauge", "Threads of the test process.", field(20)),
        ("process_open_fds", "gauge", "Open file descriptors of the test process.", fds),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the test process (Unix seconds).",
            boot + field(22) / ticks,
        ),
    ]
}

/// [`process_usage`] as an exposition, labelled with the pid.
fn process_metrics() -> String {
    let pid = std::process::id();
    let mut out = String::new();
    for (name, kind, help, value) in process_usage() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{pid=\"{pid}\"}} {value}");
    }
    out
}

async fn container_metrics(env: &Env) -> String {
    let stats = env.container_stats().await;
    let mut out = String::new();
    for (name, kind, help, value) in usage_families() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (d, usage) in &stats {
            let _ = writeln!(out, "{name}{{name=\"{}\",runnable=\"{}\"}} {}", d.container, d.name, value(usage));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_write_request_is_the_protobuf_the_protocol_names() {
        let got = super::write_request(&[([("__name__", "m"), ("a", "b")], 1.0)], 300);
        let mut want = vec![0x0a, 37, 0x0a, 13, 0x0a, 8];
        want.extend_from_slice(b"__name__");
        want.extend_from_slice(&[0x12, 1, b'm', 0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x12, 12, 0x09]);
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0xac, 0x02]);
        assert_eq!(got, want);
    }
}
