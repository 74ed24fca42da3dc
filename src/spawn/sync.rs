//! The parent ↔ child protocol of `husk create`.
//!
//! One `socketpair(AF_UNIX, SOCK_SEQPACKET)` joins `husk create` (the parent) and the
//! container's first process (the child, cloned straight into its new namespaces). Every
//! datagram is one JSON-encoded [`Msg`]. The conversation, in order:
//!
//! ```text
//!  parent                                   child
//!  clone3(CLONE_NEW*) ───────────────────▶  (starts)
//!                                           slow path only: join namespaces by path,
//!                                           unshare(CLONE_NEWUSER)
//!                     ◀──────────────────── MapMe            (slow path + new user ns)
//!  write uid_map / gid_map
//!  Mapped ──────────────────────────────▶   (fast path: sent without being asked)
//!                                           slow path only: unshare the rest, fork if a
//!                                           new pid/time namespace needs it
//!                     ◀──────────────────── Pid(n)            (slow path, after fork)
//!  attach cgroups
//!  CgroupsJoined ───────────────────────▶   (waited for before unsharing the cgroup ns,
//!                                            or at the latest before exec)
//!                                           propagation, rootfs bind, mounts, /dev
//!                     ◀──────────────────── CreateRuntime     (only with prestart,
//!                                            createRuntime, createContainer or
//!                                            startContainer hooks, or a seccomp listener)
//!  (slow path: wait for Pid first)
//!  run prestart, then createRuntime hooks
//!  State(HookState) ────────────────────▶   (status "created", the pid in our pid ns)
//!                                           createContainer hooks, listener connect,
//!                                           pivot_root, masked paths, hostname,
//!                                           user, capabilities, no_new_privs,
//!                                           seccomp translated (not loaded)
//!                     ◀──────────────────── Log{..}            (any time, any number)
//!                     ◀──────────────────── Ready   or   Error{msg}
//!  write state.json, exit 0                 wait on the exec fifo; after `start`:
//!                                           startContainer hooks, load seccomp (+ fd
//!                                           to the listener), final capabilities, execve
//! ```
//!
//! A failing hook in the parent is an error of `create`: the parent kills the child and
//! cleans up, the child needs no message for it.
//!
//! An `Error` carries the child's whole anyhow context chain flattened to one line, so
//! the user sees e.g. `mount proc at /proc: Operation not permitted`. If the child dies
//! without a word the parent reads EOF and reports the wait status.
//!
//! After `start` nobody listens on this channel any more: an error of the child from then
//! on (a startContainer hook, the seccomp load, execve) is written to the state dir's
//! `start.err` file through an fd the child inherited, and `husk start`, which waits until
//! the child has exec'd or died, reports it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    MapMe,
    Mapped,
    Pid(i32),
    CgroupsJoined,
    Log {
        level: String,
        msg: String,
    },
    /// Child: namespaces and mounts exist, pivot_root comes next; run the runtime-side
    /// create hooks and send the state.
    CreateRuntime,
    /// Parent: those hooks succeeded; the state the child's hooks and listener get.
    State(crate::hooks::HookState),
    Ready,
    Error {
        msg: String,
    },
}

pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair; both ends close-on-exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the parent/child sync channel")?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(m)?;
        loop {
            // SAFETY: buf is valid for its length; MSG_NOSIGNAL turns a dead peer into EPIPE.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("send on the sync channel");
            }
        }
    }

    /// Next message, or None at EOF (the peer is gone).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let r =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r > 0 {
                let m =
                    serde_json::from_slice(&buf[..r as usize]).context("decode a sync message")?;
                return Ok(Some(m));
            }
            if r == 0 {
                return Ok(None);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("receive on the sync channel");
            }
        }
    }

    /// Wait for one specific message; a peer error or EOF is an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(m) => bail!("sync channel: expected {want:?}, got {m:?}"),
            None => bail!("sync channel closed while waiting for {want:?}"),
        }
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
