//! Image building against the real engine. There is no registry: every image is `FROM scratch`.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_runtime::image::{build_dockerfile, cargo_bin, BinaryImage, CONTENT_HASH_LABEL, IMAGE_LABEL};
use e2e_runtime::Error;
// The engine on Docker: linked, so that the runtime finds it.
use e2e_docker as _;

/// Removes the image tagged so when the test ends, whether it passed or not.
struct RemoveImage(&'static str);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "--force", self.0]).output();
    }
}

/// Runs the docker CLI and returns its stdout, failing the test on a non-zero exit.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("running the docker CLI");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn label(tag: &str, key: &str) -> String {
    docker(&["image", "inspect", "--format", &format!("{{{{index .Config.Labels {key:?}}}}}"), tag])
}

#[tokio::test]
async fn binary_image_runs_the_binary_with_its_libraries() {
    const TAG: &str = "e2e-test/image-binary:latest";
    let _cleanup = RemoveImage(TAG);
    // `id` links libselinux, which links libpcre2: the libraries' own dependencies must come too.
    // `env` and `stat` link a subset of those.
    let image = BinaryImage::new(TAG, "/usr/bin/id")
        .file("/usr/bin/env", "/usr/bin/env")
        .file("/usr/bin/stat", "/usr/bin/stat")
        .env("GREETING", r#"hello "scratch" $HOME \o/"#)
        .expose(8080)
        .user("65534");

    let id = image.build().await.unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Id}}", TAG]), id);
    assert_eq!(label(TAG, IMAGE_LABEL), "true");
    assert_eq!(label(TAG, CONTENT_HASH_LABEL).len(), 64);
    assert_eq!(docker(&["image", "inspect", "--format", "{{json .Config.ExposedPorts}}", TAG]), r#"{"8080/tcp":{}}"#);

    // The entrypoint runs as the user asked for, whom /etc/passwd and /etc/group name.
    assert_eq!(docker(&["run", "--rm", TAG]), "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)");
    let env = docker(&["run", "--rm", "--entrypoint", "/usr/bin/env", TAG]);
    assert!(env.lines().any(|l| l == r#"GREETING=hello "scratch" $HOME \o/"#), "{env}");
    let modes =
        docker(&["run", "--rm", "--entrypoint", "/usr/bin/stat", TAG, "-c", "%a %n", "/tmp", "/usr/local/bin/id"]);
    assert_eq!(modes, "1777 /tmp\n755 /usr/local/bin/id");

    // Same content: nothing is built again.
    let started = Instant::now();
    assert_eq!(image.clone().quiet(true).build().await.unwrap(), id);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    // Other content, same tag: built again.
    let other = image.env("GREETING", "bye").quiet(true).build().await.unwrap();
    assert_ne!(other, id);
    assert!(docker(&["run", "--rm", "--entrypoint", "/usr/bin/env", TAG]).lines().any(|l| l == "GREETING=bye"));
    // The image it replaced is removed, not left dangling.
    let old = Command::new("docker").args(["image", "inspect", &id]).output().unwrap();
    assert!(!old.status.success(), "the replaced image {id} is still there");
}

#[tokio::test]
async fn builds_from_a_dockerfile() {
    const TAG: &str = "e2e-test/image-dockerfile:latest";
    let _cleanup = RemoveImage(TAG);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docker")).unwrap();
    std::fs::write(
        dir.path().join("docker/Test.Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL test.greeting=hello\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();

    let id = build_dockerfile(TAG, dir.path(), Some("docker/Test.Dockerfile")).await.unwrap();
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Id}}", TAG]), id);
    assert_eq!(label(TAG, IMAGE_LABEL), "true");
    assert_eq!(label(TAG, "test.greeting"), "hello");
}

#[tokio::test]
async fn a_failing_dockerfile_gives_the_builders_message() {
    const TAG: &str = "e2e-test/image-broken:latest";
    let _cleanup = RemoveImage(TAG);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY missing /x\n").unwrap();

    let err = build_dockerfile(TAG, dir.path(), None).await.unwrap_err();
    assert!(matches!(err, Error::ImageBuild { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(TAG), "{message}");
    assert!(message.contains("COPY failed") && message.contains("missing"), "{message}");
    let inspect = Command::new("docker").args(["image", "inspect", TAG]).output().unwrap();
    assert!(!inspect.status.success(), "a failed build left an image tagged {TAG}");
}

#[test]
fn cargo_bin_names_the_package_and_shows_cargos_error() {
    let err = cargo_bin("e2e-no-such-package", "nothing").unwrap_err().to_string();
    assert!(err.contains("\"e2e-no-such-package\""), "{err}");
    assert!(err.contains("did not match any packages"), "{err}");
}
