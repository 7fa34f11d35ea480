//! The ready-made catalog (`e2e::db`): every workload started on the real engine and checked to
//! really work (a command, a protocol exchange or an HTTP call), plus a metric where the service
//! has metrics. Each test has its own env, removed by `#[e2e::test]` whatever happens.

use std::time::{Duration, Instant};

use e2e::db::*;
use e2e::{equals, greater, greater_or_equal, MetricsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET http://<addr><path>`: the status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Sends a request over TCP and reads until the answer contains `until` (or 10 s pass).
async fn talk(addr: &str, request: &[u8], until: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    conn.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(until) && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("reading from {addr}: {e}"),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Polls `check` every 200 ms until it holds, for at most 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: still not true after 30 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[test]
fn the_catalog_lists_every_workload() {
    let listed: Vec<_> = e2e::catalog::iter().into_iter().filter(|w| w.module == "e2e::db").collect();
    let names: Vec<_> = listed.iter().map(|w| w.name).collect();
    assert_eq!(
        names,
        [
            "Alertmanager",
            "BlackboxExporter",
            "Etcd",
            "Haproxy",
            "Memcached",
            "Mosquitto",
            "Nats",
            "Nginx",
            "NodeExporter",
            "Postgres",
            "Prometheus",
            "Pushgateway",
            "Redis",
            "Registry",
            "VictoriaMetrics",
        ]
    );
    for w in &listed {
        assert!(w.image.contains(':') && !w.image.ends_with(":latest"), "{}: pinned tag, got {}", w.name, w.image);
        assert!(!w.ports.is_empty() && !w.doc.is_empty(), "{}: ports and docs", w.name);
    }
    let instrumented: Vec<_> = listed.iter().filter(|w| w.metrics_port.is_some()).map(|w| w.name).collect();
    assert_eq!(
        instrumented,
        [
            "Alertmanager",
            "BlackboxExporter",
            "Etcd",
            "Haproxy",
            "NodeExporter",
            "Prometheus",
            "Pushgateway",
            "Registry",
            "VictoriaMetrics"
        ]
    );
    assert_eq!(e2e::catalog::get("Redis").unwrap().image, Redis::IMAGE);
}

#[e2e::test(env = "db_prometheus", timeout = "2m")]
async fn prometheus_scrapes_itself_and_reloads_its_config(prometheus: Prometheus) -> e2e::Result<()> {
    // The counter has no series until the first scrape is appended: wait for it.
    let appended = ["prometheus_tsdb_head_samples_appended_total"];
    prometheus.wait_sum_metrics_with(greater(0.0), appended, MetricsOptions::new().wait_missing_metrics()).await?;
    let addr = prometheus.http_endpoint()?;

    // Its config is in its dir, naming it in an external label; it scrapes itself as `myself`.
    let config = std::fs::read_to_string(prometheus.config_path()).unwrap();
    assert!(config.contains("prometheus: prometheus"), "{config}");
    let (_, loaded) = get(&addr, "/api/v1/status/config").await;
    assert!(loaded.contains("prometheus: prometheus"), "{loaded}");
    let up = |job: &'static str| {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move {
                let (_, body) = get(&addr, &format!("/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D%3D%3D1")).await;
                let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let n = v["data"]["result"].as_array().map_or(0, |r| r.len());
                if n == 1 {
                    Ok(())
                } else {
                    Err(body)
                }
            }
        }
    };
    eventually("up{job=\"myself\"} == 1", up("myself")).await;

    // A new config is reloaded at once; one it rejects is an error.
    let renamed = Prometheus::default_config("prometheus").replace("job_name: myself", "job_name: renamed");
    prometheus.set_config(&renamed).await?;
    eventually("up{job=\"renamed\"} == 1", up("renamed")).await;
    let bad = prometheus.set_config("scrape_configs: [{job_name: }").await;
    assert!(bad.is_err(), "a bad config is reported");
    Ok(())
}

#[e2e::test(env = "db_node_exporter", timeout = "2m")]
async fn node_exporter_exports_the_machine(node_exporter: NodeExporter) -> e2e::Result<()> {
    node_exporter.wait_sum_metrics(greater(0.0), ["node_memory_MemTotal_bytes"]).await?;
    node_exporter.wait_sum_metrics(greater(0.0), ["node_cpu_seconds_total"]).await
}

#[e2e::test(env = "db_pushgateway", timeout = "2m")]
async fn pushgateway_serves_what_is_pushed(pushgateway: Pushgateway) -> e2e::Result<()> {
    let url = format!("http://{}/metrics/job/catalog", pushgateway.http_endpoint()?);
    let resp = reqwest::Client::new().put(url).body("catalog_pushed_value 42\n").send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    pushgateway.wait_sum_metrics(equals(42.0), ["catalog_pushed_value"]).await
}

