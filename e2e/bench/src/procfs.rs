//! What /proc says about a process: CPU seconds used and resident memory.

/// `utime + stime` of `pid` in seconds (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> crate::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("/proc/{pid}/stat has no ')'"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3 of stat(5); utime is 14 and stime 15, i.e. indexes 11 and 12.
    let tick = |i: usize| -> crate::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat field {} unreadable", i + 3))
    };
    Ok((tick(11)? + tick(12)?) as f64 / 100.0)
}

/// A `kB` line of /proc/<pid>/status (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: &str, field: &str) -> crate::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("/proc/{pid}/status has no {field}"))
}

/// Resident memory of `pid` in bytes.
pub fn rss(pid: u32) -> crate::Result<u64> {
    status_bytes(&pid.to_string(), "VmRSS")
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn loadavg() -> crate::Result<String> {
    let text =
        std::fs::read_to_string("/proc/loadavg").map_err(|e| format!("read /proc/loadavg: {e}"))?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "))
}
