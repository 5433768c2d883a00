//! Where the `haproxy` executable is.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fallback location of Debian's package.
const DEBIAN_PATH: &str = "/usr/sbin/haproxy";

/// The haproxy executable: `$HAPROXY_BIN` if set, else the first `haproxy` on `PATH`, else
/// `/usr/sbin/haproxy` (root's PATH on Debian does not always hold /usr/sbin).
///
/// A missing binary is an error, never a skip: the interop tests are worthless without it.
pub fn haproxy_binary() -> Result<PathBuf> {
    if let Some(explicit) = std::env::var_os("HAPROXY_BIN") {
        let path = PathBuf::from(explicit);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::BadHaproxyBin(path))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("haproxy"));
    on_path
        .chain(std::iter::once(PathBuf::from(DEBIAN_PATH)))
        .find(|candidate| is_executable(candidate))
        .ok_or(Error::HaproxyNotFound)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_installed_haproxy() {
        let path = haproxy_binary().expect("haproxy must be installed for the interop tests");
        assert!(is_executable(&path), "{} is not executable", path.display());
    }

    #[test]
    fn a_directory_is_not_an_executable() {
        assert!(!is_executable(Path::new("/usr/sbin")));
        assert!(!is_executable(Path::new("/nonexistent/haproxy")));
    }
}
