//! The key-encryption key (KEK): 32 random bytes that seal every signing key
//! stored in the database, so a database dump alone does not yield keys that
//! can mint access tokens.
//!
//! The KEK lives in its own file, outside the database, readable by the
//! server's user only. The file is a single base64 line.

use crate::error::JoseError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// KEK length: an AES-256 key.
pub const KEK_LEN: usize = 32;

/// The key-encryption key. Zeroized on drop; `Debug` never shows it.
pub struct Kek {
    bytes: Zeroizing<[u8; KEK_LEN]>,
}

impl Kek {
    /// A KEK from known bytes (tests, or a KEK supplied by a secrets manager).
    pub fn from_bytes(bytes: [u8; KEK_LEN]) -> Kek {
        Kek {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A fresh KEK from the operating system's CSPRNG.
    pub fn generate() -> Result<Kek, JoseError> {
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| JoseError::KeyGeneration)?;
        Ok(Kek { bytes })
    }

    /// A subkey for `label`, HMAC-SHA256 under the KEK: one secret on disk,
    /// independent keys per purpose (client-secret hashing, CSRF, …), none of
    /// which reveals the KEK or another subkey.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.bytes().as_slice());
        let tag = aws_lc_rs::hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub(crate) fn bytes(&self) -> &[u8; KEK_LEN] {
        &self.bytes
    }

    /// Loads the KEK at `path`, or creates it (and its parent directories,
    /// mode 0700) when it does not exist. Returns `true` when it was created.
    ///
    /// Refuses a file that group or others can access, or that does not
    /// decode to exactly 32 bytes: a half-written or foreign file must stop
    /// the server rather than silently orphan every stored signing key.
    ///
    /// Creation is atomic: the secret is written to a temporary sibling opened
    /// with `create_new` and mode 0600 (permissions set before any secret
    /// byte is written), synced, then hard-linked into place, which fails
    /// instead of overwriting if another process created the KEK first; in
    /// that case the other process's KEK is loaded.
    pub fn load_or_create(path: &Path) -> Result<(Kek, bool), JoseError> {
        match load(path) {
            Ok(kek) => return Ok((kek, false)),
            Err(JoseError::KekIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(other) => return Err(other),
        }
        let kek = Kek::generate()?;
        match create(path, &kek) {
            Ok(()) => Ok((kek, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((load(path)?, false)),
            Err(source) => Err(io_error(path, source)),
        }
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

fn io_error(path: &Path, source: io::Error) -> JoseError {
    JoseError::KekIo {
        path: path.to_path_buf(),
        source,
    }
}

fn load(path: &Path) -> Result<Kek, JoseError> {
    let mut file = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let mode = file
        .metadata()
        .map_err(|e| io_error(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(JoseError::KekPermissions {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(|e| io_error(path, e))?;
    let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| JoseError::KekEncoding {
        path: path.to_path_buf(),
    })?);
    let bytes: [u8; KEK_LEN] = decoded.as_slice().try_into().map_err(|_| JoseError::KekLength {
        path: path.to_path_buf(),
        len: decoded.len(),
    })?;
    Ok(Kek::from_bytes(bytes))
}

fn create(path: &Path, kek: &Kek) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    }
    let tmp = temporary_sibling(path)?;
    let result = write_then_link(&tmp, path, kek);
    // The temporary name is only a staging area; it must not linger either way.
    let _ = fs::remove_file(&tmp);
    result
}

fn write_then_link(tmp: &Path, path: &Path, kek: &Kek) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    // `mode` above is filtered by the umask, which can only remove bits;
    // setting it explicitly makes the result independent of the umask.
    file.set_permissions(Permissions::from_mode(0o600))?;
    let mut line = Zeroizing::new(STANDARD.encode(kek.bytes()));
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::hard_link(tmp, path)
}

fn temporary_sibling(path: &Path) -> io::Result<PathBuf> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| io::Error::other("random source failed"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "KEK path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", u64::from_le_bytes(suffix)));
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_kek() {
        let a = Kek::from_bytes([1; KEK_LEN]);
        let b = Kek::from_bytes([2; KEK_LEN]);
        assert_eq!(a.derive_key("x"), a.derive_key("x"));
        assert_ne!(a.derive_key("x"), a.derive_key("y"));
        assert_ne!(a.derive_key("x"), b.derive_key("x"));
        assert_ne!(a.derive_key("x").as_slice(), [1u8; 32].as_slice());
    }
    use std::fs;

    #[test]
    fn creates_a_0600_file_in_new_directories_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/keys/kek");
        let (first, created) = Kek::load_or_create(&path).unwrap();
        assert!(created);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let parent_mode = fs::metadata(path.parent().unwrap()).unwrap().permissions().mode();
        assert_eq!(parent_mode & 0o077, 0, "created directories are private");

        let (second, created) = Kek::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.bytes(), second.bytes());
        // No staging file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn file_is_one_base64_line_of_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let (kek, _) = Kek::load_or_create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        assert_eq!(STANDARD.decode(text.trim()).unwrap(), kek.bytes().to_vec());
    }

    #[test]
    fn refuses_a_group_or_other_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            match Kek::load_or_create(&path) {
                Err(JoseError::KekPermissions { mode: m, .. }) => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_a_file_of_the_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        fs::write(&path, format!("{}\n", STANDARD.encode([7u8; 16]))).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Kek::load_or_create(&path),
            Err(JoseError::KekLength { len: 16, .. })
        ));
    }

    #[test]
    fn refuses_a_file_that_is_not_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        fs::write(&path, "not base64 at all!\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Kek::load_or_create(&path),
            Err(JoseError::KekEncoding { .. })
        ));
    }

    #[test]
    fn debug_is_redacted() {
        let kek = Kek::from_bytes([0xAB; KEK_LEN]);
        let shown = format!("{kek:?}");
        assert_eq!(shown, "Kek([redacted])");
        assert!(!shown.contains("171"));
    }

    #[test]
    fn generated_keks_differ() {
        assert_ne!(Kek::generate().unwrap().bytes(), Kek::generate().unwrap().bytes());
    }
}
