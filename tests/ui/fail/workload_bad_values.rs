e2e::workload! {
    A {
        image: concat!("redis", ":7.2"),
        command: "--port 6379",
        entrypoint: "/bin/sh",
        metrics: "http",
        env: [MODE, "a"],
    }
}

fn main() {}
