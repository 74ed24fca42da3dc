//! `husk update [--resources FILE|-] [--memory ...] ... ID`: change a container's limits.

use crate::cgroups::Cgroup;
use crate::container::{self, Global};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

#[derive(clap::Args, Debug, Default)]
pub struct Flags {
    /// A linux.resources JSON object, from a file or '-' for stdin
    #[arg(long, short = 'r')]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
}

/// "100", "64k", "512M", "1g", "-1" → bytes.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let (num, mul) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let m: i64 = match unit.trim_end_matches('b').trim_end_matches('i') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => bail!("invalid size {s:?}"),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size {s:?}"))?;
    Ok((n * mul as f64) as i64)
}

fn flags_to_json(f: &Flags) -> Result<Value> {
    let mut r = Map::new();
    let mut mem = Map::new();
    for (k, v) in [
        ("limit", &f.memory),
        ("reservation", &f.memory_reservation),
        ("swap", &f.memory_swap),
        ("kernel", &f.kernel_memory),
        ("kernelTCP", &f.kernel_memory_tcp),
    ] {
        if let Some(v) = v {
            mem.insert(
                k.into(),
                parse_bytes(v).with_context(|| format!("--{k}"))?.into(),
            );
        }
    }
    if !mem.is_empty() {
        r.insert("memory".into(), mem.into());
    }
    let mut cpu = Map::new();
    if let Some(v) = f.cpu_share {
        cpu.insert("shares".into(), v.into());
    }
    if let Some(v) = f.cpu_quota {
        cpu.insert("quota".into(), v.into());
    }
    if let Some(v) = f.cpu_period {
        cpu.insert("period".into(), v.into());
    }
    if let Some(v) = f.cpu_rt_period {
        cpu.insert("realtimePeriod".into(), v.into());
    }
    if let Some(v) = f.cpu_rt_runtime {
        cpu.insert("realtimeRuntime".into(), v.into());
    }
    if let Some(v) = &f.cpuset_cpus {
        cpu.insert("cpus".into(), v.clone().into());
    }
    if let Some(v) = &f.cpuset_mems {
        cpu.insert("mems".into(), v.clone().into());
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), cpu.into());
    }
    if let Some(v) = f.pids_limit {
        r.insert("pids".into(), json!({"limit": v}));
    }
    if let Some(v) = f.blkio_weight {
        r.insert("blockIO".into(), json!({"weight": v}));
    }
    Ok(Value::Object(r))
}

pub fn run(g: &Global, id: &str, f: &Flags) -> Result<()> {
    if f.l3_cache_schema.is_some() || f.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported on this host");
    }
    let (st, _) = container::live_state(g, id)?;
    let mut v = match &f.resources {
        Some(src) => {
            let text = if src == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .context("read resources from stdin")?;
                s
            } else {
                std::fs::read_to_string(src).with_context(|| format!("read {src}"))?
            };
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("parse resources from {src}"))?
        }
        None => json!({}),
    };
    // Flags override the file.
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), flags_to_json(f)?) {
        for (k, val) in extra {
            match (obj.get_mut(&k), val) {
                (Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
                (_, val) => {
                    obj.insert(k, val);
                }
            }
        }
    }
    let r: LinuxResources =
        crate::config::parse_as(&serde_json::to_vec(&v)?).context("resources")?;
    if st.cgroup_paths.is_empty() {
        bail!("container {id} has no cgroup (rootless without delegation): cannot update its resources");
    }
    Cgroup::from_paths(&st.cgroup_paths).apply(&r)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("12x").is_err());
    }
}
