//! The state store under `--root`: one directory per container holding `state.json`
//! (written atomically: temp file + rename) and, between create and start, `exec.fifo`.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FIFO: &str = "exec.fifo";
/// Where the container's first process leaves an error that happens after `start`.
pub const START_ERR: &str = "start.err";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What husk remembers about a container (state.json).
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat): tells a reused pid apart.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// cgroup directories the container owns, one per hierarchy (absolute paths).
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// The cgroup directories this container created: removed by delete.
    #[serde(default)]
    pub cgroup_owned: Vec<PathBuf>,
    /// Whether the container has its own pid namespace (kill --all / delete semantics).
    #[serde(default)]
    pub own_pidns: bool,
    #[serde(default)]
    pub oci_version: String,
    /// No mount namespace of its own: its mounts are in ours, under rootfs, until delete.
    #[serde(default)]
    pub shares_our_mntns: bool,
    /// The config's hooks: poststart runs in `start`, poststop in `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// runc's JSON for `state` and `list --format json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

pub fn valid_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.' only");
    }
    Ok(())
}

pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Make the container's directory; fails if the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        valid_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .with_context(|| format!("create state root {}", self.root.display()))?;
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id:?} already exists")
            }
            Err(e) => Err(e).with_context(|| format!("create state dir {}", dir.display())),
        }
    }

    pub fn save(&self, st: &State) -> Result<()> {
        let dir = self.dir(&st.id);
        let tmp = dir.join(".state.json.tmp");
        let text = serde_json::to_vec(st)?;
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).ok();
        std::fs::rename(&tmp, dir.join("state.json"))
            .with_context(|| format!("rename state file in {}", dir.display()))?;
        Ok(())
    }

    pub fn load(&self, id: &str) -> Result<State> {
        valid_id(id)?;
        let p = self.dir(id).join("state.json");
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id:?} does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
        };
        serde_json::from_slice(&text).with_context(|| format!("parse {}", p.display()))
    }

    /// Ids of every container with a state file, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("list {}", self.root.display())),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Take an exclusive lock on the container's directory for the life of the returned fd.
    pub fn lock(&self, id: &str) -> Result<std::fs::File> {
        let dir = self.dir(id);
        let f = std::fs::File::open(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("container {id:?} does not exist")
            } else {
                anyhow!("open {}: {e}", dir.display())
            }
        })?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("lock {}", dir.display()));
        }
        Ok(f)
    }
}

impl State {
    /// The runtime state handed to hooks.
    pub fn hook_state(&self, status: Status) -> crate::hooks::HookState {
        crate::hooks::HookState {
            oci_version: if self.oci_version.is_empty() {
                crate::config::OCI_VERSION.into()
            } else {
                self.oci_version.clone()
            },
            id: self.id.clone(),
            status: status.as_str().into(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// Is the recorded process still the container's (alive and not a zombie)?
    pub fn alive(&self) -> bool {
        matches!(crate::sys::proc_stat(self.pid), Some((s, start)) if s != 'Z' && s != 'X' && start == self.pid_start)
    }

    /// The status as it is now, read from the process and the state dir.
    pub fn status(&self, store: &Store) -> Status {
        if self.pid <= 0 || !self.alive() {
            return Status::Stopped;
        }
        if store.dir(&self.id).join(FIFO).exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(&self.cgroup_paths) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn report(&self, status: Status) -> Report<'_> {
        Report {
            oci_version: if self.oci_version.is_empty() {
                crate::config::OCI_VERSION
            } else {
                &self.oci_version
            },
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ids() {
        for ok in ["a", "abc-1_2.3+x", "A1"] {
            valid_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(valid_id(bad).is_err(), "{bad:?}");
        }
    }
}
