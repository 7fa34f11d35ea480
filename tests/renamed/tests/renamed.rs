//! Both macros under a renamed dependency: no `e2e` crate is in scope here, only `my_e2e`.

my_e2e::workload! {
    crate = "my_e2e";

    /// A container that sleeps, ready once a command runs in it.
    pub Sleeper {
        image: "busybox:1.35",
        command: ["sleep", "3600"],
        readiness: cmd(["true"]),
    }
}

#[my_e2e::test(crate = "my_e2e", env = "ren_ok")]
async fn a_renamed_dependency_works(env: &my_e2e::Env, sleeper: Sleeper) -> my_e2e::Result<()> {
    assert_eq!(env.name(), "ren_ok");
    assert!(sleeper.is_running().await?);
    let extra = Sleeper::new(env, "extra");
    extra.start_and_wait_ready().await?;
    assert!(my_e2e::catalog::get("Sleeper").is_ok(), "the workload is in the catalog");
    Ok(())
}
