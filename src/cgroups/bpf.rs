//! cgroup v2 device control: cgroup2 has no devices.allow/deny files. The kernel asks an
//! eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, about every
//! open and mknod of a device node (as runc and crun do it). This module turns
//! `linux.resources.devices` (followed by the same default-allowed list the v1 path writes)
//! into such a program, written instruction by instruction, loads it with bpf(2) and
//! attaches it to the container's cgroup2 directory. The attached program lives as long as
//! the cgroup does; nothing is pinned.
//!
//! Semantics (OCI: the rules apply in order, a later rule overrides an earlier one): for each
//! access bit a request asks for (m, r, w), the LAST rule that matches the device and holds
//! that bit decides; with no such rule the bit is denied. The request is allowed when every
//! bit it asks for is. A rule of type 'a' (or none) matches block and char devices, a
//! missing or negative major/minor matches any. Type 'p' rules match nothing: the kernel
//! does not ask device cgroups about fifos.
//!
//! One difference from the v1 kernel files: v1 cannot deny part of an allowed wildcard
//! (after `c *:* rwm`, a deny of `c 10:200` removes nothing), the program can and does.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `struct bpf_cgroup_dev_ctx.access_type`, upper 16 bits: what is asked for.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
/// `struct bpf_cgroup_dev_ctx.access_type`, lower 16 bits: the device type.
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;

/// One raw eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg:4 and src_reg:4 (bit-field order follows the byte order).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0xf);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0xf);
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }
    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }
    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }
}

/// Opcodes used here (class | operation | source), from linux/bpf_common.h and linux/bpf.h.
pub mod op {
    /// BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
    pub const LDX_W: u8 = 0x61;
    /// BPF_ALU | BPF_MOV | BPF_X: w(dst) = w(src)
    pub const MOV32_REG: u8 = 0xbc;
    /// BPF_ALU | BPF_MOV | BPF_K: w(dst) = imm
    pub const MOV32_IMM: u8 = 0xb4;
    /// BPF_ALU | BPF_AND | BPF_K: w(dst) &= imm
    pub const AND32_IMM: u8 = 0x54;
    /// BPF_ALU | BPF_RSH | BPF_K: w(dst) >>= imm
    pub const RSH32_IMM: u8 = 0x74;
    /// BPF_JMP32 | BPF_JEQ | BPF_K: if w(dst) == imm goto +off
    pub const JEQ32_IMM: u8 = 0x16;
    /// BPF_JMP32 | BPF_JNE | BPF_K: if w(dst) != imm goto +off
    pub const JNE32_IMM: u8 = 0x56;
    /// BPF_JMP | BPF_JA: goto +off
    pub const JA: u8 = 0x05;
    /// BPF_JMP | BPF_EXIT: return r0
    pub const EXIT: u8 = 0x95;
}

/// A device rule ready for the program: access as ACC_* bits, None = any major/minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (block and char), 'b', 'c' or 'p'.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    /// From the v1 form the rest of husk uses: negative major/minor = any.
    pub fn new(allow: bool, kind: char, major: i64, minor: i64, access: &str) -> Result<Rule> {
        let num = |v: i64, what: &str| -> Result<Option<u32>> {
            if v < 0 {
                return Ok(None);
            }
            u32::try_from(v)
                .map(Some)
                .map_err(|_| anyhow::anyhow!("device {what} {v} is out of range"))
        };
        let mut bits = 0;
        for c in access.chars() {
            bits |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => bail!("device access {access:?}: only r, w and m are allowed"),
            };
        }
        if !matches!(kind, 'a' | 'b' | 'c' | 'p') {
            bail!("device type {kind:?} is not one of a, b, c, p");
        }
        Ok(Rule {
            allow,
            kind,
            major: num(major, "major")?,
            minor: num(minor, "minor")?,
            access: bits,
        })
    }

    /// Matches every block and char device (for the bits it has).
    fn is_catch_all(&self) -> bool {
        self.kind == 'a' && self.major.is_none() && self.minor.is_none()
    }
}

