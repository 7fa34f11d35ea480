//! Both macros, as a user writes them, under strict lints.
#![deny(warnings, missing_docs)]

e2e::workload! {
    /// Prometheus scraping itself.
    pub Prometheus {
        image: "quay.io/prometheus/prometheus:v2.42.0",
        ports: { http: 9090, grpc: 10901 },
        metrics: http,
        metrics_path: "/metrics",
        readiness: http(http, "/-/ready").status(200..=299).body_contains("Ready"),
        readiness_timeout: "30s",
        command: ["--config.file=/etc/prometheus/prometheus.yml"],
        entrypoint: ["/bin/prometheus"],
        env: { GOMAXPROCS: "1", "LOG-LEVEL": 2 + 2 },
        user: "nobody",
    }

    /// A parametrised fixture; parameters named `env` and `name` don't clash.
    pub(crate) Fixture(ready_after: &str = "0s", code: i32 = 0, env: &str = "", name: String = String::new()) {
        image: "e2e-fixture:latest",
        ports: { http: 8080 },
        metrics: http,
        readiness: all_of([http(http, "/ready"), tcp(http), log("listening", 1), cmd(["true"])]),
        command: [format!("--ready-after={ready_after}"), format!("--exit-code={code}"), format!("{env}{name}")],
        entrypoint: none,
    }

    /// Needs its version, so it has `with` but no `new`.
    Versioned(version: u32) {
        image: "busybox:1.36",
        command: [format!("--version={version}")],
    }
}

#[e2e::test(env = "e2e_example", timeout = "2m")]
#[ignore = "needs the images"]
async fn scrapes_itself(env: &e2e::Env, prom: Prometheus, fixture: Fixture) -> e2e::Result<()> {
    let _ = (env, prom.http_endpoint(), prom.grpc_internal_endpoint(), fixture.runnable());
    let _ = Versioned::with(env, "v", 1);
    Ok(())
}

/// Without an env parameter, returning `()`.
#[e2e::test(env = "Plain_2")]
#[should_panic(expected = "boom")]
async fn workloads_only(env: Fixture) {
    let _ = env.http_internal_endpoint();
    panic!("boom");
}

fn main() {
    // The facade's own catalog (e2e::db) is linked in too: look at this crate's entries.
    let names: Vec<_> =
        e2e::catalog::iter().iter().filter(|w| w.module != "e2e::db").map(|w| w.name).collect();
    assert_eq!(names, ["Fixture", "Prometheus", "Versioned"]);
    let prom = e2e::catalog::get(&format!("{}::Prometheus", module_path!())).unwrap();
    assert_eq!(prom.image, Prometheus::IMAGE);
    assert_eq!(prom.ports, [("http", 9090), ("grpc", 10901)]);
    assert_eq!(prom.metrics_port, Some("http"));
    assert_eq!(prom.doc, "Prometheus scraping itself.");
    let options = Fixture::options("1s", 3, "", String::new());
    assert_eq!(options.image(), "e2e-fixture:latest");
}
