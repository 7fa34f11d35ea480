e2e::workload! {
    A { image: "a", readiness_timeout: "soon" }
    B { image: "b", readiness_timeout: "0s" }
    C { image: "c", readiness_timeout: 30 }
}

fn main() {}
