e2e::workload! {
    Redis {
        image: "redis:7.2",
        ports: { redis: 6379, redis: 6380 },
        env: { MODE: "a", MODE: "b" },
        image: "redis:7.4",
    }
}

fn main() {}
