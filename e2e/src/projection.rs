//! A ConfigMap or Secret volume written the way the kubelet writes it, so that an in-place
//! update (a re-render, a certificate rotation) reaches running processes exactly as in a pod:
//!
//! ```text
//! dir/..<version>/ca.crt        the files of one version
//! dir/..data -> ..<version>     swapped atomically (rename of a new symlink) on every update
//! dir/ca.crt -> ..data/ca.crt   what the container reads
//! ```

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

static VERSION: AtomicU64 = AtomicU64::new(0);

/// Writes `files` into `dir` as a new version and switches `..data` to it. Returns `false`
/// (and changes nothing) when the current version holds exactly these files.
pub fn project(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<bool> {
    if current(dir)?.as_ref() == Some(files) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let version = version_name();
    let version_dir = dir.join(&version);
    std::fs::create_dir(&version_dir)
        .map_err(Error::io(format!("create {}", version_dir.display())))?;
    for (name, bytes) in files {
        let path = version_dir.join(name);
        std::fs::write(&path, bytes).map_err(Error::io(format!("write {}", path.display())))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&version, &tmp).map_err(Error::io(format!("link {}", tmp.display())))?;
    std::fs::rename(&tmp, dir.join(DATA))
        .map_err(Error::io(format!("switch {}/{DATA}", dir.display())))?;
    for name in files.keys() {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new(DATA).join(name), &visible)
                .map_err(Error::io(format!("link {}", visible.display())))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(Error::io(format!("list {}", dir.display())))? {
        let name = entry
            .map_err(Error::io(format!("list {}", dir.display())))?
            .file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("..") && !files.contains_key(name.as_ref()) {
            let _ = std::fs::remove_file(dir.join(name.as_ref()));
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// The files of the current version, if there is one.
pub fn current(dir: &Path) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let data = dir.join(DATA);
    if std::fs::symlink_metadata(&data).is_err() {
        return Ok(None);
    }
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&data).map_err(Error::io(format!("list {}", data.display())))? {
        let entry = entry.map_err(Error::io(format!("list {}", data.display())))?;
        let bytes = std::fs::read(entry.path())
            .map_err(Error::io(format!("read {}", entry.path().display())))?;
        files.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
    }
    Ok(Some(files))
}

/// `..<seconds>_<nanoseconds>_<n>`, unique within the process.
fn version_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "..{}_{:09}_{}",
        now.as_secs(),
        now.subsec_nanos(),
        VERSION.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn updates_swap_the_data_link_and_follow_key_changes() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("tls");
        assert!(project(&vol, &files(&[("ca.crt", "A"), ("edge-0.crt", "L0")])).unwrap());
        assert_eq!(std::fs::read_to_string(vol.join("ca.crt")).unwrap(), "A");
        let first = std::fs::read_link(vol.join(DATA)).unwrap();
        assert_eq!(
            std::fs::read_link(vol.join("ca.crt")).unwrap(),
            Path::new("..data/ca.crt")
        );

        // Same content: nothing happens.
        assert!(!project(&vol, &files(&[("ca.crt", "A"), ("edge-0.crt", "L0")])).unwrap());
        assert_eq!(std::fs::read_link(vol.join(DATA)).unwrap(), first);

        // New content and keys: a new version, the old one gone, a removed key unlinked.
        assert!(project(&vol, &files(&[("ca.crt", "AB"), ("edge-1.crt", "L1")])).unwrap());
        let second = std::fs::read_link(vol.join(DATA)).unwrap();
        assert_ne!(second, first);
        assert!(!vol.join(&first).exists());
        assert_eq!(std::fs::read_to_string(vol.join("ca.crt")).unwrap(), "AB");
        assert_eq!(
            std::fs::read_to_string(vol.join("edge-1.crt")).unwrap(),
            "L1"
        );
        assert!(std::fs::symlink_metadata(vol.join("edge-0.crt")).is_err());
        assert_eq!(
            current(&vol).unwrap().unwrap(),
            files(&[("ca.crt", "AB"), ("edge-1.crt", "L1")])
        );
    }
}
