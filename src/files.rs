//! Reading the files orch keeps under `.orch/` (states, outputs, fingerprints, journals, markers)
//! without ever blocking on one that is not a file. Opening a FIFO for reading waits for a
//! writer, and reading a device may never end: a FIFO where a state file should be would hang a
//! plan in its first second, deaf to everything but SIGKILL. So a file is opened without
//! blocking, and refused unless it is a regular file, before a byte is read.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// The whole of the regular file at `path` (links followed). Anything else at `path` is an error
/// of kind `InvalidInput` that says what is there and to remove it (the caller names the path);
/// a missing file is `NotFound` as with [`std::fs::read`].
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut file = open(path.as_ref())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `path` opened for reading, if it is a regular file.
pub fn open(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not a file orch wrote: remove it"),
    ))
}

/// Whether something is at `path` (links followed), and if so that it is a regular file: the
/// check of a file orch will hand to terraform, which would block on a FIFO as surely.
pub fn is_file(path: &Path) -> io::Result<bool> {
    match open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("terraform.tfstate");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        path
    }

    #[test]
    fn a_fifo_is_refused_at_once_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let e = read(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("it is a FIFO (named pipe), not a file orch wrote"),
            "{e}"
        );
        assert!(is_file(&path).is_err());
    }

    #[test]
    fn a_directory_a_device_and_a_missing_file_are_told_apart_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path())
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        assert!(read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("is a device"));
        let missing = dir.path().join("missing");
        assert_eq!(read(&missing).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!is_file(&missing).unwrap());
        let file = dir.path().join("state");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "{}");
        assert!(is_file(&file).unwrap());
    }
}