#[e2e::test(env = "db_alertmanager", timeout = "2m")]
async fn alertmanager_receives_alerts(alertmanager: Alertmanager) -> e2e::Result<()> {
    let addr = alertmanager.http_endpoint()?;
    let alert = r#"[{"labels":{"alertname":"CatalogTest","severity":"none"}}]"#;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(alert)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    alertmanager.wait_sum_metrics(greater_or_equal(1.0), ["alertmanager_alerts_received_total"]).await?;
    let (_, alerts) = get(&addr, "/api/v2/alerts").await;
    assert!(alerts.contains("CatalogTest"), "{alerts}");
    Ok(())
}

#[e2e::test(env = "db_blackbox", timeout = "2m")]
async fn blackbox_exporter_probes(blackbox: BlackboxExporter) -> e2e::Result<()> {
    let (status, body) =
        get(&blackbox.http_endpoint()?, "/probe?module=http_2xx&target=http://127.0.0.1:9115/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("\nprobe_success 1"), "{body}");
    blackbox.wait_sum_metrics(greater(0.0), ["blackbox_exporter_build_info"]).await
}

#[e2e::test(env = "db_memcached", timeout = "2m")]
async fn memcached_stores_and_serves(memcached: Memcached) -> e2e::Result<()> {
    let addr = memcached.memcached_endpoint()?;
    assert!(talk(&addr, b"set greeting 0 0 5\r\nhello\r\n", "\r\n").await.starts_with("STORED"));
    let got = talk(&addr, b"get greeting\r\n", "END\r\n").await;
    assert_eq!(got, "VALUE greeting 0 5\r\nhello\r\nEND\r\n");
    Ok(())
}

#[e2e::test(env = "db_redis", timeout = "2m")]
async fn redis_answers(redis: Redis) -> e2e::Result<()> {
    assert_eq!(redis.exec(["redis-cli", "ping"]).await?.stdout.trim(), "PONG");
    assert!(redis.exec(["redis-cli", "set", "greeting", "hello"]).await?.success());
    assert_eq!(redis.exec(["redis-cli", "get", "greeting"]).await?.stdout.trim(), "hello");
    // And from the test process, over the published port.
    assert!(talk(&redis.redis_endpoint()?, b"PING\r\n", "\r\n").await.starts_with("+PONG"));
    Ok(())
}

#[e2e::test(env = "db_redis_args", timeout = "2m")]
async fn redis_takes_arguments_per_instance_and_replicates(env: &e2e::Env) -> e2e::Result<()> {
    // Arguments go to redis-server: a memory cap, and a replica of the first declared ahead.
    let primary = Redis::with(env, "primary", &["--maxmemory", "7mb", "--maxmemory-policy", "allkeys-lru"]);
    let addr = primary.redis_internal_endpoint()?;
    let port = addr.port().to_string();
    let replica = Redis::ahead(env, "replica").init(&["--replicaof", addr.host(), &port]);
    e2e::start_and_wait_ready([&primary, &replica]).await?;
    let cap = primary.exec(["redis-cli", "config", "get", "maxmemory"]).await?;
    assert_eq!(cap.stdout.split_whitespace().collect::<Vec<_>>(), ["maxmemory", "7340032"], "{cap:?}");
    let policy = replica.exec(["redis-cli", "config", "get", "maxmemory-policy"]).await?;
    assert!(policy.stdout.contains("noeviction"), "the replica keeps the default: {policy:?}");
    assert!(primary.exec(["redis-cli", "set", "greeting", "hello"]).await?.success());
    eventually("the replica has the primary's write", || async {
        let got = replica.exec(["redis-cli", "get", "greeting"]).await.map_err(|e| e.to_string())?;
        if got.stdout.trim() == "hello" {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    let role = replica.exec(["redis-cli", "role"]).await?;
    assert!(role.stdout.starts_with("slave"), "{role:?}");
    Ok(())
}

#[e2e::test(env = "db_prometheus_args", timeout = "2m")]
async fn prometheus_takes_a_config_and_flags_per_instance(env: &e2e::Env) -> e2e::Result<()> {
    // A Prometheus whose configuration scrapes a node exporter by its internal endpoint, with
    // its own retention and query timeout; another with the defaults beside it.
    let exporter = NodeExporter::new(env, "node");
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    \
         static_configs:\n      - targets: ['{}']\n",
        exporter.http_internal_endpoint()?
    );
    let flags = ["--storage.tsdb.retention.time=2h", "--query.timeout=17s"];
    let configured = Prometheus::with(env, "configured", Some(&config), &flags);
    let plain = Prometheus::new(env, "plain");
    e2e::start_and_wait_ready([exporter.as_ref(), configured.as_ref(), plain.as_ref()]).await?;

    let flags_of = |p: &Prometheus| {
        let addr = p.http_endpoint().unwrap();
        async move {
            let (_, body) = get(&addr, "/api/v1/status/flags").await;
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"].clone()
        }
    };
    let set = flags_of(&configured).await;
    assert_eq!(set["storage.tsdb.retention.time"], "2h", "{set}");
    assert_eq!(set["query.timeout"], "17s", "{set}");
    assert_eq!(set["storage.tsdb.path"], "/prometheus", "{set}");
    let default = flags_of(&plain).await;
    assert_eq!(default["storage.tsdb.retention.time"], "1d", "{default}");
    assert_eq!(default["query.timeout"], "2m", "{default}");

    let written = std::fs::read_to_string(configured.config_path()).unwrap();
    assert_eq!(written.trim_end(), config.trim_end());
    let addr = configured.http_endpoint()?;
    eventually("up{job=\"node\"} == 1 on the configured one", || {
        let addr = addr.clone();
        async move {
            let (_, body) = get(&addr, "/api/v1/query?query=up%7Bjob%3D%22node%22%7D%3D%3D1").await;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            if v["data"]["result"].as_array().map_or(0, |r| r.len()) == 1 {
                Ok(())
            } else {
                Err(body)
            }
        }
    })
    .await;
    Ok(())
}

#[e2e::test(env = "db_etcd", timeout = "2m")]
async fn etcd_stores_keys(etcd: Etcd) -> e2e::Result<()> {
    etcd.wait_sum_metrics(equals(1.0), ["etcd_server_has_leader"]).await?;
    let put = etcd.exec(["etcdctl", "--endpoints=http://127.0.0.1:2379", "put", "greeting", "hello"]).await?;
    assert!(put.success(), "{put:?}");
    let got =
        etcd.exec(["etcdctl", "--endpoints=http://127.0.0.1:2379", "get", "greeting", "--print-value-only"]).await?;
    assert_eq!(got.stdout.trim(), "hello");
    // The v3 JSON gateway, from the test process.
    let (status, body) = get(&etcd.client_endpoint()?, "/version").await;
    assert_eq!(status, 200);
    assert!(body.contains("etcdserver"), "{body}");
    Ok(())
}

#[e2e::test(env = "db_nginx", timeout = "2m")]
async fn nginx_serves_its_page(nginx: Nginx) -> e2e::Result<()> {
    let (status, body) = get(&nginx.http_endpoint()?, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("Welcome to nginx!"), "{body}");
    Ok(())
}

#[e2e::test(env = "db_haproxy", timeout = "2m")]
async fn haproxy_serves_stats_and_metrics(haproxy: Haproxy) -> e2e::Result<()> {
    let (status, _) = get(&haproxy.stats_endpoint()?, "/stats").await;
    assert_eq!(status, 200);
    haproxy.wait_sum_metrics(greater(0.0), ["haproxy_process_start_time_seconds"]).await
}

#[e2e::test(env = "db_postgres", timeout = "2m")]
async fn postgres_runs_queries(postgres: Postgres) -> e2e::Result<()> {
    let out = postgres.exec(["psql", "-U", "postgres", "-tAc", "select 1 + 1"]).await?;
    assert_eq!(out.stdout.trim(), "2", "{out:?}");
    // Over the network too, with the password.
    let out = postgres
        .exec(["sh", "-c", "PGPASSWORD=postgres psql -h $(hostname) -U postgres -tAc 'select current_user'"])
        .await?;
    assert_eq!(out.stdout.trim(), "postgres", "{out:?}");
    Ok(())
}

#[e2e::test(env = "db_nats", timeout = "2m")]
async fn nats_speaks_its_protocol(nats: Nats) -> e2e::Result<()> {
    let got = talk(&nats.client_endpoint()?, b"CONNECT {\"verbose\":false}\r\nPING\r\n", "PONG\r\n").await;
    assert!(got.starts_with("INFO {") && got.ends_with("PONG\r\n"), "{got}");
    let (_, varz) = get(&nats.monitor_endpoint()?, "/varz").await;
    assert!(varz.contains("\"server_id\""), "{varz}");
    Ok(())
}

#[e2e::test(env = "db_victoria", timeout = "2m")]
async fn victoria_metrics_stores_samples(victoria: VictoriaMetrics) -> e2e::Result<()> {
    let addr = victoria.http_endpoint()?;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/import/prometheus"))
        .body("catalog_imported{source=\"test\"} 7\n")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    eventually("the imported sample is exported", || {
        let addr = addr.clone();
        async move {
            let (_, body) = get(&addr, "/api/v1/export?match%5B%5D=catalog_imported").await;
            if body.contains("\"values\":[7]") {
                Ok(())
            } else {
                Err(body)
            }
        }
    })
    .await;
    victoria.wait_sum_metrics(greater(0.0), ["vm_rows_inserted_total"]).await
}

#[e2e::test(env = "db_mosquitto", timeout = "2m")]
async fn mosquitto_accepts_mqtt_clients(mosquitto: Mosquitto) -> e2e::Result<()> {
    // MQTT 3.1.1 CONNECT, clean session, client id "e2e": CONNACK with return code 0 back.
    let connect = [0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 3, b'e', b'2', b'e'];
    let mut conn = TcpStream::connect(mosquitto.mqtt_endpoint()?.as_str()).await.unwrap();
    conn.write_all(&connect).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut connack)).await.unwrap().unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    Ok(())
}

#[e2e::test(env = "db_registry", timeout = "2m")]
async fn registry_serves_the_v2_api(registry: Registry) -> e2e::Result<()> {
    let (status, body) = get(&registry.http_endpoint()?, "/v2/_catalog").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"repositories\""), "{body}");
    registry.wait_sum_metrics(greater(0.0), ["registry_http_requests_total"]).await
}
