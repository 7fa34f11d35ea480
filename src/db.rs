//! The ready-made catalog: common services declared with [`workload!`](crate::workload), each
//! with a real public image tag, a readiness probe that means the service answers, and its
//! Prometheus metrics port where it has one.
//!
//! ```no_run
//! use e2e::db::{Prometheus, Redis};
//!
//! #[e2e::test(env = "cache")]
//! async fn caches(redis: Redis, prometheus: Prometheus) -> e2e::Result<()> {
//!     let pong = redis.exec(["redis-cli", "ping"]).await?;
//!     assert_eq!(pong.stdout.trim(), "PONG");
//!     let options = e2e::MetricsOptions::new().wait_missing_metrics();
//!     let appended = ["prometheus_tsdb_head_samples_appended_total"];
//!     prometheus.wait_sum_metrics_with(e2e::greater(0.0), appended, options).await?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Every workload here is started and checked on a real engine by `tests/catalog.rs` (against
//! stand-ins of these images that carry the same tags: see the repository's `.ci/run`). Each is
//! listed by [`catalog::iter`](crate::catalog::iter) once this module is linked in.
//!
//! Thanos, MinIO, Consul and Jaeger are not declared: there is no way to test them here, and an
//! untested definition would be a guess.
//!
//! A few of these images need a configuration file that upstream does not ship (haproxy) or
//! ships disabled (mosquitto, which listens on 127.0.0.1 only by default): their workloads write
//! one with the image's own `sh` at start, then `exec` the upstream entrypoint, so the service
//! is still PID 1's child and gets the stop signal.

use std::path::PathBuf;

use crate::{Error, Result};

