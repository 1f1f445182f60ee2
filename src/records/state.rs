//! chforget's state directory on this machine: where it is, how files in it
//! are written (private, durable, atomic, safe with several chforget
//! processes at once), the locks that serialize those processes, and the
//! HMAC key that signs journals and keys the audit trail's hashes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::request::{RequestId, encode_hex};

/// The state directory: `requests/` (one journal per request), `audit.jsonl`
/// and `audit.key`.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `--state-dir` / `CHFORGET_STATE_DIR`, else `$XDG_STATE_HOME/chforget`,
    /// else `~/.local/state/chforget`. Nothing is created here.
    pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        let root = match explicit {
            Some(path) => path,
            None => default_state_root().ok_or_else(|| {
                Failure::new(
                    ErrorCode::StateError,
                    "no state directory: set --state-dir, CHFORGET_STATE_DIR, XDG_STATE_HOME or HOME",
                )
            })?,
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn requests_dir(&self) -> PathBuf {
        self.root.join("requests")
    }

    pub fn journal_path(&self, request_id: &RequestId) -> PathBuf {
        self.requests_dir()
            .join(format!("{}.json", request_id.as_str()))
    }

    pub fn audit_log_path(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    pub fn key_path(&self) -> PathBuf {
        self.root.join("audit.key")
    }

    /// Create the directory and `requests/` where missing (mode 0700).
    /// Directories that exist keep their mode: a shared parent such as
    /// `/tmp` must not lose its sticky bit. Only commands that write call it.
    pub fn prepare_for_writing(&self) -> anyhow::Result<()> {
        create_private_dir(&self.root)?;
        create_private_dir(&self.requests_dir())
    }

    /// Held by `queue run` for its whole window: two windows at once would
    /// erase the same requests twice.
    pub fn lock_window(&self) -> anyhow::Result<FileLock> {
        let path = self.requests_dir().join(".window.lock");
        FileLock::acquire(&path)
    }

    /// Held while a process checks for requests in flight and journals a new
    /// one, so that two processes cannot both start a request for one user.
    pub fn lock_new_requests(&self) -> anyhow::Result<FileLock> {
        let path = self.requests_dir().join(".new-request.lock");
        FileLock::acquire(&path)
    }

    /// The lock of one request, held for as long as a process works on it.
    /// `Ok(None)`: another process holds it (its pid is in [`LockHolder`]).
    pub fn try_lock_request(
        &self,
        request_id: &RequestId,
    ) -> anyhow::Result<Result<FileLock, LockHolder>> {
        let path = self
            .requests_dir()
            .join(format!("{}.lock", request_id.as_str()));
        FileLock::try_acquire(&path)
    }

    /// Held from counting a table's pending deletes to seeing the one this
    /// process issued, on servers that keep a limit of pending deletes: two
    /// processes that count at once would both find room and issue past the
    /// limit. `Ok(None)`: another process holds it. `table` names the server
    /// and the table (any text; it is hashed into the file name).
    pub fn try_lock_issuing(&self, table: &str) -> anyhow::Result<Option<FileLock>> {
        use sha2::Digest;
        let digest = encode_hex(&Sha256::digest(table.as_bytes())[..12]);
        let path = self.requests_dir().join(format!(".issuing-{digest}.lock"));
        Ok(FileLock::try_acquire(&path)?.ok())
    }

    /// Whether a process holds the lock of `request_id` right now.
    pub fn is_request_running(&self, request_id: &RequestId) -> Option<LockHolder> {
        let path = self
            .requests_dir()
            .join(format!("{}.lock", request_id.as_str()));
        if !path.exists() {
            return None;
        }
        match FileLock::try_acquire(&path) {
            Ok(Err(holder)) => Some(holder),
            _ => None,
        }
    }
}

fn default_state_root() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    non_empty("XDG_STATE_HOME")
        .map(|base| PathBuf::from(base).join("chforget"))
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/state/chforget")))
}

pub fn state_error(error: anyhow::Error) -> anyhow::Error {
    Failure::new(ErrorCode::StateError, format!("{error:#}")).into()
}

/// Create `dir` and its missing parents with mode 0700; never change the
/// mode of a directory that exists.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))
        .map_err(state_error)
}

/// Open a file for writing with mode 0600 (when it is created).
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true).read(true);
    } else {
        options.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A temporary name next to `path`, unique to this process and call, so two
/// processes never write the same temporary file.
fn temporary_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the
/// new content, never a torn file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_durably_with(path, |file| file.write_all(bytes))
}

