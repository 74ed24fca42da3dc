//! The six OCI hook kinds (runtime-spec config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle"): where and when each runs, and how one hook is run.
//!
//! | kind            | runs in                                  | when                               | failure          |
//! |-----------------|------------------------------------------|------------------------------------|------------------|
//! | prestart        | husk create (runtime namespaces)         | namespaces + mounts made, before pivot_root | create fails |
//! | createRuntime   | husk create (runtime namespaces)         | right after prestart               | create fails     |
//! | createContainer | the container's first process            | after createRuntime, before pivot_root (path resolved on the host) | create fails |
//! | startContainer  | the container's first process            | after `start`, right before execve (path resolved in the container) | start fails |
//! | poststart       | husk start (runtime namespaces)          | after the user's program was exec'd | warning         |
//! | poststop        | husk delete (runtime namespaces)         | after the container is deleted (also after a failed create) | warning |
//!
//! Each hook gets the container state as JSON on stdin (ociVersion, id, status, pid, bundle,
//! annotations), exactly the `env` it names (nothing inherited), `args` as its argv (args[0]
//! is argv[0]), and is killed when `timeout` seconds pass. Its stdout and stderr are
//! captured and quoted in the error when it fails.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// The config.json name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, h: &Hooks) -> &[Hook] {
        let v = match self {
            Kind::Prestart => h.prestart(),
            Kind::CreateRuntime => h.create_runtime(),
            Kind::CreateContainer => h.create_container(),
            Kind::StartContainer => h.start_container(),
            Kind::Poststart => h.poststart(),
            Kind::Poststop => h.poststop(),
        };
        v.as_deref().unwrap_or_default()
    }

    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];
}

pub fn any(h: Option<&Hooks>, kinds: &[Kind]) -> bool {
    h.is_some_and(|h| kinds.iter().any(|k| !k.of(h).is_empty()))
}

/// The runtime state a hook reads on stdin (runtime-spec runtime.md "State").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HookState {
    pub oci_version: String,
    pub id: String,
    pub status: String,
    /// Omitted once the container is stopped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

fn is_zero(p: &i32) -> bool {
    *p == 0
}

impl HookState {
    pub fn with_status(&self, status: &str) -> HookState {
        HookState {
            status: status.into(),
            ..self.clone()
        }
    }
}

/// Checked when config.json is loaded; errors name the JSON path.
pub fn validate(h: &Hooks) -> Result<()> {
    for k in Kind::ALL {
        for (i, hook) in k.of(h).iter().enumerate() {
            let p = format!("hooks.{}[{i}]", k.name());
            if !hook.path().is_absolute() {
                bail!(
                    "{p}.path {:?}: must be an absolute path",
                    hook.path().display()
                );
            }
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    bail!("{p}.timeout {t}: must be greater than zero");
                }
            }
        }
    }
    Ok(())
}

/// Run every hook of `kind` in order; the first failure is the error.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &HookState) -> Result<()> {
    let Some(h) = hooks else { return Ok(()) };
    let input = serde_json::to_vec(state)?;
    for (i, hook) in kind.of(h).iter().enumerate() {
        run_one(hook, &input)
            .with_context(|| format!("hooks.{}[{i}] ({})", kind.name(), hook.path().display()))?;
    }
    Ok(())
}

/// Run every hook of `kind`; failures are warnings and the next hook still runs.
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &HookState) {
    let Some(h) = hooks else { return };
    let input = match serde_json::to_vec(state) {
        Ok(i) => i,
        Err(e) => return crate::warn!("hooks.{}: encode the state: {e}", kind.name()),
    };
    for (i, hook) in kind.of(h).iter().enumerate() {
        if let Err(e) = run_one(hook, &input) {
            crate::warn!(
                "hooks.{}[{i}] ({}): {e:#}",
                kind.name(),
                hook.path().display()
            );
        }
    }
}

const OUTPUT_KEEP: usize = 4096;

fn set_nonblock(fd: &OwnedFd) -> Result<()> {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error()).context("fcntl O_NONBLOCK");
        }
    }
    Ok(())
}

fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    // SAFETY: plain syscall; the result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_open");
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn run_one(h: &Hook, input: &[u8]) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some((argv0, rest)) = h.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                cmd.env(k, v);
            }
            _ => crate::debug!("hook env entry {e:?} is not KEY=VALUE; skipped"),
        }
    }
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe for the hook's output")?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(
            out_w.try_clone().context("dup the output pipe")?,
        ))
        .stderr(Stdio::from(out_w));
    let mut child = cmd.spawn().map_err(|e| anyhow!("start: {e}"))?;
    // Our copies of the pipe's write end go with the Command.
    drop(cmd);
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let pidfd = pidfd_open(child.id())?;
    let mut stdin: Option<OwnedFd> = child.stdin.take().map(OwnedFd::from);
    if let Some(s) = &stdin {
        set_nonblock(s)?;
    }
    set_nonblock(&out_r)?;
    let mut out_r = Some(out_r);
    let mut output = Vec::new();
    let mut written = 0;
    loop {
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "timed out after {}s{}",
                        h.timeout().unwrap_or(0),
                        quote(&output)
                    );
                }
                left.as_millis().min(i32::MAX as u128) as i32 + 1
            }
            None => -1,
        };
        let mut pfds = vec![libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(o) = &out_r {
            pfds.push(libc::pollfd {
                fd: o.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &stdin {
            pfds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        // SAFETY: pfds is a valid array of its length.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(e).context("poll");
        }
        if out_r.is_some() && drain(&mut out_r, &mut output) {
            out_r = None;
        }
        if let Some(s) = &stdin {
            let rest = &input[written..];
            // SAFETY: rest is valid for its length.
            let n = unsafe { libc::write(s.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n >= 0 {
                written += n as usize;
            }
            let err = std::io::Error::last_os_error().raw_os_error();
            // Done, or the hook closed its stdin (EPIPE): either way we stop writing.
            if written == input.len() || (n < 0 && err != Some(libc::EAGAIN)) {
                stdin = None;
            }
        }
        if pfds[0].revents != 0 {
            break;
        }
    }
    drop(stdin);
    // What the hook wrote before it exited; its own children may still hold the pipe.
    drain(&mut out_r, &mut output);
    let status = child.wait().context("wait for the hook")?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => bail!("exit status {c}{}", quote(&output)),
        (_, Some(s)) => bail!("killed by signal {s}{}", quote(&output)),
        _ => bail!("{status}{}", quote(&output)),
    }
}

/// Read what is available; true at EOF.
fn drain(fd: &mut Option<OwnedFd>, out: &mut Vec<u8>) -> bool {
    let Some(f) = fd else { return true };
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let keep = OUTPUT_KEEP.saturating_sub(out.len()).min(n as usize);
            out.extend_from_slice(&buf[..keep]);
            continue;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return n == 0;
    }
}

fn quote(output: &[u8]) -> String {
    let t = String::from_utf8_lossy(output);
    let t = t.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(", output: {t:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    fn state() -> HookState {
        HookState {
            oci_version: "1.2.1".into(),
            id: "x".into(),
            status: "creating".into(),
            pid: 42,
            bundle: "/b".into(),
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn stdin_args_env_and_failure_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \"$0 $1 $FOO\" >> {0}; echo oops >&2; exit 3","zero","one"],"env":["FOO=bar"]}}"#,
            out.display()
        ));
        let e = run_one(&h, &serde_json::to_vec(&state()).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "exit status 3, output: \"oops\"");
        let text = std::fs::read_to_string(&out).unwrap();
        // the state JSON (no nested braces here), then the echo line
        let i = text.find('}').unwrap();
        let (json, rest) = (&text[..=i], &text[i + 1..]);
        let st: HookState = serde_json::from_str(json).unwrap();
        assert_eq!(st, state());
        assert_eq!(rest.trim(), "zero one bar");
    }

    #[test]
    fn timeout_kills() {
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","10"],"timeout":1}"#);
        let t0 = Instant::now();
        let e = run_one(&h, b"{}").unwrap_err().to_string();
        assert!(e.contains("timed out after 1s"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn validation_names_the_field() {
        let h: Hooks =
            serde_json::from_str(r#"{"poststart":[{"path":"/x"},{"path":"rel"}]}"#).unwrap();
        let e = validate(&h).unwrap_err().to_string();
        assert!(e.starts_with("hooks.poststart[1].path"), "{e}");
        let h: Hooks =
            serde_json::from_str(r#"{"createRuntime":[{"path":"/x","timeout":0}]}"#).unwrap();
        let e = validate(&h).unwrap_err().to_string();
        assert!(e.starts_with("hooks.createRuntime[0].timeout 0"), "{e}");
    }
}
