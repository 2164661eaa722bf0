//! Process accounting from /proc (Linux): peak RSS and CPU time of the server
//! and of the driver itself, and the CPU affinity each runs with.

use std::path::Path;

/// Clock ticks per second of /proc/PID/stat times. Linux fixes USER_HZ at
/// 100 for every architecture's userland ABI, whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

fn status_field(pid: &str, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/proc").join(pid).join("status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim_start_matches(':').trim().to_owned())
}

/// VmHWM (peak resident set) of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(&pid.to_string(), "VmHWM")?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resets `pid`'s VmHWM to its current RSS (writing 5 to clear_refs), so the
/// next reading is the peak of one run rather than of the process's life.
/// Returns false when the kernel refused (the reading is then lifetime peak).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn cpu_of(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // The command name may contain spaces; fields restart after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// User plus system CPU seconds consumed by `pid` (all threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU seconds consumed by this process.
pub fn cpu_seconds_self() -> Option<f64> {
    cpu_of("/proc/self/stat")
}

/// The CPUs a process may run on (`Cpus_allowed_list`), e.g. `0` or `0-1`.
pub fn cpus_allowed(pid: Option<u32>) -> Option<String> {
    let p = pid.map_or_else(|| "self".to_owned(), |p| p.to_string());
    status_field(&p, "Cpus_allowed_list")
}

/// Number of CPUs of the machine, whatever this process's affinity (which
/// `available_parallelism` would report, and which is 1 once pinned).
pub fn online_cpus() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

/// Threads the driver's runtime gets: the CPUs it may run on.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A one-line description of the machine: CPU model, cores, memory, load.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{model}, {cores} CPUs, {mem} RAM, load average {}",
        load_average()
    )
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
