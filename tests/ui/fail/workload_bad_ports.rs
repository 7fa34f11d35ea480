e2e::workload! {
    A { image: "a", ports: { zero: 0, big: 70000, signed: 80i32, text: "80" } }
    B { image: "b", ports: [http, 80] }
}

fn main() {}
