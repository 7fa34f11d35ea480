e2e::workload! {
    Redis {
        image: "redis:7.2",
        port: { redis: 6379 },
        readyness: tcp(redis),
    }
}

fn main() {}