/// [`write_durably`] of what `write` writes, streamed through a buffer: a
/// large file (a batch's journal) is never held whole in memory.
pub fn write_durably_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temporary_path(path);
    let written = (|| -> anyhow::Result<()> {
        let file =
            open_private(&tmp, false).with_context(|| format!("writing {}", tmp.display()))?;
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, file);
        write(&mut buffered)
            .and_then(|()| buffered.into_inner().map_err(|e| e.into_error()))
            .and_then(|file| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        sync_parent(path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// Create `path` with `bytes` only if it does not exist, atomically: of two
/// processes racing, exactly one creates it and both then read the same
/// content. Returns the content the file has.
pub fn create_once(path: &Path, bytes: &[u8]) -> anyhow::Result<(Vec<u8>, bool)> {
    let tmp = temporary_path(path);
    let mut file =
        open_private(&tmp, false).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    // A hard link fails when the name exists: the one atomic "create with
    // this content unless present" a POSIX file system offers.
    let created = match fs::hard_link(&tmp, path) {
        Ok(()) => true,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(error) => {
            let _ = fs::remove_file(&tmp);
            return Err(anyhow::Error::new(error).context(format!("creating {}", path.display())));
        }
    };
    let _ = fs::remove_file(&tmp);
    sync_parent(path)?;
    let content = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((content, created))
}

/// An exclusive advisory lock (`flock`), released when dropped or when the
/// process dies, `kill -9` included.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// Who holds a lock: the pid it wrote into the lock file.
#[derive(Debug, Clone)]
pub struct LockHolder {
    pub pid: Option<u32>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "another chforget process (pid {pid})"),
            None => f.write_str("another chforget process"),
        }
    }
}

impl FileLock {
    fn open(path: &Path) -> anyhow::Result<File> {
        let mut options = OpenOptions::new();
        options.create(true).read(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(path)
            .with_context(|| format!("opening the lock file {}", path.display()))
            .map_err(state_error)
    }

    fn record_pid(file: &mut File) {
        let _ = file.set_len(0);
        let _ = file.write_all(std::process::id().to_string().as_bytes());
        let _ = file.flush();
    }

    pub fn acquire(path: &Path) -> anyhow::Result<FileLock> {
        let mut file = Self::open(path)?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))
            .map_err(state_error)?;
        Self::record_pid(&mut file);
        Ok(FileLock { _file: file })
    }

    pub fn try_acquire(path: &Path) -> anyhow::Result<Result<FileLock, LockHolder>> {
        let mut file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => {
                Self::record_pid(&mut file);
                Ok(Ok(FileLock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(Err(LockHolder {
                    pid: text.trim().parse().ok(),
                }))
            }
            Err(std::fs::TryLockError::Error(error)) => Err(state_error(
                anyhow::Error::new(error).context(format!("locking {}", path.display())),
            )),
        }
    }
}

/// The HMAC key of this state directory: it signs the journals (an edited
/// journal is refused), chains the audit trail, and hashes every id the
/// trail and a finished journal must not hold in clear.
#[derive(Clone)]
pub struct Key {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Where the key came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Profile,
    Environment,
    File,
}

/// See [`Key::mac_writer`].
pub struct MacWriter(Hmac<Sha256>);

impl MacWriter {
    pub fn finish_hex(self) -> String {
        encode_hex(&self.0.finalize().into_bytes())
    }
}

