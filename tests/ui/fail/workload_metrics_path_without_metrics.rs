e2e::workload! {
    Exporter {
        image: "exporter:1",
        ports: { http: 9100 },
        metrics_path: "/metrics",
    }
}

fn main() {}
