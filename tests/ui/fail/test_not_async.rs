#[e2e::test(env = "e2e_example")]
fn not_async(env: &e2e::Env) -> e2e::Result<()> {
    let _ = env;
    Ok(())
}

fn main() {}