crate::workload! {
    /// Prometheus scraping itself every second (job `myself`), with the external label
    /// `prometheus: <runnable name>`, as efficientgo/e2e's does; or on the configuration it is
    /// given, with the flags it is given.
    ///
    /// `Prometheus::with(env, name, Some(config), &["--query.timeout=30s"])` (or
    /// `Prometheus::ahead(env, name).init(..)`, when the configuration names other workloads'
    /// internal endpoints): `config` replaces the default configuration, `flags` are added to
    /// Prometheus's command line. It always runs with `--config.file` (in its directory),
    /// `--web.enable-lifecycle` and `--web.listen-address=:9090`; `--storage.tsdb.path=/prometheus`
    /// and `--storage.tsdb.retention.time=1d` unless the flags set those (written `--flag=value`).
    ///
    /// Its configuration lives in its directory ([`Prometheus::config_path`]): written there at
    /// first start unless one is already there, so [`Prometheus::set_config`] before start
    /// replaces it, and after start replaces it and reloads it (`POST /-/reload`). External
    /// labels apply to federation, remote write and alerts; they do not show in query results.
    pub Prometheus(config: Option<&str> = None, flags: &[&str] = &[]) {
        image: "quay.io/prometheus/prometheus:v2.42.0",
        ports: { http: 9090 },
        metrics: http,
        readiness: http(http, "/-/ready"),
        entrypoint: ["/bin/sh", "-c", prometheus_start_script(), "prometheus", ..flags],
        env: { E2E_PROMETHEUS_YML: config.unwrap_or("") },
    }

    /// Prometheus's node exporter: metrics of the machine it runs on (as a container sees it).
    pub NodeExporter {
        image: "quay.io/prometheus/node-exporter:v1.5.0",
        ports: { http: 9100 },
        metrics: http,
        readiness: http(http, "/metrics"),
    }

    /// The Prometheus Pushgateway: batch jobs push metrics to it (`PUT /metrics/job/<job>`),
    /// Prometheus scrapes them from its `/metrics`.
    pub Pushgateway {
        image: "quay.io/prometheus/pushgateway:v1.5.1",
        ports: { http: 9091 },
        metrics: http,
        readiness: http(http, "/-/ready"),
    }

    /// Alertmanager with the image's default configuration, as a single instance (clustering
    /// off). API at `/api/v2`.
    pub Alertmanager {
        image: "quay.io/prometheus/alertmanager:v0.25.0",
        ports: { http: 9093 },
        metrics: http,
        readiness: http(http, "/-/ready"),
        command: [
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            "--cluster.listen-address=",
        ],
    }

    /// The Prometheus blackbox exporter with the image's default modules (`http_2xx`,
    /// `tcp_connect`, ...): `GET /probe?module=http_2xx&target=<url>`.
    pub BlackboxExporter {
        image: "quay.io/prometheus/blackbox-exporter:v0.23.0",
        ports: { http: 9115 },
        metrics: http,
        readiness: http(http, "/-/healthy"),
    }

    /// memcached (64 MB of cache). It has no metrics endpoint of its own; ready when it accepts
    /// connections on its own address (it logs nothing at start unless run with `-vv`).
    pub Memcached {
        image: "memcached:1.6.18",
        ports: { memcached: 11211 },
        readiness: tcp(memcached),
    }

    /// Redis, protected mode off (as upstream's image), no persistence configured; `args` go to
    /// `redis-server` as they are: `Redis::with(env, "cache", &["--maxmemory", "10mb"])`, or a
    /// replica, `Redis::ahead(env, "replica").init(&["--replicaof", host, port])`.
    pub Redis(args: &[&str] = &[]) {
        image: "redis:7.0.15",
        ports: { redis: 6379 },
        readiness: log("Ready to accept connections"),
        command: ["redis-server", ..args],
    }

    /// A single-member etcd cluster, clients served on every interface (as upstream's docs run
    /// it); metrics on the client port.
    pub Etcd {
        image: "quay.io/coreos/etcd:v3.4.23",
        ports: { client: 2379, peer: 2380 },
        metrics: client,
        readiness: http(client, "/health").body_contains("\"health\":\"true\""),
        command: [
            "/usr/local/bin/etcd",
            "--listen-client-urls=http://0.0.0.0:2379",
            "--advertise-client-urls=http://0.0.0.0:2379",
        ],
    }

    /// nginx serving its welcome page.
    pub Nginx {
        image: "nginx:1.22.1",
        ports: { http: 80 },
        readiness: http(http, "/"),
    }

    /// HAProxy with a small configuration (upstream ships none): one frontend on `:8404` with
    /// `/healthz`, the stats page at `/stats` and the built-in Prometheus exporter at
    /// `/metrics`. For real proxying, replace the command with your own configuration.
    pub Haproxy {
        image: "haproxy:2.6.12",
        ports: { stats: 8404 },
        metrics: stats,
        readiness: http(stats, "/healthz"),
        entrypoint: ["/bin/sh", "-c", HAPROXY_START],
    }

    /// PostgreSQL 15, user and password `postgres`. Ready at the second "ready to accept
    /// connections": the first comes from the temporary server of the first start's
    /// initialisation.
    pub Postgres {
        image: "postgres:15",
        ports: { postgres: 5432 },
        readiness: log("database system is ready to accept connections", 2),
        env: { POSTGRES_PASSWORD: "postgres" },
    }

    /// The NATS server with the image's configuration: clients on 4222, cluster routes on 6222,
    /// HTTP monitoring (`/varz`, `/connz`, `/healthz`; JSON, not Prometheus) on 8222.
    pub Nats {
        image: "nats:2.9.10",
        ports: { client: 4222, cluster: 6222, monitor: 8222 },
        readiness: http(monitor, "/healthz"),
    }

    /// Single-node VictoriaMetrics: Prometheus-compatible query API, remote write and import
    /// on 8428, its own metrics at `/metrics`.
    pub VictoriaMetrics {
        image: "victoriametrics/victoria-metrics:v1.79.5",
        ports: { http: 8428 },
        metrics: http,
        readiness: http(http, "/health"),
    }

    /// The Mosquitto MQTT broker listening on 1883 for anonymous clients (upstream's default
    /// configuration listens on 127.0.0.1 only, so it writes one that does not).
    pub Mosquitto {
        image: "eclipse-mosquitto:2.0.11",
        ports: { mqtt: 1883 },
        readiness: all_of([log("mosquitto version .* running"), tcp(mqtt)]),
        entrypoint: ["/bin/sh", "-c", MOSQUITTO_START],
    }

    /// A container image registry (distribution), in-memory blob cache, storage in the
    /// container; its Prometheus metrics on the debug port 5001.
    pub Registry {
        image: "registry:2.8.2",
        ports: { http: 5000, debug: 5001 },
        metrics: debug,
        readiness: http(http, "/v2/"),
        env: { REGISTRY_HTTP_DEBUG_ADDR: ":5001", REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: "true" },
    }
}

