//! Standalone use: start an environment, print its addresses, keep it up until Ctrl-C.
//!
//! The environment runs this repository's fixture service (built by cargo and packed into an
//! image by the framework, so nothing is pulled) in two replicas, each reachable from the host.
//!
//!     cargo run --example standalone                 # until Ctrl-C
//!     E2E_EXAMPLE_FOR=5s cargo run --example standalone

use e2e::image::{cargo_bin, BinaryImage};
use e2e::{Env, Probe, StartOptions};

#[tokio::main]
async fn main() -> e2e::Result<()> {
    println!("building the fixture service and its image...");
    let binary = cargo_bin("e2e-fixture", "e2e-fixture")?;
    BinaryImage::new("e2e-fixture:example", binary).quiet(true).build().await?;

    let env = Env::docker("e2e_standalone").await?;
    let replicas: Vec<_> = (1..=2)
        .map(|i| {
            env.runnable(&format!("service-{i}")).with_ports([("http", 8080)]).init(
                StartOptions::new("e2e-fixture:example")
                    .command(["--ready-after=300ms", "--log-every=2s"])
                    .readiness(Probe::http("http", "/ready")),
            )
        })
        .collect();
    e2e::start_and_wait_ready(&replicas).await?;

    println!("\nenvironment {:?} is up:", env.name());
    for r in &replicas {
        println!("  {:<10} http://{}/  (in the network: {})", r.name(), r.endpoint("http")?, r.internal_endpoint("http")?);
    }
    println!("  shared dir: {}", env.shared_dir().display());

    let run_for = std::env::var("E2E_EXAMPLE_FOR").ok().and_then(|d| humantime::parse_duration(&d).ok());
    match run_for {
        Some(d) => {
            println!("\nstopping in {d:?} (E2E_EXAMPLE_FOR)");
            tokio::time::sleep(d).await;
        }
        None => {
            println!("\npress Ctrl-C to stop and remove everything");
            tokio::signal::ctrl_c().await.expect("Ctrl-C can be awaited");
        }
    }
    env.close().await?;
    println!("removed environment {:?}", env.name());
    Ok(())
}
