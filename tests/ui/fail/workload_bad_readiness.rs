e2e::workload! {
    A { image: "a", ports: { http: 80 }, readiness: grpc(http) }
    B { image: "b", ports: { http: 80 }, readiness: http("/ready") }
    C { image: "c", ports: { http: 80 }, readiness: tcp(http).status(200..=299) }
    D { image: "d", ports: { http: 80 }, readiness: "http" }
    E { image: "e", ports: { http: 80 }, readiness: log() }
    F { image: "f", ports: { http: 80 }, readiness: cmd("true") }
    G { image: "g", ports: { http: 80 }, readiness: http(http, "/").retries(3) }
}

fn main() {}
