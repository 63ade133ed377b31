//! The auto-recovery checkpoint of one VM (F2.6, F2.10): per disk the independent chain
//! `<base> ← <disk>-AutoRecovery.avhdx`, the open transaction the checkpoint fixed, and
//! whether the disks are hot-added to the running VM. While they are, each guest writer
//! writes its own undo pages into them (its OnPostSnapshot on an auto-recoverable
//! snapshot, reference vss.md §3); the VM's own chain is never opened for that.

use hvsim_engine::chain::DiskChain;
use hvsim_engine::GuidGen;

use super::UndoPage;

#[derive(Debug, Default)]
pub struct AutoRecovery {
    /// Per disk, its auto-recovery chain (None once deleted, or for a disk without).
    pub chains: Vec<Option<DiskChain>>,
    /// The open transaction at the checkpoint instant, each page its writer's (F2.10).
    pub rollback: Vec<UndoPage>,
    /// Hot-added to the VM through its SCSI controller: the guest's writers may write.
    pub attached: bool,
    /// Per writer that recovered, in order: its name and the pages it wrote.
    pub recovered: Vec<(String, u64)>,
}

/// Why a writer's rollback could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct RollbackError {
    pub file: String,
    pub problem: String,
}

impl AutoRecovery {
    /// The auto-recovery files, as their disks' order gives them.
    pub fn files(&self) -> Vec<String> {
        self.chains
            .iter()
            .flatten()
            .map(|c| c.active().to_string())
            .collect()
    }

    /// F2.10: `writer` writes the undo pages of its own open transaction into the
    /// attached disks, as ordinary writes; a writer with nothing to undo writes nothing.
    /// Returns the pages written.
    pub fn roll_back(&mut self, writer: &str, guids: &mut GuidGen) -> Result<u64, RollbackError> {
        let mut pages = 0;
        for (i, chain) in self.chains.iter().enumerate() {
            let Some(chain) = chain else { continue };
            let mine: Vec<&UndoPage> = self
                .rollback
                .iter()
                .filter(|u| u.disk == i && u.writer.as_deref() == Some(writer))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let err = |e: &dyn std::fmt::Display| RollbackError {
                file: chain.active().to_string(),
                problem: e.to_string(),
            };
            let mut disk = chain.open(true, false, guids).map_err(|e| err(&e))?;
            for u in mine {
                disk.write(u.offset, &u.before).map_err(|e| err(&e))?;
                pages += 1;
            }
            disk.close().map_err(|e| err(&e))?;
        }
        self.recovered.push((writer.to_string(), pages));
        Ok(pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvsim_engine::vhdx::MIB;
    use hvsim_engine::volume::Volume;
    use hvsim_engine::CreateOptions;

    fn page(disk: usize, offset: u64, b: u8, writer: &str) -> UndoPage {
        UndoPage {
            disk,
            offset,
            before: vec![b; 4096],
            writer: Some(writer.into()),
        }
    }

    #[test]
    fn each_writer_writes_only_its_own_pages() {
        let vol = Volume::new("D:", 1 << 30);
        let mut guids = GuidGen::seeded(3);
        let opts = CreateOptions {
            block_size: Some(MIB as u32),
            ..CreateOptions::new(8 * MIB)
        };
        let base = DiskChain::create_base(vol.clone(), "disk_1.vhdx", &opts).unwrap();
        let ar = base
            .child_of(0, "disk_1-AutoRecovery.avhdx", &mut guids)
            .unwrap();
        let mut a = AutoRecovery {
            chains: vec![Some(ar)],
            rollback: vec![page(0, 0, 1, "Sql"), page(0, MIB, 2, "Exchange")],
            attached: true,
            recovered: Vec::new(),
        };
        assert_eq!(a.roll_back("System Writer", &mut guids).unwrap(), 0);
        assert_eq!(a.roll_back("Sql", &mut guids).unwrap(), 1);
        let chain = a.chains[0].as_ref().unwrap();
        let mut d = chain.open(false, false, &mut guids).unwrap();
        let mut b = vec![0u8; 4096];
        d.read(0, &mut b).unwrap();
        assert_eq!(b, vec![1u8; 4096], "Sql's page");
        d.read(MIB, &mut b).unwrap();
        assert_eq!(b, vec![0u8; 4096], "Exchange's page is Exchange's to write");
        assert_eq!(
            a.recovered,
            vec![("System Writer".to_string(), 0), ("Sql".to_string(), 1)]
        );
        assert_eq!(a.files(), vec!["disk_1-AutoRecovery.avhdx".to_string()]);
    }
}
