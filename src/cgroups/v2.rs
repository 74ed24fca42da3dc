//! cgroup v2: one directory; the spec's v1-style values converted to v2 files.

use super::{write, write_if_exists};
use anyhow::Result;
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// cpu.shares (2..262144) → cpu.weight (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (w.clamp(10, 1000) as u64 - 10) * 9999 / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Which controllers of `r` this v2 directory serves (on a hybrid host, only those the v1
/// side does not have).
pub fn apply(dir: &Path, r: &LinuxResources, has: &dyn Fn(&str) -> bool) -> Result<()> {
    if has("memory") {
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                write(dir, "memory.max", &max_or(l))?;
            }
            if let Some(v) = m.reservation() {
                write(dir, "memory.low", &max_or(v))?;
            }
            // OCI swap is memory+swap; v2 counts swap alone.
            if let Some(s) = m.swap() {
                let v = match (s, m.limit()) {
                    (-1, _) => "max".to_string(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write_if_exists(dir, "memory.swap.max", &v)?;
            }
            if m.disable_oom_killer() == Some(true) {
                crate::debug!("memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
            }
        }
    }
    if let Some(c) = r.cpu() {
        if has("cpu") {
            if let Some(s) = c.shares() {
                write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = c.quota().map(max_or).unwrap_or_else(|| "max".into());
                let p = c.period().unwrap_or(100_000);
                write(dir, "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(v) = c.burst() {
                write_if_exists(dir, "cpu.max.burst", &v.to_string())?;
            }
            if let Some(v) = c.idle() {
                write_if_exists(dir, "cpu.idle", &v.to_string())?;
            }
        }
        if has("cpuset") {
            if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
                write(dir, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
                write(dir, "cpuset.mems", v)?;
            }
        }
    }
    if has("pids") {
        if let Some(p) = r.pids() {
            write(dir, "pids.max", &super::v1::pids_value(p.limit()))?;
        }
    }
    if has("io") {
        if let Some(b) = r.block_io() {
            if let Some(w) = b.weight() {
                if dir.join("io.bfq.weight").exists() {
                    write(dir, "io.bfq.weight", &w.to_string())?;
                } else {
                    write(dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
                }
            }
            for d in b.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    write(
                        dir,
                        "io.weight",
                        &format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                    )?;
                }
            }
            for (key, list) in [
                ("rbps", b.throttle_read_bps_device()),
                ("wbps", b.throttle_write_bps_device()),
                ("riops", b.throttle_read_iops_device()),
                ("wiops", b.throttle_write_iops_device()),
            ] {
                for d in list.iter().flatten() {
                    write(
                        dir,
                        "io.max",
                        &format!("{}:{} {}={}", d.major(), d.minor(), key, d.rate()),
                    )?;
                }
            }
        }
    }
    if has("hugetlb") {
        for h in r.hugepage_limits().iter().flatten() {
            write(
                dir,
                &format!("hugetlb.{}.max", h.page_size()),
                &max_or(h.limit()),
            )?;
        }
    }
    if has("rdma") {
        for (dev, l) in r.rdma().iter().flatten() {
            write(dir, "rdma.max", &super::rdma_line(dev, l))?;
        }
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/')
            || k.starts_with("cgroup.") && k != "cgroup.max.depth" && k != "cgroup.max.descendants"
        {
            anyhow::bail!("linux.resources.unified: key {k:?} is not a controller file");
        }
        write(dir, k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn files_in_a_temp_dir() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "memory.max",
            "memory.low",
            "memory.swap.max",
            "cpu.weight",
            "cpu.max",
            "pids.max",
            "hugetlb.2MB.max",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576,"swap":3145728,"reservation":-1},"cpu":{"shares":1024,"quota":50000,"period":100000},
                "pids":{"limit":-1},"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
        )
        .unwrap();
        apply(d.path(), &r, &|_| true).unwrap();
        let rd = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
        assert_eq!(rd("memory.max"), "1048576");
        assert_eq!(rd("memory.swap.max"), "2097152");
        assert_eq!(rd("memory.low"), "max");
        assert_eq!(rd("cpu.weight"), "39");
        assert_eq!(rd("cpu.max"), "50000 100000");
        assert_eq!(rd("pids.max"), "max");
        assert_eq!(rd("hugetlb.2MB.max"), "4194304");
    }
}
