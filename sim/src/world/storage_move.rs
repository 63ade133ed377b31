//! A storage live migration (R11): the VM's disk files are copied to another volume and
//! removed from the old one while the VM runs on; the VM then writes to the new copies.
//! A copy skips the file's unwritten MiBs, so sparse VHDX files stay sparse.

use hvsim_engine::storage::Storage;
use hvsim_engine::volume::Volume;
use hvsim_engine::GuidGen;

use super::{DiskError, DiskLab};

/// Bytes copied at a time.
const PIECE: u64 = 1 << 20;

impl DiskLab {
    /// Moves every file of the disk's chain to `to` (named `name`) and reopens the chain
    /// there for the VM.
    pub fn move_to(
        &mut self,
        to: &Volume,
        name: &str,
        guids: &mut GuidGen,
    ) -> Result<(), DiskError> {
        self.close()?;
        for file in self.chain.files.clone() {
            let failed = |detail: String| DiskError::Move {
                file: file.clone(),
                volume: name.to_string(),
                detail,
            };
            copy(&self.chain.volume, to, &file).map_err(failed)?;
            self.chain
                .volume
                .remove(&file)
                .map_err(|e| failed(e.to_string()))?;
        }
        self.chain.volume = to.clone();
        self.volume = name.to_string();
        self.reopen(false, guids)
    }
}

/// Copies `file` from `from` to `to`, a MiB at a time, leaving unwritten MiBs unwritten.
fn copy(from: &Volume, to: &Volume, file: &str) -> Result<(), String> {
    let mut src = from.open(file).map_err(|e| e.to_string())?;
    let mut dst = to.create(file).map_err(|e| e.to_string())?;
    let len = src.len().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; PIECE as usize];
    let mut at = 0;
    while at < len {
        let n = PIECE.min(len - at) as usize;
        src.read_at(&mut buf[..n], at).map_err(|e| e.to_string())?;
        if buf[..n].iter().any(|&b| b != 0) {
            dst.write_at(&buf[..n], at).map_err(|e| e.to_string())?;
        }
        at += n as u64;
    }
    dst.set_len(len).map_err(|e| e.to_string())?;
    dst.flush().map_err(|e| e.to_string())
}
