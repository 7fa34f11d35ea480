//! An engine that cannot be reached is reported as such (its own test binary, since it changes
//! `DOCKER_HOST` for the whole process).

#[tokio::test]
async fn unreachable_engine_says_so() {
    std::env::set_var("DOCKER_HOST", "tcp://127.0.0.1:1");
    let e = e2e::Env::docker("rt_unreachable").await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, e2e::Error::DockerUnavailable { .. }), "{msg}");
    assert!(msg.contains("tcp://127.0.0.1:1") && msg.contains("DOCKER_HOST"), "{msg}");
}
