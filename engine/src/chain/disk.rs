//! A VM disk as a chain of files on a volume: base first, the active disk last.

use crate::ids::GuidGen;
use crate::vhdx::{CreateOptions, OpenOptions, Vhdx, VhdxError};
use crate::volume::{FileSource, Volume, VolumeError};

/// Hyper-V's limit on checkpoints per VM.
pub const MAX_CHECKPOINTS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{file}: {source}")]
    Image {
        file: String,
        #[source]
        source: VhdxError,
    },
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("the disk already has {0} checkpoints, the most Hyper-V allows")]
    TooDeep(usize),
    #[error("the disk has no checkpoint to {0}")]
    NoCheckpoint(&'static str),
    #[error("volume {volume} has no room for {file}: {detail}")]
    NoSpace {
        volume: String,
        file: String,
        detail: String,
    },
    #[error("a merge of {0} is in progress")]
    MergeInProgress(String),
}

impl ChainError {
    pub(crate) fn image(file: &str, source: VhdxError) -> ChainError {
        match source {
            VhdxError::NoSpace(detail) => ChainError::NoSpace {
                volume: String::new(),
                file: file.to_string(),
                detail,
            },
            source => ChainError::Image {
                file: file.to_string(),
                source,
            },
        }
    }
}

/// The files of one VM disk on one volume.
#[derive(Debug, Clone)]
pub struct DiskChain {
    pub volume: Volume,
    /// Base first; the last one is the active disk the VM writes to.
    pub files: Vec<String>,
}

impl DiskChain {
    /// A chain of one existing base disk.
    pub fn new(volume: Volume, base: &str) -> Result<DiskChain, ChainError> {
        volume.open(base)?;
        Ok(DiskChain {
            volume,
            files: vec![base.to_string()],
        })
    }

    /// Creates a new base disk (dynamic VHDX) on the volume.
    pub fn create_base(
        volume: Volume,
        name: &str,
        opts: &CreateOptions,
    ) -> Result<DiskChain, ChainError> {
        let file = volume.create(name)?;
        match Vhdx::create(Box::new(file), opts, None).and_then(Vhdx::close) {
            Ok(()) => DiskChain::new(volume, name),
            Err(e) => {
                let _ = volume.remove(name);
                Err(ChainError::image(name, e).on(&volume))
            }
        }
    }

    pub fn base(&self) -> &str {
        &self.files[0]
    }

    pub fn active(&self) -> &str {
        self.files.last().expect("a chain has a base")
    }

    /// Checkpoints in the chain (differencing disks above the base).
    pub fn checkpoints(&self) -> usize {
        self.files.len() - 1
    }

    /// Opens the chain: every file read-only except the active disk when `writable`,
    /// and its parent too when `parent_writable` (a merge writes into it).
    pub fn open(
        &self,
        writable: bool,
        parent_writable: bool,
        guids: &mut GuidGen,
    ) -> Result<Vhdx, ChainError> {
        self.open_on(&self.volume.clone(), writable, parent_writable, guids)
    }

    /// Opens the chain's files as `source` holds them: the live volume, or a snapshot
    /// of it (where a writable open changes only the snapshot).
    pub fn open_on(
        &self,
        source: &dyn FileSource,
        writable: bool,
        parent_writable: bool,
        guids: &mut GuidGen,
    ) -> Result<Vhdx, ChainError> {
        let n = self.files.len();
        let mut parent: Option<Vhdx> = None;
        for (i, name) in self.files.iter().enumerate() {
            let w = (i + 1 == n && writable) || (i + 2 == n && parent_writable);
            let opts = OpenOptions {
                writable: w,
                guids: Some(guids.fork()),
                ..OpenOptions::default()
            };
            let file = source.open_file(name)?;
            let v =
                Vhdx::open(file, &opts, parent.take()).map_err(|e| ChainError::image(name, e))?;
            parent = Some(v);
        }
        Ok(parent.expect("a chain has a base"))
    }

    /// Takes a checkpoint: a new differencing disk `name`, child of the active disk,
    /// becomes the active disk; the old one is read-only from now on. On a volume
    /// without room it fails and leaves nothing behind (R8).
    pub fn create_checkpoint(&mut self, name: &str, guids: &mut GuidGen) -> Result<(), ChainError> {
        if self.checkpoints() >= MAX_CHECKPOINTS {
            return Err(ChainError::TooDeep(MAX_CHECKPOINTS));
        }
        let child = self.child_of(self.files.len() - 1, name, guids)?;
        self.files = child.files;
        Ok(())
    }

    /// A new chain that shares files `..=index` of this one and adds the child `name` of
    /// file `index` (F2.6: the auto-recovery checkpoint starts an independent chain).
    pub fn child_of(
        &self,
        index: usize,
        name: &str,
        guids: &mut GuidGen,
    ) -> Result<DiskChain, ChainError> {
        let parents = DiskChain {
            volume: self.volume.clone(),
            files: self.files[..=index].to_vec(),
        };
        let parent = parents.open(false, false, guids)?;
        let opts = CreateOptions {
            parent_paths: vec![(
                "relative_path".to_string(),
                format!(".\\{}", parents.active()),
            )],
            guids: Some(guids.fork()),
            ..CreateOptions::default()
        };
        let file = self.volume.create(name)?;
        match Vhdx::create(Box::new(file), &opts, Some(parent)).and_then(Vhdx::close) {
            Ok(()) => {
                let mut files = parents.files;
                files.push(name.to_string());
                Ok(DiskChain {
                    volume: self.volume.clone(),
                    files,
                })
            }
            Err(e) => {
                let _ = self.volume.remove(name);
                Err(ChainError::image(name, e).on(&self.volume))
            }
        }
    }

    /// After a merge of the active disk into its parent completed: the merged disk is
    /// deleted and its parent is the active disk.
    pub fn merged(&mut self) -> Result<(), ChainError> {
        if self.checkpoints() == 0 {
            return Err(ChainError::NoCheckpoint("merge"));
        }
        let child = self.files.pop().expect("checked");
        self.volume.remove(&child)?;
        Ok(())
    }

    /// Discards the active checkpoint: its disk is deleted and its parent is active
    /// again, as it was when the checkpoint was taken.
    pub fn revert(&mut self) -> Result<(), ChainError> {
        if self.checkpoints() == 0 {
            return Err(ChainError::NoCheckpoint("revert"));
        }
        let child = self.files.pop().expect("checked");
        self.volume.remove(&child)?;
        Ok(())
    }
}

impl ChainError {
    /// Names the volume in a space error.
    fn on(self, volume: &Volume) -> ChainError {
        match self {
            ChainError::NoSpace { file, detail, .. } => ChainError::NoSpace {
                volume: volume.name(),
                file,
                detail,
            },
            e => e,
        }
    }
}
