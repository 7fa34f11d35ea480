//! Standalone use: start an environment with monitoring, print the address of every UI, open
//! them where a browser exists, and keep everything up until Ctrl-C or until the printed stop
//! URL is requested.
//!
//! It needs a Docker engine and nothing else. The environment runs this repository's fixture
//! service (built by cargo and packed into a `FROM scratch` image by the framework, so nothing
//! is pulled) in three replicas, with a load generator in this program sending them HTTP
//! requests. Prometheus monitoring is added when its image is present or can be pulled; when it
//! is not, the program says so and runs without it.
//!
//!     cargo run --example standalone                       # until Ctrl-C or the stop URL
//!     E2E_EXAMPLE_FOR=5s cargo run --example standalone    # for 5 s (what CI runs)
//!     E2E_EXAMPLE_STOP=interrupt cargo run --example standalone   # Ctrl-C only

use std::time::Duration;

use e2e::image::{cargo_bin, BinaryImage};
use e2e::monitoring::{self, Monitoring, MonitoringOptions};
use e2e::standalone::open_in_browser;
use e2e::{Env, Error, Probe, StartOptions};

const REPLICAS: usize = 3;

#[tokio::main]
async fn main() -> e2e::Result<()> {
    println!("building the fixture service and its image...");
    let binary = cargo_bin("e2e-fixture", "e2e-fixture")?;
    BinaryImage::new("e2e-fixture:example", binary).quiet(true).build().await?;

    let env = Env::docker("e2e_standalone").await?;
    let replicas: Vec<_> = (1..=REPLICAS)
        .map(|i| {
            env.runnable(&format!("service-{i}")).with_ports([("http", 8080)]).init(
                StartOptions::new("e2e-fixture:example")
                    .command(["--ready-after=300ms", "--log-every=10s"])
                    .metrics("http")
                    .readiness(Probe::http("http", "/ready")),
            )
        })
        .collect();
    // The services and Prometheus start in parallel; Prometheus discovers the services.
    let (started, monitoring) = tokio::join!(e2e::start_and_wait_ready(&replicas), start_monitoring(&env));
    if let Err(e) = started {
        env.close().await?;
        return Err(e);
    }

    let targets: Vec<e2e::Endpoint> = replicas.iter().map(|r| r.endpoint("http")).collect::<e2e::Result<_>>()?;
    let load = tokio::spawn(generate_load(targets));

    println!("\nenvironment {:?} is up:", env.name());
    for r in &replicas {
        let addr = r.endpoint("http")?;
        println!(
            "  {:<11} http://{addr}/  metrics: http://{addr}/metrics  (in the network: {})",
            r.name(),
            r.internal_endpoint("http")?
        );
    }
    println!("  load:       {REPLICAS} replicas get requests from this program (/, /slow, /status/500)");
    match &monitoring {
        Some(mon) => {
            let ui = mon.ui_url()?;
            let graph = format!(
                "{ui}/graph?g0.expr=sum%20by%20(runnable%2C%20path)%20(rate(fixture_requests_total%5B30s%5D))&g0.tab=0"
            );
            println!("  prometheus: {ui}  (targets: {ui}/targets)");
            println!("  requests:   {graph}");
            if open_in_browser(&graph) {
                println!("  (opened the requests graph in your browser)");
            }
        }
        None => {
            if let Some(r) = replicas.first() {
                open_in_browser(&format!("http://{}/", r.endpoint("http")?));
            }
        }
    }
    println!("  shared dir: {}\n", env.shared_dir().display());

    let run_for = std::env::var("E2E_EXAMPLE_FOR").ok().and_then(|d| humantime::parse_duration(&d).ok());
    match run_for {
        Some(d) => {
            println!("stopping in {} (E2E_EXAMPLE_FOR)", humantime::format_duration(d));
            tokio::time::sleep(d).await;
        }
        None if std::env::var("E2E_EXAMPLE_STOP").as_deref() == Ok("interrupt") => {
            e2e::run_until_interrupt(&env).await?;
        }
        None => e2e::run_until_endpoint_hit(&env).await?,
    }
    load.abort();
    drop(monitoring);
    env.close().await?;
    println!("removed environment {:?}", env.name());
    Ok(())
}

/// Prometheus in the env, or `None`, saying why, when its image is neither here nor pullable.
/// `E2E_EXAMPLE_PROMETHEUS_IMAGE` picks another image than monitoring's default.
async fn start_monitoring(env: &Env) -> Option<Monitoring> {
    let mut options = MonitoringOptions::default();
    if let Ok(image) = std::env::var("E2E_EXAMPLE_PROMETHEUS_IMAGE") {
        options = options.image(image);
    }
    match monitoring::start_with(env, options).await {
        Ok(mon) => Some(mon),
        Err(Error::ImageNotFound { image, detail }) => {
            println!(
                "monitoring is off: the Prometheus image {image} is not on this machine and could not be pulled ({detail}).\n\
                 Pull or load it (docker pull {image}) to get Prometheus in this environment."
            );
            None
        }
        Err(e) => {
            println!("monitoring is off: Prometheus did not start: {e}");
            None
        }
    }
}

/// Sends each replica a few requests a second: mostly `/`, some slow ones, some errors.
async fn generate_load(targets: Vec<e2e::Endpoint>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
    let paths = ["/", "/", "/", "/slow?for=50ms", "/", "/status/500"];
    for n in 0usize.. {
        let target = &targets[n % targets.len()];
        let path = paths[(n / targets.len()) % paths.len()];
        let _ = client.get(format!("http://{target}{path}")).send().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
