//! The executables a fleet runs: HAProxy (Debian's package), the sidecar and the probe (built
//! from this workspace). A workspace binary older than its sources is refused rather than
//! silently tested: `cargo test -p haproxy-peers-e2e` alone does not rebuild the sidecar.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

pub const SIDECAR_BIN: &str = "haproxy-peers-sidecar";
pub const SIDECAR_ENV: &str = "HAPROXY_PEERS_SIDECAR_BIN";
pub const PROBE_BIN: &str = "hp-e2e-probe";
pub const PROBE_ENV: &str = "HAPROXY_PEERS_E2E_PROBE_BIN";

/// Where each program is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub haproxy: PathBuf,
    pub sidecar: PathBuf,
    pub probe: PathBuf,
}

impl Binaries {
    /// `$HAPROXY_PEERS_SIDECAR_BIN` / `$HAPROXY_PEERS_E2E_PROBE_BIN` if set, else the binaries
    /// next to the running executable's profile directory (`target/<profile>/`, also from
    /// `target/<profile>/deps/` where test executables live); HAProxy as the testkit finds it.
    pub fn locate() -> Result<Binaries> {
        let probe = from_env_or(PROBE_ENV, profile_dir()?.join(PROBE_BIN));
        let root = workspace_root();
        check(
            &probe,
            "haproxy-peers-e2e",
            PROBE_ENV,
            &[root.join("e2e/src"), root.join("e2e/testkit/src")],
        )?;
        Binaries::with_probe(probe)
    }

    /// As [`Binaries::locate`], with the probe given (integration tests know it from cargo:
    /// `env!("CARGO_BIN_EXE_hp-e2e-probe")`).
    pub fn with_probe(probe: impl Into<PathBuf>) -> Result<Binaries> {
        let probe = probe.into();
        let dir = profile_dir()?;
        let root = workspace_root();
        let sidecar = from_env_or(SIDECAR_ENV, dir.join(SIDECAR_BIN));
        check(
            &sidecar,
            "haproxy-peers-sidecar",
            SIDECAR_ENV,
            &[root.join("sidecar/src"), root.join("sidecar/members/src")],
        )?;
        Ok(Binaries {
            haproxy: haproxy_peers_testkit::haproxy_binary()?,
            sidecar,
            probe,
        })
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn from_env_or(env: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(env).map_or(default, PathBuf::from)
}

/// `target/<profile>` of the running executable.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(Error::io("find the running executable"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    })
}

/// The binary exists and is not older than any file of `sources` (directories that do not
/// exist, as on a machine with only the binaries, are skipped).
fn check(path: &Path, package: &'static str, env: &'static str, sources: &[PathBuf]) -> Result<()> {
    let built = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|_| Error::MissingBinary {
            path: path.to_path_buf(),
            package,
            env,
        })?;
    if std::env::var_os(env).is_some() {
        // Given explicitly: the caller vouches for it.
        return Ok(());
    }
    if let Some(newer) = sources.iter().find_map(|dir| newer_than(dir, built)) {
        return Err(Error::StaleBinary {
            path: path.to_path_buf(),
            newer,
            package,
        });
    }
    Ok(())
}

/// A file under `dir` modified after `time`.
fn newer_than(dir: &Path, time: SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if let Some(found) = newer_than(&path, time) {
                return Some(found);
            }
        } else if meta.modified().is_ok_and(|m| m > time) {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_older_than_a_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let src = dir.path().join("src/nested");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("old.rs"), "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bin, "").unwrap();
        let sources = [dir.path().join("src")];
        assert!(check(&bin, "p", "UNSET_FOR_TEST", &sources).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(src.join("new.rs"), "").unwrap();
        let err = check(&bin, "p", "UNSET_FOR_TEST", &sources).unwrap_err();
        assert!(
            matches!(err, Error::StaleBinary { ref newer, .. } if newer.ends_with("new.rs")),
            "{err}"
        );
        let err = check(&dir.path().join("missing"), "p", "UNSET_FOR_TEST", &sources).unwrap_err();
        assert!(err.to_string().contains("cargo build -p p"), "{err}");
    }
}
