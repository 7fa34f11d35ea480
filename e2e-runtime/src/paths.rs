//! Where runs keep their files on this host, and the machine-wide lock of an env name.
//!
//! `<tmp>/e2e-runs/` is shared by every user of the machine; inside it, one directory per run
//! (`<pid>.<start time>`, private to its user) holding one directory per env, and `locks/`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::owner::Owner;

/// `<tmp>/e2e-runs`, created open to every user (sticky, like /tmp).
pub(crate) fn runs_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("e2e-runs");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        set_mode(&dir, 0o1777);
    }
    Ok(dir)
}

/// The directory of env `env` of run `owner`.
pub(crate) fn env_dir(owner: &Owner, env: &str) -> Result<PathBuf> {
    Ok(runs_dir()?.join(owner.dir_name()).join(env))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// Makes an env's directory afresh, with `shared` inside it open to the containers' users.
pub(crate) fn make_env_dirs(root: &Path, shared: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(shared).map_err(|e| Error::io(format!("creating {}", shared.display()), e))?;
    // The run's directory is private to this user; the shared one inside it is open to the
    // containers' users, whatever uid they run as.
    let run_dir = root.parent().unwrap_or(root);
    for (dir, mode) in [(run_dir, 0o700), (root, 0o700), (shared, 0o777)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting permissions of {}", dir.display()), e))?;
    }
    Ok(())
}

/// A directory open to the containers' users, inside the shared one.
pub(crate) fn make_open_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    set_mode(dir, 0o777);
    Ok(())
}

/// Removes an env's directory, and its run's directory once that is empty.
pub(crate) fn remove_env_dir(root: &Path) -> Result<()> {
    // A log follower may still write a container's last lines while the tree goes (its stream
    // ends with the container): "directory not empty" then, and a second pass removes it.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(root) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io(format!("removing {}", root.display()), e)),
        }
    }
    if let Some(run_dir) = root.parent() {
        let _ = std::fs::remove_dir(run_dir);
    }
    Ok(())
}

/// Removes the directories of run `owner` but those of the envs in `kept`.
pub(crate) fn remove_run_dirs(owner: &Owner, kept: &std::collections::HashSet<String>) {
    let Ok(runs) = runs_dir() else { return };
    let run_dir = runs.join(owner.dir_name());
    for entry in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
        if !kept.contains(&*entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let _ = std::fs::remove_dir(&run_dir);
}

/// Removes the directories of this host's dead runs.
pub(crate) fn remove_dead_run_dirs() {
    let Ok(dir) = runs_dir() else { return };
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if Owner::from_dir_name(&name).is_some_and(|o| o.is_dead()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Takes the machine-wide lock of an env name, waiting while another run holds it.
pub(crate) async fn lock_env_name(name: &str) -> Result<std::fs::File> {
    let dir = runs_dir()?.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    set_mode(&dir, 0o1777);
    let path = dir.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening env lock {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(format!("locking {}", path.display()), e)),
    }
    crate::say::say!(
        info,
        { env = name },
        "env {name:?} is in use by another test or process; waiting for it to close"
    );
    crate::task::blocking(move || file.lock().map(|()| file))
        .await
        .expect("the lock task does not panic")
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))
}
