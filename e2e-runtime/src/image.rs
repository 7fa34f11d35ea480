//! Images built on the local engine: from a Dockerfile, or `FROM scratch` from a host binary, so
//! a service can be tested with no registry and no Dockerfile.
//!
//! Built images carry the label [`IMAGE_LABEL`]. They are a cache: nothing removes them.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::engine::{Engine, ImageBuild, ImageRef, Labels};
use crate::error::{Error, Result};

/// Label every image built here carries (`true`).
pub const IMAGE_LABEL: &str = "dev.e2e.image";
/// Label holding a [`BinaryImage`]'s content hash, to skip rebuilding what is already built.
pub const CONTENT_HASH_LABEL: &str = "dev.e2e.content-hash";

/// Builds `tag` from a Dockerfile in a context directory.
///
/// The whole directory is sent as the build context (symbolic links as links; `.dockerignore`
/// is not applied). `dockerfile` is the Dockerfile's path relative to the context, by default
/// `Dockerfile`. The builder's output lines are printed prefixed with `e2e: build <tag>: `. The
/// image gets the label [`IMAGE_LABEL`]. Returns the image id.
///
/// A failed build is an [`Error::ImageBuild`] holding the builder's message.
pub async fn build_dockerfile(tag: &str, context: impl AsRef<Path>, dockerfile: Option<&str>) -> Result<String> {
    let (image, dir) = (tag.to_string(), context.as_ref().to_path_buf());
    let context = blocking(move || {
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", &dir).and_then(|()| tar.into_inner()).map_err(|e| Error::ImageBuild {
            image,
            detail: format!("packing the build context {}: {e}", dir.display()),
        })
    })
    .await?;
    let engine = crate::engine::connect().await?;
    let labels = Labels::from([(IMAGE_LABEL.to_string(), "true".to_string())]);
    build(&*engine, tag, context, dockerfile.unwrap_or("Dockerfile"), labels, false).await
}

/// A `FROM scratch` image made from a host binary (for example one [`cargo_bin`] just built)
/// plus the shared libraries it links and the dynamic loader.
///
/// The binary goes to `/usr/local/bin/<its file name>` and is the image's entrypoint; the
/// libraries keep their host paths, and `LD_LIBRARY_PATH` names their directories. The image
/// also has an empty `/tmp`, and an `/etc/passwd` and `/etc/group` with `root` and `nobody`
/// (65534) so that user look-ups work, and an `/etc/nsswitch.conf` reading files then DNS.
///
/// ```no_run
/// # async fn f() -> e2e_runtime::Result<()> {
/// use e2e_runtime::image::{cargo_bin, BinaryImage};
/// let id = BinaryImage::new("my-service:e2e", cargo_bin("my-service", "my-service")?)
///     .file("tests/config.toml", "/etc/my-service/config.toml")
///     .env("RUST_LOG", "debug")
///     .expose(8080)
///     .user("65534")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BinaryImage {
    tag: String,
    binary: PathBuf,
    files: Vec<(PathBuf, String)>,
    env: Vec<(String, String)>,
    ports: Vec<u16>,
    user: Option<String>,
    quiet: bool,
}

impl BinaryImage {
    /// An image tagged `tag` running the host binary `binary`.
    pub fn new(tag: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        BinaryImage {
            tag: tag.into(),
            binary: binary.into(),
            files: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            user: None,
            quiet: false,
        }
    }

    /// Adds the host file `host` at the absolute path `in_image` (a config, a CA bundle), with
    /// its host permissions. It may replace a generated file such as `/etc/passwd`.
    pub fn file(mut self, host: impl Into<PathBuf>, in_image: impl Into<String>) -> Self {
        self.files.push((host.into(), in_image.into()));
        self
    }