/// Writes the given configuration (`$E2E_PROMETHEUS_YML`), else the default one, into the
/// runnable's directory unless one is there, then runs Prometheus on it with the given flags
/// (`"$@"`). The container's hostname is its runnable's name.
fn prometheus_start_script() -> String {
    format!(
        "set -e\n\
         dir={shared}/data/$(hostname)\n\
         if [ ! -f \"$dir/prometheus.yml\" ]; then\n\
         if [ -n \"$E2E_PROMETHEUS_YML\" ]; then\n\
         printf '%s\\n' \"$E2E_PROMETHEUS_YML\" > \"$dir/prometheus.yml\"\n\
         else\n\
         cat > \"$dir/prometheus.yml\" <<EOF\n{config}EOF\n\
         fi\n\
         fi\n\
         case \" $* \" in *' --storage.tsdb.path='*) ;; *) set -- \"$@\" --storage.tsdb.path=/prometheus ;; esac\n\
         case \" $* \" in *' --storage.tsdb.retention'*) ;; *) set -- \"$@\" --storage.tsdb.retention.time=1d ;; esac\n\
         exec /bin/prometheus --config.file=\"$dir/prometheus.yml\" --web.enable-lifecycle \
         --web.listen-address=:9090 \"$@\"",
        shared = "/shared",
        config = Prometheus::default_config("$(hostname)"),
    )
}

const HAPROXY_START: &str = r#"cat > /tmp/haproxy.cfg <<'EOF'
global
  log stdout format raw local0
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend stats
  bind :8404
  monitor-uri /healthz
  http-request use-service prometheus-exporter if { path /metrics }
  stats enable
  stats uri /stats
EOF
exec docker-entrypoint.sh haproxy -f /tmp/haproxy.cfg"#;

const MOSQUITTO_START: &str = r#"printf 'listener 1883\nallow_anonymous true\n' > /tmp/mosquitto.conf
exec /docker-entrypoint.sh /usr/sbin/mosquitto -c /tmp/mosquitto.conf"#;

impl Prometheus {
    /// The configuration a Prometheus named `name` starts with: it scrapes itself every second
    /// as job `myself` and carries the external label `prometheus: <name>`.
    pub fn default_config(name: &str) -> String {
        format!(
            "global:\n  external_labels:\n    prometheus: {name}\n\
             scrape_configs:\n  - job_name: myself\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['localhost:9090']\n"
        )
    }

    /// Its configuration file on the host, in its directory (`prometheus.yml`).
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("prometheus.yml")
    }

    /// Replaces its configuration. Before start, it is the one it starts with (the default is
    /// then not written); once running, Prometheus reloads it, and a configuration it rejects is
    /// an error.
    pub async fn set_config(&self, config: &str) -> Result<()> {
        let path = self.config_path();
        let io = |e| Error::Io { context: format!("writing {}", path.display()), source: e };
        std::fs::create_dir_all(self.dir()).map_err(io)?;
        // Prometheus may read at any moment, and the old file may belong to its uid: replace
        // the file whole.
        let tmp = path.with_extension("yml.tmp");
        std::fs::write(&tmp, config).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        if self.is_running().await? {
            // A remote engine's container does not see this host's file: put it there too.
            self.copy_to(&format!("{}/prometheus.yml", self.internal_dir()), config).await?;
            self.reload().await?;
        }
        Ok(())
    }

    /// Has Prometheus reload its configuration file (`POST /-/reload`).
    pub async fn reload(&self) -> Result<()> {
        let out = self.exec(["wget", "-q", "-O", "-", "--post-data=", "http://127.0.0.1:9090/-/reload"]).await?;
        if out.success() {
            return Ok(());
        }
        Err(Error::Io {
            context: format!("reloading the configuration of Prometheus {:?}", self.name()),
            source: std::io::Error::other(format!("{}{}", out.stdout, out.stderr).trim().to_string()),
        })
    }
}

