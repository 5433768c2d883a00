//! A Secret volume updated the way the kubelet does it: every version in its own hidden
//! directory, `..data` a symlink to the current one, each file a symlink through `..data`, and an
//! update is one atomic rename of a fresh `..data_tmp` symlink onto `..data`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use tempfile::TempDir;

pub struct SecretVolume {
    dir: TempDir,
    version: u32,
}

impl SecretVolume {
    pub fn new(files: &[(String, Vec<u8>)]) -> Self {
        let mut volume = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            version: 0,
        };
        volume.update(files);
        volume
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Publishes `files` as the new content; file names not in `files` disappear.
    pub fn update(&mut self, files: &[(String, Vec<u8>)]) {
        let root = self.dir.path();
        let old = (self.version > 0).then(|| self.version_dir());
        self.version += 1;
        let new = self.version_dir();
        fs::create_dir(root.join(&new)).expect("version dir");
        for (name, bytes) in files {
            fs::write(root.join(&new).join(name), bytes).expect("write file");
        }
        let tmp = root.join("..data_tmp");
        symlink(&new, &tmp).expect("..data_tmp symlink");
        fs::rename(&tmp, root.join("..data")).expect("atomic ..data swap");
        for (name, _) in files {
            let link = root.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).expect("file symlink");
            }
        }
        for entry in fs::read_dir(root).expect("list volume") {
            let name = entry.expect("dir entry").file_name();
            let name = name.to_string_lossy();
            if !name.starts_with("..") && !files.iter().any(|(kept, _)| *kept == name) {
                fs::remove_file(root.join(name.as_ref())).expect("remove dropped file link");
            }
        }
        if let Some(old) = old {
            fs::remove_dir_all(root.join(old)).expect("remove old version");
        }
    }

    fn version_dir(&self) -> String {
        format!("..2026_01_01_00_00_00.{:04}", self.version)
    }
}
