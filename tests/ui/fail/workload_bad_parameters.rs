e2e::workload! {
    Untyped(version = "7.2") { image: "redis" }
    Partial(version: &str = "7.2", mode: &str) { image: "redis", command: [version, mode] }
}

fn main() {}
