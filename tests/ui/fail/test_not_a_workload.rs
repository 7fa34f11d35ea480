e2e::workload! {
    /// Needs its version: can't be a test parameter.
    Db(version: u32) { image: "db", user: version }
}

#[e2e::test(env = "e2e_example")]
async fn string_parameter(env: &e2e::Env, name: String) {
    let _ = (env, name);
}

#[e2e::test(env = "e2e_example")]
async fn workload_without_defaults(db: Db) {
    let _ = db;
}

fn main() {}