impl Write for MacWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Key {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Key {
            bytes: bytes.into(),
        }
    }

    /// A random key that is never stored: for read-only work in a state
    /// directory that has no key yet (so nothing was ever signed with one).
    pub fn ephemeral() -> Self {
        Key::from_bytes(uuid::Uuid::new_v4().simple().to_string().into_bytes())
    }

    /// HMAC-SHA-256 of `value`, hex.
    pub fn mac_hex(&self, value: &[u8]) -> String {
        // HMAC takes keys of any length; the error arm cannot happen.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.bytes) else {
            return String::from("unavailable");
        };
        mac.update(value);
        encode_hex(&mac.finalize().into_bytes())
    }

    /// A sink that signs what is written to it, for values too large to
    /// sign as one buffer ([`MacWriter::finish_hex`] equals `mac_hex` of
    /// all the bytes written).
    pub fn mac_writer(&self) -> Option<MacWriter> {
        Hmac::<Sha256>::new_from_slice(&self.bytes)
            .ok()
            .map(MacWriter)
    }

    /// `hmac-sha256:<hex>`: how an id appears where it must not be in clear.
    pub fn hash(&self, value: impl AsRef<[u8]>) -> String {
        format!("hmac-sha256:{}", self.mac_hex(value.as_ref()))
    }

    /// The key from the profile, else `CHFORGET_AUDIT_KEY`, else
    /// `audit.key`; None when there is none yet.
    pub fn load(
        state: &StateDir,
        profile_key: Option<&str>,
    ) -> anyhow::Result<Option<(Key, KeySource)>> {
        if let Some(key) = profile_key.filter(|k| !k.is_empty()) {
            return Ok(Some((Key::from_bytes(key.as_bytes()), KeySource::Profile)));
        }
        if let Some(key) = std::env::var("CHFORGET_AUDIT_KEY")
            .ok()
            .filter(|k| !k.is_empty())
        {
            return Ok(Some((
                Key::from_bytes(key.into_bytes()),
                KeySource::Environment,
            )));
        }
        let path = state.key_path();
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).trim().to_string();
                if text.is_empty() {
                    return fail(
                        ErrorCode::StateError,
                        format!(
                            "the audit key {} is empty; restore it from your backup (journals and the audit trail's hashes depend on it)",
                            path.display()
                        ),
                    );
                }
                Ok(Some((Key::from_bytes(text.into_bytes()), KeySource::File)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(state_error(
                anyhow::Error::new(error).context(format!("reading {}", path.display())),
            )),
        }
    }

    /// As [`Key::load`], creating `audit.key` (0600) when there is no key:
    /// exactly one of several processes starting at once creates it.
    pub fn load_or_create(state: &StateDir, profile_key: Option<&str>) -> anyhow::Result<Key> {
        if let Some((key, _)) = Key::load(state, profile_key)? {
            return Ok(key);
        }
        state.prepare_for_writing()?;
        let path = state.key_path();
        let fresh = format!(
            "{}{}\n",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let (content, created) = create_once(&path, fresh.as_bytes()).map_err(state_error)?;
        if created {
            crate::vocabulary::output::tell(format!(
                "chforget: created the audit key {} (HMAC key that signs journals and hashes ids in the audit trail). Back it up: without it journals cannot be resumed and hashes cannot be matched to ids. Set CHFORGET_AUDIT_KEY to use your own.",
                path.display()
            ));
        }
        let text = String::from_utf8_lossy(&content).trim().to_string();
        Ok(Key::from_bytes(text.into_bytes()))
    }

    /// The key a read-only command needs; a clear error when there is none.
    pub fn require(state: &StateDir, profile_key: Option<&str>) -> anyhow::Result<Key> {
        match Key::load(state, profile_key)? {
            Some((key, _)) => Ok(key),
            None => fail(
                ErrorCode::StateError,
                format!(
                    "no audit key: {} does not exist and neither CHFORGET_AUDIT_KEY nor the profile's [audit] key is set; nothing was recorded with this state directory (check --state-dir), or restore audit.key from your backup",
                    state.key_path().display()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_once_keeps_the_first_content() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        let (first, created) = create_once(&path, b"one").expect("create");
        assert!(created);
        let (second, created_again) = create_once(&path, b"two").expect("create");
        assert!(!created_again);
        assert_eq!(first, b"one");
        assert_eq!(second, b"one");
        let leftovers = fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn racing_key_creation_yields_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let state = StateDir::resolve(Some(dir.path().join("state"))).expect("state");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| Key::load_or_create(&state, None).map(|k| k.hash("x"))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread").expect("key"))
                .collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    }

    #[cfg(unix)]
    #[test]
    fn existing_directories_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let state = StateDir::resolve(Some(shared.clone())).expect("state");
        state.prepare_for_writing().expect("prepare");
        let mode = fs::metadata(&shared).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777);
        let requests = fs::metadata(state.requests_dir())
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(requests & 0o077, 0, "created directories are private");
    }

    #[test]
    fn a_held_request_lock_names_its_holder() {
        let dir = tempfile::tempdir().expect("dir");
        let state = StateDir::resolve(Some(dir.path().to_path_buf())).expect("state");
        state.prepare_for_writing().expect("prepare");
        let id = RequestId::generate();
        let held = state.try_lock_request(&id).expect("lock").expect("free");
        let again = state.try_lock_request(&id).expect("lock");
        assert_eq!(again.err().and_then(|h| h.pid), Some(std::process::id()));
        drop(held);
        assert!(state.try_lock_request(&id).expect("lock").is_ok());
    }
}
