//! The login the `kraken` CLI stores (`kraken login`) and the CLI and TUI
//! read: `credentials.json` in `$KRAKEN_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/kraken`, else `~/.config/kraken`; readable by its owner only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stored login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// Server URL.
    pub server: String,
    /// Session token.
    pub token: String,
    /// User name.
    #[serde(default)]
    pub user: String,
}

/// The directory of the stored login.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KRAKEN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("kraken"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".config").join("kraken"))
}

fn file_in(dir: &Path) -> PathBuf {
    dir.join("credentials.json")
}

impl Credentials {
    /// The stored login, if any.
    pub fn load() -> Result<Option<Credentials>> {
        let Some(dir) = config_dir() else {
            return Ok(None);
        };
        let path = file_in(&dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Error::bad_request(format!(
                    "{} is damaged ({e}): run `kraken login` again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Store this login (file mode 600); returns the file.
    pub fn save(&self) -> Result<PathBuf> {
        let dir = config_dir()
            .ok_or_else(|| Error::internal("no home directory: set KRAKEN_CONFIG_DIR"))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let path = file_in(&dir);
        let text = serde_json::to_string_pretty(self)?;
        write_private(&path, text.as_bytes())
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// Forget the stored login; returns whether there was one.
    pub fn remove() -> Result<bool> {
        let Some(dir) = config_dir() else {
            return Ok(false);
        };
        match std::fs::remove_file(file_in(&dir)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::internal(format!(
                "cannot remove the stored login: {e}"
            ))),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