    /// Sets an environment variable in the image (overriding the generated `LD_LIBRARY_PATH`
    /// too); the value is taken literally.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Declares a TCP port the binary listens on.
    pub fn expose(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// The user (name or numeric id, for example `"65534"`) the binary runs as; root by default.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Whether to keep the builder's output off stdout (it is printed by default).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Builds the image, unless the image tagged so already has the same content (files, their
    /// paths and modes in the image, and its configuration, hashed into the label
    /// [`CONTENT_HASH_LABEL`]), in which case it returns at once. Returns the image id.
    pub async fn build(&self) -> Result<String> {
        let engine = crate::engine::connect().await?;
        self.build_on(&*engine).await
    }

    /// [`BinaryImage::build`] on `engine`.
    pub(crate) async fn build_on(&self, engine: &dyn crate::engine::Engine) -> Result<String> {
        let image = self.clone();
        let (context, hash) = blocking(move || image.context()).await?;
        let found =
            engine.image(&self.tag).await.map_err(|e| Error::engine(format!("inspecting image {:?}", self.tag), e))?;
        if let Some(found) = found.as_ref().filter(|f| f.labels.get(CONTENT_HASH_LABEL) == Some(&hash)) {
            if !self.quiet {
                crate::say::say!(info, { image = self.tag }, "build {}: up to date", self.tag);
            }
            return Ok(found.id.clone());
        }
        let built = build(engine, &self.tag, context, "Dockerfile", Labels::new(), self.quiet).await?;
        // The image this tag named before, now untagged: removed rather than left dangling
        // (it stays, a conflict ignored, while a container or another tag uses it).
        if let Some(old) = found.filter(|f| f.id != built) {
            let _ = engine.remove_image(&old.id).await;
        }
        Ok(built)
    }

    /// The build context (the image's tree under `rootfs/`, and a Dockerfile), and the hash of
    /// its content.
    fn context(&self) -> Result<(Vec<u8>, String)> {
        let failed = |detail: String| Error::ImageBuild { image: self.tag.clone(), detail };
        let read = |path: &Path| {
            let read = || {
                Ok::<_, std::io::Error>((std::fs::metadata(path)?.permissions().mode() & 0o777, std::fs::read(path)?))
            };
            read().map_err(|e| failed(format!("reading {}: {e}", path.display())))
        };
        let name = self.binary.file_name().and_then(|n| n.to_str());
        let name = name.ok_or_else(|| failed(format!("{} has no usable file name", self.binary.display())))?;
        let entrypoint = format!("/usr/local/bin/{name}");

        let binary = read(&self.binary)?;
        let linked = crate::libs::linked(&self.binary, &binary.1).map_err(&failed)?;
        // In-image path, relative to the root -> (mode, content).
        let mut files = BTreeMap::from([
            (PathBuf::from("etc/passwd"), (0o644, PASSWD.as_bytes().to_vec())),
            (PathBuf::from("etc/group"), (0o644, GROUP.as_bytes().to_vec())),
            (PathBuf::from("etc/nsswitch.conf"), (0o644, NSSWITCH.as_bytes().to_vec())),
            (in_image(Path::new(&entrypoint)).map_err(&failed)?, binary),
        ]);
        let libraries = linked.libraries;
        // The kernel runs the loader from the path in PT_INTERP, which the loader may list
        // elsewhere (as found from libc) when that path goes through a link such as /lib64.
        for path in libraries.iter().cloned().chain(linked.interpreter) {
            files.insert(in_image(&path).map_err(&failed)?, read(&path)?);
        }
        for (host, path) in &self.files {
            files.insert(in_image(Path::new(path)).map_err(&failed)?, read(host)?);
        }

        let mut dockerfile = format!(
            "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT {}\n",
            serde_json::to_string(&[&entrypoint]).expect("a list of strings is JSON")
        );
        // The image has no ld.so.cache and the binary has moved: name the libraries' directories
        // so that those found through ld.so.conf or $ORIGIN are found again.
        let lib_dirs: BTreeSet<_> = libraries.iter().filter_map(|l| l.parent()).map(|d| d.to_string_lossy()).collect();
        let lib_path = (!lib_dirs.is_empty())
            .then(|| ("LD_LIBRARY_PATH".to_string(), lib_dirs.into_iter().collect::<Vec<_>>().join(":")));
        let mut env = String::new();
        for (key, value) in lib_path.iter().chain(&self.env) {
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=\"'\\$".contains(c)) {
                return Err(failed(format!("invalid environment variable name {key:?}")));
            }
            env += &format!(" {key}={}", quote(value).map_err(&failed)?);
        }
        // One ENV and one EXPOSE: the legacy builder runs a container for each instruction.
        if !env.is_empty() {
            dockerfile += &format!("ENV{env}\n");
        }
        if !self.ports.is_empty() {
            dockerfile += &format!("EXPOSE{}\n", self.ports.iter().map(|p| format!(" {p}")).collect::<String>());
        }
        if let Some(user) = &self.user {
            dockerfile += &format!("USER {}\n", quote(user).map_err(&failed)?);
        }

        let pack = |e: std::io::Error| failed(format!("packing the build context: {e}"));
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, tar::EntryType::Directory, Path::new("rootfs/tmp"), 0o1777, &[]).map_err(pack)?;
        for (path, (mode, data)) in &files {
            append(&mut tar, tar::EntryType::Regular, &Path::new("rootfs").join(path), *mode, data).map_err(pack)?;
        }
        // The tree so far is the same bytes for the same files, paths and modes.
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        hash.update(tar.get_ref());
        hash.update(dockerfile.as_bytes());
        let hash = hex(hash.finish().as_ref());
        dockerfile += &format!("LABEL {IMAGE_LABEL}=\"true\" {CONTENT_HASH_LABEL}=\"{hash}\"\n");
        append(&mut tar, tar::EntryType::Regular, Path::new("Dockerfile"), 0o644, dockerfile.as_bytes())
            .map_err(pack)?;
        Ok((tar.into_inner().map_err(pack)?, hash))
    }
}