/// The config's rules followed by husk's default-allowed devices (the list the v1 path
/// writes after them), in evaluation order.
pub fn rules(devs: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = vec![];
    for d in devs {
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        out.push(Rule::new(
            d.allow(),
            super::v1::type_char(d.typ()),
            d.major().unwrap_or(-1),
            d.minor().unwrap_or(-1),
            &access,
        )?);
    }
    for (k, maj, min, acc) in super::v1::default_allowed() {
        out.push(Rule::new(true, k, maj, min, acc)?);
    }
    Ok(out)
}

/// Forward jumps to labels, resolved at the end.
struct Asm {
    insns: Vec<Insn>,
    fixups: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(code, dst, src, off, imm));
    }
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.insns.len());
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, l: usize) {
        self.fixups.push((self.insns.len(), l));
        self.emit(code, dst, 0, 0, imm);
    }
    fn ret(&mut self, v: i32) {
        self.emit(op::MOV32_IMM, R0, 0, 0, v);
        self.emit(op::EXIT, 0, 0, 0, 0);
    }
    fn finish(mut self) -> Result<Vec<Insn>> {
        for (at, l) in self.fixups {
            let target = self.labels[l].expect("every label is bound");
            self.insns[at].off = i16::try_from(target - (at + 1))
                .context("device rules: the program is too long for a jump")?;
        }
        Ok(self.insns)
    }
}

const R0: u8 = 0;
const R1: u8 = 1;
/// Registers the prologue fills: device type, access bits, major, minor.
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// The program for `rules` (in evaluation order: later rules override earlier ones).
///
/// Layout: a prologue loads the context into registers; then one section per access bit,
/// skipped when the request does not ask for that bit. A section tests the rules holding
/// the bit from the last to the first: a matching deny returns 0, a matching allow goes on
/// to the next section; when none matches, the section's default decides. After the three
/// sections the program returns 1.
pub fn program(rules: &[Rule]) -> Result<Vec<Insn>> {
    let mut a = Asm {
        insns: vec![],
        fixups: vec![],
        labels: vec![],
    };
    a.emit(op::LDX_W, R_TYPE, R1, 0, 0);
    a.emit(op::MOV32_REG, R_ACCESS, R_TYPE, 0, 0);
    a.emit(op::RSH32_IMM, R_ACCESS, 0, 0, 16);
    a.emit(op::AND32_IMM, R_TYPE, 0, 0, 0xffff);
    a.emit(op::LDX_W, R_MAJOR, R1, 4, 0);
    a.emit(op::LDX_W, R_MINOR, R1, 8, 0);
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        let relevant: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.access & bit != 0 && r.kind != 'p')
            .collect();
        // Rules before the last catch-all are overridden by it; it becomes the default.
        let (default_allow, live) = match relevant.iter().rposition(|r| r.is_catch_all()) {
            Some(i) => (relevant[i].allow, &relevant[i + 1..]),
            None => (false, &relevant[..]),
        };
        let mut order: Vec<&Rule> = live.iter().rev().copied().collect();
        // The earliest rules that decide like the default change nothing.
        while order.last().is_some_and(|r| r.allow == default_allow) {
            order.pop();
        }
        if order.is_empty() && default_allow {
            continue;
        }
        let end = a.label();
        a.emit(op::MOV32_REG, R0, R_ACCESS, 0, 0);
        a.emit(op::AND32_IMM, R0, 0, 0, bit as i32);
        a.jump(op::JEQ32_IMM, R0, 0, end);
        for r in order {
            let next = a.label();
            match r.kind {
                'b' => a.jump(op::JNE32_IMM, R_TYPE, DEV_BLOCK as i32, next),
                'c' => a.jump(op::JNE32_IMM, R_TYPE, DEV_CHAR as i32, next),
                _ => {}
            }
            // JMP32 compares 32 bits: a u32 above i32::MAX is the same bit pattern.
            if let Some(m) = r.major {
                a.jump(op::JNE32_IMM, R_MAJOR, m as i32, next);
            }
            if let Some(m) = r.minor {
                a.jump(op::JNE32_IMM, R_MINOR, m as i32, next);
            }
            if r.allow {
                a.jump(op::JA, 0, 0, end);
            } else {
                a.ret(0);
            }
            a.bind(next);
        }
        if !default_allow {
            a.ret(0);
        }
        a.bind(end);
    }
    a.ret(1);
    a.finish()
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, exclusively borrowed #[repr(C)] head of union bpf_attr for
    // `cmd`, and its size is passed along; any pointers inside it point at buffers the
    // caller keeps alive for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Load `insns` as a BPF_PROG_TYPE_CGROUP_DEVICE program. On failure the verifier's log
