struct Suite;

impl Suite {
    #[e2e::test(env = "e2e_example")]
    async fn method(&self, env: &e2e::Env) {
        let _ = env;
    }
}

fn main() {}
