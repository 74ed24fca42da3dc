//! `husk exec`: run another process in a container, with runc's flags. The process is the
//! one of `--process FILE` (an OCI `process` object, used as it is), or the container's
//! own process from its config.json with the command and the flags' changes.

use crate::container::{self, ExecOpts, Global};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, Process};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// A JSON file with the OCI `process` to run (instead of the command and flags)
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (its master goes to --console-socket)
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Unix socket that receives the pty master (not supported yet)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process: exit 0 once it runs
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Write the process's pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE; repeatable)
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Run as UID[:GID] (numeric)
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// An additional group id (repeatable)
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the process's bounding, effective, permitted and ambient sets
    #[arg(long, short = 'c')]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass this many fds beyond stdio (3, 4, ...) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// SELinux label of the process
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile of the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Container id
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(g: &Global, a: ExecArgs) -> Result<i32> {
    let store = g.store();
    let st = store.load(&a.id)?;
    let cfg =
        crate::config::load(&st.bundle).with_context(|| format!("config of container {}", a.id))?;
    let process = match &a.process {
        Some(path) => {
            if !a.command.is_empty() {
                bail!("exec: give either --process or a command, not both");
            }
            load_process(path)?
        }
        None => {
            let base = cfg
                .spec
                .process()
                .clone()
                .ok_or_else(|| anyhow!("process: missing in the container's config"))?;
            apply_flags(base, &a)?
        }
    };
    let terminal = process.terminal().unwrap_or(false);
    if a.console_socket.is_some() && !terminal {
        bail!("--console-socket was given but the process has no terminal (use --tty)");
    }
    if terminal && a.console_socket.is_none() && a.detach {
        bail!("exec --tty --detach needs --console-socket to hand the terminal to");
    }
    container::exec(
        g,
        &st,
        cfg.spec.linux().as_ref(),
        &ExecOpts {
            process,
            detach: a.detach,
            pid_file: a.pid_file,
            preserve_fds: a.preserve_fds,
            console_socket: a.console_socket,
        },
    )
}

/// An OCI `process` object from a file; errors name the file and the JSON path.
pub fn load_process(path: &Path) -> Result<Process> {
    let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_slice(&text);
    let p: Process = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        anyhow!("process file {}: {at}: {}", path.display(), e.into_inner())
    })?;
    check_process(&p).with_context(|| format!("process file {}", path.display()))?;
    Ok(p)
}

fn check_process(p: &Process) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("args must name the program to run"),
    }
    if !p.cwd().is_absolute() {
        bail!("cwd {:?} must be an absolute path", p.cwd());
    }
    Ok(())
}

/// The container's process with the command line's changes, as runc applies them.
pub fn apply_flags(mut p: Process, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!("exec: no command given (use `husk exec ID CMD [ARG...]` or --process FILE)");
    }
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {}: must be an absolute path", cwd.display());
        }
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let Some((k, _)) = kv.split_once('=') else {
            bail!("--env {kv:?}: must be KEY=VALUE");
        };
        // A later value replaces an earlier one in place.
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k))
        {
            Some(e) => e.clone_from(kv),
            None => env.push(kv.clone()),
        }
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| anyhow!("--user {u:?}: must be a numeric UID[:GID]"))
        };
        let uid = num(uid)?;
        let gid = gid.map(num).transpose()?;
        let user = p.user_mut();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        let user = p.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&a.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let added: Vec<Capability> = a.cap.iter().map(|c| parse_cap(c)).collect::<Result<_>>()?;
        let add = |set: &Option<HashSet<Capability>>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(added.iter().copied());
            Some(s)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        // Ambient capabilities also need the inheritable set, which --cap leaves alone
        // (a process's children must not inherit more than asked for).
        caps.set_ambient(add(caps.ambient()));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(l) = &a.apparmor {
        p.set_apparmor_profile(Some(l.clone()));
    }
    Ok(p)
}

fn parse_cap(c: &str) -> Result<Capability> {
    let up = c.to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    serde_json::from_value(serde_json::Value::String(name.clone()))
        .map_err(|_| anyhow!("--cap {c:?}: unknown capability {name}"))
}
