e2e::workload! {
    Prometheus {
        image: "quay.io/prometheus/prometheus:v2.42.0",
        ports: { http: 9090, grpc: 10901 },
        metrics: htp,
        readiness: all_of([http(http, "/-/ready"), tcp(grcp)]),
    }

    NoPorts {
        image: "busybox:1.36",
        readiness: http(http, "/"),
    }
}

fn main() {}