/// is part of the error.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    // No GPL-only helper is called, so the license is the project's own.
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"husk_devices");
    let attr = |log: &mut Vec<u8>, level: u32| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: level,
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    let mut none = vec![];
    let first = match sys_bpf(BPF_PROG_LOAD, &mut attr(&mut none, 0)) {
        Ok(fd) => return Ok(fd_from(fd)),
        Err(e) => e,
    };
    // Again with a log, to say why.
    let mut log = vec![0u8; 1 << 20];
    let r = sys_bpf(BPF_PROG_LOAD, &mut attr(&mut log, 1));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
    match r {
        Ok(fd) => Ok(fd_from(fd)),
        Err(_) if text.is_empty() => {
            Err(first).context("load the cgroup device program (bpf BPF_PROG_LOAD)")
        }
        Err(_) => Err(first).with_context(|| {
            format!("load the cgroup device program (bpf BPF_PROG_LOAD); verifier log:\n{text}")
        }),
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {}", dir.display()))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Ids of the device programs attached to the cgroup2 directory itself.
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    let fd = open_dir(dir)?;
    query(&fd).with_context(|| format!("bpf BPF_PROG_QUERY on {}", dir.display()))
}

fn query(cg: &OwnedFd) -> std::io::Result<Vec<u32>> {
    loop {
        let mut q = QueryAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        sys_bpf(BPF_PROG_QUERY, &mut q)?;
        if q.prog_cnt == 0 {
            return Ok(vec![]);
        }
        let mut ids = vec![0u32; q.prog_cnt as usize];
        q.prog_ids = ids.as_mut_ptr() as u64;
        match sys_bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            // One more was attached in between: ask again.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Attach `prog` to the cgroup2 directory `dir` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI),
/// then detach the device programs attached there before (a second apply, from `update`,
/// replaces the rules; both are attached for a moment, so no access slips through).
pub fn attach(dir: &Path, prog: &OwnedFd) -> Result<()> {
    let cg = open_dir(dir)?;
    let old = query(&cg).with_context(|| format!("bpf BPF_PROG_QUERY on {}", dir.display()))?;
    let mut a = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_ATTACH, &mut a)
        .with_context(|| format!("attach the device program to {}", dir.display()))?;
    for id in old {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = fd_from(
            sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut g)
                .with_context(|| format!("bpf BPF_PROG_GET_FD_BY_ID {id}"))?,
        );
        let mut d = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        sys_bpf(BPF_PROG_DETACH, &mut d).with_context(|| {
            format!(
                "detach the previous device program {id} from {}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// linux.resources.devices on the cgroup2 directory `dir`.
pub fn apply(dir: &Path, devs: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(&rules(devs)?)?;
    crate::debug!(
        "cgroup v2 {}: device program of {} instructions",
        dir.display(),
        insns.len()
    );
    let prog = load(&insns)?;
    attach(dir, &prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prog` the way the kernel would for one request; returns r0. Knows only the
    /// opcodes `program` emits, and checks that jumps go forward and stay inside.
    fn run(prog: &[Insn], typ: u32, access: u8, major: u32, minor: u32) -> u32 {
        let ctx = [(access as u32) << 16 | typ, major, minor];
        let mut reg = [None::<u32>; 11];
        reg[1] = Some(u32::MAX); // the context pointer: only loads from it are allowed
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let val = |r: usize| reg[r].unwrap_or_else(|| panic!("r{r} read before set at {pc}"));
            let mut next = pc + 1;
            let jump = |cond: bool| {
                assert!(i.off >= 0, "backward jump at {pc}");
                let t = pc + 1 + if cond { i.off as usize } else { 0 };
                assert!(t < prog.len(), "jump out of the program at {pc}");
                t
            };
            match i.code {
                op::LDX_W => {
                    assert_eq!(s, 1, "load from a register that is not the context");
                    assert!(i.off >= 0 && i.off % 4 == 0 && i.off < 12);
                    reg[d] = Some(ctx[i.off as usize / 4]);
                }
                op::MOV32_REG => reg[d] = Some(val(s)),
                op::MOV32_IMM => reg[d] = Some(i.imm as u32),
                op::AND32_IMM => reg[d] = Some(val(d) & i.imm as u32),
                op::RSH32_IMM => reg[d] = Some(val(d) >> i.imm),
                op::JEQ32_IMM => next = jump(val(d) == i.imm as u32),
                op::JNE32_IMM => next = jump(val(d) != i.imm as u32),
                op::JA => next = jump(true),
                op::EXIT => return val(0),
                c => panic!("unknown opcode {c:#x} at {pc}"),
            }
            pc = next;
        }
    }

    /// The OCI meaning, written independently of `program`: per asked bit, the last rule
    /// matching the device with that bit decides; none → denied.
    fn oracle(rules: &[Rule], typ: u32, access: u8, major: u32, minor: u32) -> bool {
        [ACC_MKNOD, ACC_READ, ACC_WRITE]
            .into_iter()
            .filter(|b| access & b != 0)
            .all(|b| {
                rules
                    .iter()
                    .rev()
                    .find(|r| {
                        r.access & b != 0
                            && match r.kind {
                                'a' => true,
                                'b' => typ == DEV_BLOCK,
                                'c' => typ == DEV_CHAR,
                                _ => false,
                            }
                            && r.major.is_none_or(|m| m == major)
                            && r.minor.is_none_or(|m| m == minor)
                    })
                    .is_some_and(|r| r.allow)
            })
    }

    fn spec_rules(json: &str) -> Vec<Rule> {
        let devs: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        rules(&devs).unwrap()
    }

    const C: u32 = DEV_CHAR;
    const B: u32 = DEV_BLOCK;
    const R: u8 = ACC_READ;
    const W: u8 = ACC_WRITE;
    const M: u8 = ACC_MKNOD;

    fn allowed(rules: &[Rule], typ: u32, access: u8, major: u32, minor: u32) -> bool {
        let p = program(rules).unwrap();
        let got = run(&p, typ, access, major, minor);
        assert!(got <= 1);
        assert_eq!(
            got == 1,
            oracle(rules, typ, access, major, minor),
            "program and oracle disagree on {typ} {access} {major}:{minor}"
        );
        got == 1
    }

    #[test]
    fn default_spec_denies_all_but_the_defaults() {
        // what `husk spec` writes
        let r = spec_rules(r#"[{"allow": false, "access": "rwm"}]"#);
        assert!(allowed(&r, C, R | W, 1, 3)); // null
        assert!(allowed(&r, C, R, 1, 9)); // urandom
        assert!(allowed(&r, C, R | W, 136, 7)); // a pts
        assert!(allowed(&r, C, R | W, 5, 2)); // ptmx
        assert!(!allowed(&r, C, R, 10, 200)); // tun
        assert!(allowed(&r, C, M, 10, 200)); // mknod of any char device
        assert!(!allowed(&r, C, R | M, 10, 200));
        assert!(allowed(&r, B, M, 8, 0));
        assert!(!allowed(&r, B, R, 8, 0));
        assert!(!allowed(&r, B, W, 1, 3)); // a block device with null's numbers
        assert!(allowed(&r, C, 0, 10, 200)); // asks for nothing
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let r = spec_rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "access": "rw"},
                {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "w"}]"#,
        );
        assert!(allowed(&r, C, R, 10, 200));
        assert!(!allowed(&r, C, W, 10, 200));
        assert!(!allowed(&r, C, R | W, 10, 200));
        assert!(allowed(&r, C, R | W, 10, 229));
        assert!(!allowed(&r, B, R, 10, 229));
        // a deny of a default: the defaults come after the config's rules and win
        let r = spec_rules(r#"[{"allow": false, "type": "c", "major": 1, "minor": 3}]"#);
        assert!(allowed(&r, C, R | W, 1, 3));
    }

    #[test]
    fn access_bits_are_decided_one_by_one() {
        let r = spec_rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"},
                {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "w"}]"#,
        );
        assert!(allowed(&r, C, R | W, 10, 200));
        assert!(allowed(&r, C, R | W | M, 10, 200));
    }

    #[test]
    fn allow_all_then_deny_some() {
        let r = spec_rules(
            r#"[{"allow": true, "access": "rwm"},
                {"allow": false, "type": "a", "major": 8, "access": "rw"},
                {"allow": false, "type": "b", "major": 7, "minor": 0}]"#,
        );
        assert!(allowed(&r, B, R | W, 9, 0));
        assert!(!allowed(&r, B, R, 8, 1));
        assert!(!allowed(&r, C, W, 8, 1));
        assert!(allowed(&r, C, M, 8, 1));
        assert!(!allowed(&r, B, R, 7, 0));
        // mknod of any block device is a default, and the defaults come last
        assert!(allowed(&r, B, M, 7, 0));
    }

    #[test]
    fn fifo_rules_match_nothing_and_types_are_checked() {
        let r = spec_rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "p", "access": "rwm"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}]"#,
        );
        assert!(!allowed(&r, C, R, 4, 1));
        assert!(allowed(&r, B, R, 8, 0));
        assert!(!allowed(&r, C, R, 8, 0));
        assert!(!allowed(&r, B, W, 8, 0));
    }

    #[test]
    fn shape_of_the_program() {
        // only the defaults after a deny-all: no r/w section can be skipped
        let p = program(&spec_rules(r#"[{"allow": false, "access": "rwm"}]"#)).unwrap();
        assert_eq!(p.last().unwrap().code, op::EXIT);
        assert_eq!(p[p.len() - 2], Insn::new(op::MOV32_IMM, 0, 0, 0, 1));
        // prologue 6; per section: the bit test 3, the 9 `c maj:min rwm` defaults from
        // the last (4 each, 3 for 136:*), a deny-all default 2; the m section also has
        // b *:* m and c *:* m (2 each); epilogue 2
        let rw = 3 + 8 * 4 + 3 + 2;
        let m = rw + 2 * 2;
        assert_eq!(p.len(), 6 + m + 2 * rw + 2);
        // allow everything: nothing to test, the program just says yes
        let p = program(&[Rule::new(true, 'a', -1, -1, "rwm").unwrap()]).unwrap();
        assert_eq!(p.len(), 6 + 2);
        assert_eq!(run(&p, B, R | W | M, 8, 0), 1);
        // no rules at all: deny
        let p = program(&[]).unwrap();
        assert_eq!(run(&p, C, R, 1, 3), 0);
        assert_eq!(run(&p, C, 0, 1, 3), 1);
    }

    #[test]
    fn bad_rules_are_errors() {
        assert!(Rule::new(true, 'c', 1, 3, "rx").is_err());
        assert!(Rule::new(true, 'c', 1 << 33, 3, "r").is_err());
        assert!(Rule::new(true, 'z', 1, 3, "r").is_err());
        let r = Rule::new(false, 'c', 4_000_000_000, -1, "r").unwrap();
        let p = program(&[Rule::new(true, 'a', -1, -1, "rwm").unwrap(), r]).unwrap();
        assert_eq!(run(&p, C, R, 4_000_000_000, 1), 0);
        assert_eq!(run(&p, C, R, 3_999_999_999, 1), 1);
    }

    /// Random rule lists (a fixed LCG, so failures reproduce) against the oracle.
    #[test]
    fn random_rule_lists_agree_with_the_oracle() {
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 33) % n
        };
        for _ in 0..300 {
            let n = next(8) as usize;
            let mut rules = vec![];
            for _ in 0..n {
                let kind = ['a', 'b', 'c', 'p'][next(4) as usize];
                let num = |v: u64| if v == 3 { -1 } else { v as i64 };
                let access: String = ['r', 'w', 'm']
                    .into_iter()
                    .filter(|_| next(2) == 1)
                    .collect();
                let (maj, min) = (num(next(4)), num(next(4)));
                rules.push(Rule::new(next(2) == 1, kind, maj, min, &access).unwrap());
            }
            let p = program(&rules).unwrap();
            for typ in [B, C] {
                for access in 0..8u8 {
                    for major in 0..3 {
                        for minor in 0..3 {
                            assert_eq!(
                                run(&p, typ, access, major, minor) == 1,
                                oracle(&rules, typ, access, major, minor),
                                "{rules:?}: {typ} {access} {major}:{minor}"
                            );
                        }
                    }
                }
            }
        }
    }
}
