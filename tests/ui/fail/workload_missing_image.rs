e2e::workload! {
    /// Forgot its image.
    pub Redis {
        ports: { redis: 6379 },
        readiness: tcp(redis),
    }
}

fn main() {
    // The type is still emitted: only the missing image is reported.
    let _ = Redis::IMAGE;
}
