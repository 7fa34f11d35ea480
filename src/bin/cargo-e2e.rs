//! `cargo e2e`: the framework's resources on the engine, from outside a test run.
//!
//! ```text
//! cargo e2e catalog          the catalog's workloads (e2e::db)
//! cargo e2e envs             the envs on the engine, by run: owner, whether it lives, is kept or warm
//! cargo e2e rm <env>...      remove these envs, every run's
//! cargo e2e rm --dead        remove what dead runs of this machine left (kept envs included)
//! cargo e2e rm --all         remove every resource of this machine's runs, live or dead
//! ```
//!
//! The engine is the one `DOCKER_HOST` names, else the local one. Only resources carrying the
//! framework's labels are ever listed or removed.

use std::process::ExitCode;

const USAGE: &str = "usage: cargo e2e <command>
  catalog          list the catalog's workloads (e2e::db)
  envs             list the envs on the engine (DOCKER_HOST, else the local one), by run
  rm <env>...      remove these envs (every run's resources of each)
  rm --dead        remove what dead runs of this machine left (kept envs included)
  rm --all         remove every resource of this machine's runs, live or dead";

fn main() -> ExitCode {
    // As a cargo subcommand, cargo passes the subcommand's name first: `cargo-e2e e2e envs`.
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("e2e") {
        args.remove(0);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let outcome = match args.as_slice() {
        ["catalog"] => {
            catalog();
            Ok(())
        }
        ["envs"] => rt.block_on(envs()),
        ["rm", "--dead"] => rt.block_on(async {
            let n = e2e::admin::remove_dead().await?;
            println!("removed {n} env(s) of dead runs");
            Ok(())
        }),
        ["rm", "--all"] => rt.block_on(async {
            let n = e2e::admin::remove_this_machine().await?;
            println!("removed {n} env(s) of this machine's runs");
            Ok(())
        }),
        ["rm", envs @ ..] if !envs.is_empty() && !envs.iter().any(|e| e.starts_with('-')) => rt.block_on(async {
            let mut failed: Vec<e2e::Error> = Vec::new();
            for env in envs {
                match e2e::admin::remove_env(env).await {
                    Ok(n) => println!("removed env {env:?} ({n} run(s))"),
                    Err(e) => failed.push(e),
                }
            }
            match failed.len() {
                0 => Ok(()),
                1 => Err(failed.remove(0)),
                _ => Err(e2e::Error::Many { errors: failed }),
            }
        }),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cargo e2e: {e}");
            ExitCode::FAILURE
        }
    }
}

fn catalog() {
    println!("{:<18} {:<45} {:<44} METRICS", "WORKLOAD", "IMAGE", "PORTS");
    for w in e2e::catalog::iter() {
        let ports: Vec<String> = w.ports.iter().map(|(name, port)| format!("{name} {port}")).collect();
        println!("{:<18} {:<45} {:<44} {}", w.name, w.image, ports.join(", "), w.metrics_port.unwrap_or("-"));
    }
}

async fn envs() -> e2e::Result<()> {
    let envs = e2e::admin::envs().await?;
    if envs.is_empty() {
        println!("no env of the framework on the engine");
        return Ok(());
    }
    println!("{:<24} {:>8} {:>10} {:>8} {:>7}  HOLDER", "ENV", "PID", "CONTAINERS", "NETWORKS", "VOLUMES");
    for e in envs {
        let pid = e.pid.map_or("?".to_string(), |p| p.to_string());
        let containers = format!("{}/{}", e.running, e.containers);
        println!(
            "{:<24} {:>8} {:>10} {:>8} {:>7}  {} [{}]",
            e.env, pid, containers, e.networks, e.volumes, e.holder, e.owner
        );
    }
    Ok(())
}
