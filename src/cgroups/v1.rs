//! cgroup v1: one directory per hierarchy; each controller's files written in its own.

use super::{write, write_if_exists};
use anyhow::Result;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use std::path::Path;

/// Apply the part of `r` that belongs to `controller` in the v1 directory `dir`.
pub fn apply(controller: &str, dir: &Path, r: &LinuxResources) -> Result<()> {
    match controller {
        "memory" => memory(dir, r),
        "cpu" => cpu(dir, r),
        "cpuset" => cpuset(dir, r),
        "pids" => {
            if let Some(p) = r.pids() {
                write(dir, "pids.max", &pids_value(p.limit()))?;
            }
            Ok(())
        }
        "blkio" => blkio(dir, r),
        "hugetlb" => {
            for h in r.hugepage_limits().iter().flatten() {
                write(
                    dir,
                    &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                    &h.limit().to_string(),
                )?;
            }
            Ok(())
        }
        "net_cls" => {
            if let Some(id) = r.network().as_ref().and_then(|n| n.class_id()) {
                write(dir, "net_cls.classid", &id.to_string())?;
            }
            Ok(())
        }
        "net_prio" => {
            for p in r
                .network()
                .as_ref()
                .and_then(|n| n.priorities().clone())
                .unwrap_or_default()
            {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
            Ok(())
        }
        "rdma" => {
            for (dev, l) in r.rdma().iter().flatten() {
                write(dir, "rdma.max", &super::rdma_line(dev, l))?;
            }
            Ok(())
        }
        "devices" => devices(dir, r.devices().as_deref().unwrap_or(&[])),
        _ => Ok(()),
    }
}

pub fn pids_value(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

fn memory(dir: &Path, r: &LinuxResources) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    // The kernel refuses a memory limit above memsw and a memsw below the limit: order
    // the two writes by whether the limit grows or shrinks.
    match (m.limit(), m.swap()) {
        (Some(l), Some(s)) => {
            let cur: i64 = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(i64::MAX);
            if l == -1 || l > cur {
                write_if_exists(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                write(dir, "memory.limit_in_bytes", &l.to_string())?;
            } else {
                write(dir, "memory.limit_in_bytes", &l.to_string())?;
                write_if_exists(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
        }
        (Some(l), None) => write(dir, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) => write_if_exists(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
        (None, None) => {}
    }
    if let Some(v) = m.reservation() {
        write(dir, "memory.soft_limit_in_bytes", &v.to_string())?;
    }
    // Kernel memory limits: the files are gone (or ignored) on kernels 5.16+.
    if let Some(v) = m.kernel() {
        write_if_exists(dir, "memory.kmem.limit_in_bytes", &v.to_string())?;
    }
    if let Some(v) = m.kernel_tcp() {
        write_if_exists(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string())?;
    }
    if let Some(v) = m.swappiness() {
        if v > 100 {
            anyhow::bail!("linux.resources.memory.swappiness {v} is not in 0..=100");
        }
        write(dir, "memory.swappiness", &v.to_string())?;
    }
    if let Some(true) = m.disable_oom_killer() {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

fn cpu(dir: &Path, r: &LinuxResources) -> Result<()> {
    let Some(c) = r.cpu() else { return Ok(()) };
    if let Some(v) = c.shares() {
        write(dir, "cpu.shares", &v.to_string())?;
    }
    if let Some(v) = c.period() {
        write(dir, "cpu.cfs_period_us", &v.to_string())?;
    }
    if let Some(v) = c.quota() {
        write(dir, "cpu.cfs_quota_us", &v.to_string())?;
    }
    if let Some(v) = c.burst() {
        write_if_exists(dir, "cpu.cfs_burst_us", &v.to_string())?;
    }
    if let Some(v) = c.realtime_period() {
        write(dir, "cpu.rt_period_us", &v.to_string())?;
    }
    if let Some(v) = c.realtime_runtime() {
        write(dir, "cpu.rt_runtime_us", &v.to_string())?;
    }
    if let Some(v) = c.idle() {
        write_if_exists(dir, "cpu.idle", &v.to_string())?;
    }
    Ok(())
}

fn cpuset(dir: &Path, r: &LinuxResources) -> Result<()> {
    let Some(c) = r.cpu() else { return Ok(()) };
    if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

fn blkio(dir: &Path, r: &LinuxResources) -> Result<()> {
    let Some(b) = r.block_io() else { return Ok(()) };
    let weight_file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    if let Some(w) = b.weight() {
        write(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(
                dir,
                if weight_file == "blkio.weight" {
                    "blkio.weight_device"
                } else {
                    "blkio.bfq.weight_device"
                },
                &format!("{}:{} {}", d.major(), d.minor(), w),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {}", d.major(), d.minor(), w),
            )?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// The devices every container may use, after the config's own rules (as runc does).
pub fn default_allowed() -> Vec<(char, i64, i64, &'static str)> {
    vec![
        ('c', -1, -1, "m"),
        ('b', -1, -1, "m"),
        ('c', 1, 3, "rwm"),    // null
        ('c', 1, 8, "rwm"),    // random
        ('c', 1, 7, "rwm"),    // full
        ('c', 5, 0, "rwm"),    // tty
        ('c', 1, 5, "rwm"),    // zero
        ('c', 1, 9, "rwm"),    // urandom
        ('c', 5, 1, "rwm"),    // console
        ('c', 136, -1, "rwm"), // pts
        ('c', 5, 2, "rwm"),    // ptmx
    ]
}

pub fn rule_line(kind: char, major: i64, minor: i64, access: &str) -> String {
    let n = |v: i64| {
        if v < 0 {
            "*".to_string()
        } else {
            v.to_string()
        }
    };
    if kind == 'a' {
        return "a".into();
    }
    format!("{} {}:{} {}", kind, n(major), n(minor), access)
}

pub fn type_char(t: Option<LinuxDeviceType>) -> char {
    match t {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => 'p',
        _ => 'a',
    }
}

fn devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    for d in rules {
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        let line = rule_line(
            type_char(d.typ()),
            d.major().unwrap_or(-1),
            d.minor().unwrap_or(-1),
            &access,
        );
        write(
            dir,
            if d.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            },
            &line,
        )?;
    }
    for (k, maj, min, acc) in default_allowed() {
        write(dir, "devices.allow", &rule_line(k, maj, min, acc))?;
    }
    Ok(())
}

/// v1 cpuset directories start with empty cpus/mems, and no task can join them: copy the
/// parent's (walking down from the first ancestor that has values).
pub fn init_cpuset(mountpoint: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(mountpoint).unwrap_or(Path::new(""));
    let mut cur = mountpoint.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if v.trim().is_empty() {
                let pv = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                write(&cur, f, pv.trim())?;
            }
        }
    }
    Ok(())
}
