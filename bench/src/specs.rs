//! The containers of each scenario, described once so the three contestants run exactly the
//! same images, commands and readiness checks.

/// What "ready" means for one container.
#[derive(Clone, Debug)]
pub enum Ready {
    /// `GET http://<container ip>:<port><path>` answers 2xx (and the body contains the text).
    Http { path: &'static str, body: Option<&'static str> },
    /// This line appears `times` times in the container's output.
    Log { line: &'static str, times: usize },
    /// A TCP connection to `<container ip>:<port>` is accepted.
    Tcp,
}

/// One container.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub image: String,
    /// Replaces the image's command (not its entrypoint).
    pub cmd: Vec<String>,
    pub env: Vec<(&'static str, &'static str)>,
    /// The one port published and probed.
    pub port: u16,
    pub ready: Ready,
}

impl Spec {
    fn new(name: &'static str, image: &str, port: u16, ready: Ready) -> Self {
        Spec { name, image: image.to_string(), cmd: vec![], env: vec![], port, ready }
    }

    fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `repo` and `tag` of the image, as testcontainers wants them.
    pub fn image_parts(&self) -> (&str, &str) {
        self.image.rsplit_once(':').unwrap_or((&self.image, "latest"))
    }
}

/// The fixture service's image (built by the bench before anything runs).
pub const FIXTURE_IMAGE: &str = "e2e-fixture:bench";

pub const BUSYBOX: &str = "busybox:1.35";

/// Scenario P: 5 busybox httpd.
pub fn p() -> Vec<Spec> {
    ["web0", "web1", "web2", "web3", "web4"]
        .into_iter()
        .map(|name| {
            Spec::new(name, BUSYBOX, 80, Ready::Http { path: "/", body: None }).cmd(&[
                "sh",
                "-c",
                "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www",
            ])
        })
        .collect()
}

/// Scenario real: five real services with their real readiness.
pub fn real() -> Vec<Spec> {
    vec![
        Spec::new("prometheus", "prom/prometheus:v2.42.0", 9090, Ready::Http { path: "/-/ready", body: None }),
        Spec::new(
            "etcd",
            "quay.io/coreos/etcd:v3.4.23",
            2379,
            Ready::Http { path: "/health", body: Some("\"health\":\"true\"") },
        )
        .cmd(&[
            "/usr/local/bin/etcd",
            "--listen-client-urls=http://0.0.0.0:2379",
            "--advertise-client-urls=http://0.0.0.0:2379",
        ]),
        Spec {
            env: vec![("POSTGRES_PASSWORD", "postgres")],
            ..Spec::new(
                "postgres",
                "postgres:15",
                5432,
                Ready::Log { line: "database system is ready to accept connections", times: 2 },
            )
        },
        Spec::new("redis", "redis:7.0.15", 6379, Ready::Log { line: "Ready to accept connections", times: 1 }),
        Spec::new("memcached", "memcached:1.6.18", 11211, Ready::Tcp),
    ]
}

/// Scenario crash: a service that exits with code 3 after 0.3 s, before it is ever ready.
pub fn crash() -> Spec {
    Spec::new("crasher", FIXTURE_IMAGE, 8080, Ready::Http { path: "/ready", body: None }).cmd(&[
        "--ready-after=1h",
        "--exit-after=300ms",
        "--exit-code=3",
    ])
}

/// Readiness latency: the fixture turns ready 1 s after it starts and logs `ready <epoch µs>`.
pub fn turns_ready() -> Spec {
    Spec::new("late", FIXTURE_IMAGE, 8080, Ready::Http { path: "/ready", body: None }).cmd(&["--ready-after=1s"])
}

/// Close: 10 fixture services, ready at once.
pub fn ten() -> Vec<Spec> {
    const NAMES: [&str; 10] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
    NAMES.into_iter().map(|n| Spec::new(n, FIXTURE_IMAGE, 8080, Ready::Http { path: "/ready", body: None })).collect()
}

/// The epoch microseconds in the fixture's `ready <µs>` line, if it is among `lines`.
pub fn ready_instant(lines: &[String]) -> Option<u128> {
    lines.iter().find_map(|l| l.trim().strip_prefix("ready ")?.trim().parse().ok())
}
