//! This framework, used as a test would use it.

use std::time::{Duration, Instant};

use e2e::{Env, Probe, Runnable, StartOptions};

use crate::specs::{Ready, Spec};

fn runnable(env: &Env, spec: &Spec) -> Runnable {
    let probe = match &spec.ready {
        Ready::Http { path, body: None } => Probe::http("p", *path),
        Ready::Http { path, body: Some(text) } => Probe::http("p", *path).body_contains(*text),
        Ready::Log { line, times } => Probe::log(&regex_escape(line)).times(*times),
        Ready::Tcp => Probe::tcp("p"),
    };
    let mut options = StartOptions::new(spec.image.clone()).readiness(probe).quiet(true);
    if !spec.cmd.is_empty() {
        options = options.command(spec.cmd.clone());
    }
    for (k, v) in &spec.env {
        options = options.env_var(*k, *v);
    }
    env.runnable(spec.name).with_ports([("p", spec.port)]).init(options)
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

fn err(e: e2e::Error) -> String {
    e.to_string()
}

/// Env, runnables started and ready, env closed.
/// `E2E_BENCH_PHASES=1` prints how long each phase took.
pub async fn up_down(specs: &[Spec], name: &str) -> Result<Duration, String> {
    let t = Instant::now();
    let env = Env::docker(name).await.map_err(err)?;
    let created = t.elapsed();
    let runnables: Vec<Runnable> = specs.iter().map(|s| runnable(&env, s)).collect();
    let ready = e2e::start_and_wait_ready(&runnables).await.map_err(err);
    let readied = t.elapsed();
    let closed = env.close().await.map_err(err);
    if std::env::var_os("E2E_BENCH_PHASES").is_some() {
        println!(
            "  e2e phases: env {created:.1?}, started and ready {:.1?}, closed {:.1?}",
            readied - created,
            t.elapsed() - readied
        );
    }
    ready.and(closed)?;
    Ok(t.elapsed())
}

/// From start to the framework's error for a container that dies before it is ready.
pub async fn crash(spec: &Spec, name: &str) -> Result<(Duration, String), String> {
    let env = Env::docker(name).await.map_err(err)?;
    let r = runnable(&env, spec);
    let t = Instant::now();
    let outcome = r.start_and_wait_ready().await;
    let took = t.elapsed();
    env.close().await.map_err(err)?;
    match outcome {
        Ok(()) => Err(format!("{} became ready", spec.name)),
        Err(e) => Ok((took, e.to_string())),
    }
}

/// Microseconds from the service logging `ready <µs>` to `wait_ready` returning.
pub async fn readiness(spec: &Spec, name: &str) -> Result<i128, String> {
    let env = Env::docker(name).await.map_err(err)?;
    let r = runnable(&env, spec);
    let ready = r.start_and_wait_ready().await.map_err(err);
    let noticed = crate::epoch_micros();
    // The line may still be on its way to the log buffer when an HTTP probe passes.
    let mut at = None;
    for _ in 0..100 {
        at = crate::specs::ready_instant(&r.logs_tail(100));
        if at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.close().await.map_err(err)?;
    ready?;
    let at = at.ok_or("no `ready` line")?;
    Ok(noticed as i128 - at as i128)
}

/// `Env::close` of 10 ready runnables.
pub async fn close_ten(specs: &[Spec], name: &str) -> Result<Duration, String> {
    let env = Env::docker(name).await.map_err(err)?;
    let runnables: Vec<Runnable> = specs.iter().map(|s| runnable(&env, s)).collect();
    let ready = e2e::start_and_wait_ready(&runnables).await.map_err(err);
    let t = Instant::now();
    let closed = env.close().await.map_err(err);
    let took = t.elapsed();
    ready.and(closed)?;
    Ok(took)
}