/// The internal endpoint of a port the workload declares (never an error).
fn declared(endpoint: Result<crate::Endpoint>) -> crate::Endpoint {
    endpoint.expect("a declared port has an internal endpoint")
}

/// A cluster of [`Etcd`] members, each configured with the others' peer addresses (known
/// before any starts), elections tuned for tests (50 ms heartbeats, 500 ms election timeout).
/// Members are `<name>0`, `<name>1`..., typed `Etcd` with their accessors.
///
/// ```no_run
/// # async fn f(env: &e2e::Env) -> e2e::Result<()> {
/// let cluster = e2e::db::EtcdCluster::new(env, "etcd", 3);
/// cluster.start_and_wait_ready().await?;
/// let leader = cluster.leader().await?;
/// let cut = e2e::partition([leader], cluster.followers().await?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EtcdCluster {
    members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Declares `n` members in `env`, named `<name>0`...
    pub fn new(env: &crate::Env, name: &str, n: usize) -> Self {
        let ahead: Vec<(String, EtcdFuture)> = (0..n)
            .map(|i| {
                let member = format!("{name}{i}");
                let future = Etcd::ahead(env, &member);
                (member, future)
            })
            .collect();
        let cluster: Vec<String> =
            ahead.iter().map(|(m, f)| format!("{m}=http://{}", declared(f.peer_internal_endpoint()))).collect();
        let cluster = cluster.join(",");
        let token = format!("{}-{name}", env.name());
        let members = ahead
            .into_iter()
            .map(|(member, f)| {
                let command = [
                    "/usr/local/bin/etcd".to_string(),
                    format!("--name={member}"),
                    format!("--initial-advertise-peer-urls=http://{}", declared(f.peer_internal_endpoint())),
                    "--listen-peer-urls=http://0.0.0.0:2380".into(),
                    "--listen-client-urls=http://0.0.0.0:2379".into(),
                    format!("--advertise-client-urls=http://{}", declared(f.client_internal_endpoint())),
                    format!("--initial-cluster={cluster}"),
                    "--initial-cluster-state=new".into(),
                    format!("--initial-cluster-token={token}"),
                    "--heartbeat-interval=50".into(),
                    "--election-timeout=500".into(),
                ];
                f.init_options(Etcd::options().command(command))
            })
            .collect();
        EtcdCluster { members }
    }

    /// Its members.
    pub fn members(&self) -> &[Etcd] {
        &self.members
    }

    /// Every member's client endpoint for the test process (`127.0.0.1:<port>`), once started.
    pub fn client_endpoints(&self) -> Result<Vec<crate::Endpoint>> {
        self.members.iter().map(|m| m.client_endpoint()).collect()
    }

    /// Starts every member at once (a member is ready once the cluster has a leader).
    pub async fn start_and_wait_ready(&self) -> Result<()> {
        crate::start_and_wait_ready(&self.members).await
    }

    /// The member that says it leads (`etcd_server_is_leader`), once one does: waits for an
    /// election for up to 30 s.
    pub async fn leader(&self) -> Result<&Etcd> {
        self.leader_among(self.members.iter()).await
    }

    /// The members but the leader (waiting for one, as [`EtcdCluster::leader`]).
    pub async fn followers(&self) -> Result<Vec<&Etcd>> {
        let leader = self.leader().await?.name().to_string();
        Ok(self.members.iter().filter(|m| m.name() != leader).collect())
    }

    /// The member among `these` that says it leads, once one does (up to 30 s): the new leader
    /// of a majority, say.
    pub async fn leader_among<'a>(&self, these: impl IntoIterator<Item = &'a Etcd>) -> Result<&'a Etcd> {
        let these: Vec<&Etcd> = these.into_iter().collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            for m in &these {
                if m.sum_metrics(["etcd_server_is_leader"]).await.map(|v| v[0] == 1.0).unwrap_or(false) {
                    return Ok(m);
                }
            }
            if std::time::Instant::now() > deadline {
                let names: Vec<&str> = these.iter().map(|m| m.name()).collect();
                return Err(Error::NotReady {
                    runnable: names.join(", "),
                    probe: "etcd_server_is_leader == 1 on one of them".into(),
                    waited: std::time::Duration::from_secs(30),
                    last_error: "no member says it leads".into(),
                    logs: Vec::new(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