/// Adds an entry owned by root, with no time, so that the same content gives the same bytes.
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &Path,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    tar.append_data(&mut header, path, data)
}

/// Builds the binary `bin` of the workspace package `package` with cargo (`$CARGO`, else
/// `cargo`), in the current workspace's target directory and profile `dev`, and returns the
/// binary's path. Usable from a running `cargo test`: cargo does not hold its lock while
/// tests run.
///
/// A failure is an [`Error::Io`] naming the package and holding cargo's error output.
pub fn cargo_bin(package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let what = format!("building binary {bin:?} of package {package:?} with {}", cargo.to_string_lossy());
    let out = Command::new(&cargo)
        .args(["build", "--profile", "dev", "--message-format", "json-render-diagnostics"])
        .args(["--package", package, "--bin", bin])
        .output()
        .map_err(|e| Error::io(what.clone(), e))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Error::io(
            format!("{what} failed ({})", out.status),
            std::io::Error::other(stderr.trim().to_string()),
        ));
    }
    // The artifact messages on stdout name the executable wherever the target directory is.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter(|m| m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Error::io(what, std::io::Error::other(format!("cargo named no executable\n{}", stderr.trim()))))
}

/// Makes sure `image` is present, pulling it (with progress lines unless `quiet`) only when
/// missing.
pub(crate) async fn pull(engine: &dyn Engine, image: &str, quiet: bool) -> Result<()> {
    let found = engine.image(image).await.map_err(|e| Error::engine(format!("inspecting image {image:?}"), e))?;
    if found.is_some() {
        return Ok(());
    }
    if !quiet {
        crate::say::say!(info, { image = image }, "pulling image {image} (not present locally)");
    }
    let mut last = String::new();
    let mut progress = |line: &str| {
        if !quiet && line != last {
            crate::say::say!(info, { image = image }, "pull {image}: {line}");
            last = line.to_string();
        }
    };
    engine
        .pull_image(&ImageRef::parse(image), &mut progress)
        .await
        .map_err(|e| Error::ImageNotFound { image: image.into(), detail: e.message().to_string() })
}

/// Sends a context to the builder, printing its output, and returns the image's id.
async fn build(
    engine: &dyn Engine,
    tag: &str,
    context: Vec<u8>,
    dockerfile: &str,
    labels: Labels,
    quiet: bool,
) -> Result<String> {
    let failed = |detail: String| Error::ImageBuild { image: tag.to_string(), detail };
    let build = ImageBuild { tag: tag.to_string(), context, dockerfile: dockerfile.to_string(), labels };
    let mut step = String::new();
    let built = engine
        .build_image(&build, &mut |line| {
            if line.starts_with("Step ") {
                step = line.to_string();
            }
            if !quiet {
                crate::say::say!(info, { image = tag }, "build {tag}: {line}");
            }
        })
        .await;
    if let Err(e) = built {
        let error = e.message().to_string();
        return Err(failed(if step.is_empty() { error } else { format!("{error} (at {step})") }));
    }
    let image = engine
        .image(tag)
        .await
        .map_err(|e| Error::engine(format!("inspecting image {tag:?} after building it"), e))?
        .ok_or_else(|| failed("the engine reports success but has no such image".to_string()))?;
    Ok(image.id)
}

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";
// With no nsswitch.conf glibc asks DNS before /etc/hosts, and stops there for `localhost`.
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// An absolute in-image path as a path relative to the image's root, refusing `..` and the like.
fn in_image(path: &Path) -> std::result::Result<PathBuf, String> {
    let relative = path.strip_prefix("/").map_err(|_| format!("in-image path {path:?} is not absolute"))?;
    if relative.as_os_str().is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("in-image path {path:?} must name a file, with no `.` or `..`"));
    }
    Ok(relative.to_path_buf())
}

/// A Dockerfile word taken literally: quoted, with no variable expansion.
fn quote(s: &str) -> std::result::Result<String, String> {
    if s.contains(['\n', '\r']) {
        return Err(format!("{s:?} has a line break, which a Dockerfile cannot hold"));
    }
    let mut quoted = String::from("\"");
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    Ok(quoted + "\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs file-system work off the async threads, passing a panic on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    crate::task::blocking(f).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_literally() {
        assert_eq!(quote(r#"a "b" $HOME \x"#).unwrap(), r#""a \"b\" \$HOME \\x""#);
        assert!(quote("a\nb").is_err());
    }

    #[test]
    fn in_image_paths_are_absolute_and_plain() {
        let in_image = |p: &str| in_image(Path::new(p));
        assert_eq!(in_image("/etc/app.toml").unwrap(), PathBuf::from("etc/app.toml"));
        assert!(in_image("etc/app.toml").is_err());
        assert!(in_image("/etc/../x").is_err());
        assert!(in_image("/").is_err());
    }
}
