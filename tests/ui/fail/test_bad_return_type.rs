#[e2e::test(env = "e2e_example")]
async fn returns_a_number(env: &e2e::Env) -> u32 {
    let _ = env;
    7
}

fn main() {}
