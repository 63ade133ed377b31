//! A VM disk as a chain of files on a volume: base first, the active disk last. A chain
//! is VHDX (2012 R2 and later: `.vhdx` + `.avhdx`) or VHD (2008 R2: `.vhd` + `.avhd`),
//! told by its base file's content.

use std::path::PathBuf;

use crate::format::{detect_storage, AnyDisk, ImageFormat};
use crate::ids::GuidGen;
use crate::vhd::{self, NewParent, Vhd};
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
    #[error("{file} is a VHD chain: {what} needs VHDX")]
    NotVhdx { file: String, what: &'static str },
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

    /// Creates a new base disk (dynamic VHD, as Hyper-V 2008 R2 makes them) on the volume.
    pub fn create_base_vhd(
        volume: Volume,
        name: &str,
        opts: &vhd::CreateOptions,
    ) -> Result<DiskChain, ChainError> {
        let file = volume.create(name)?;
        let made = Vhd::create(Box::new(file), opts, None).and_then(Vhd::close);
        match made {
            Ok(()) => DiskChain::new(volume, name),
            Err(e) => {
                let _ = volume.remove(name);
                Err(ChainError::image(name, e.into()).on(&volume))
            }
        }
    }

    /// The chain's format, told by its base file's content as `source` holds it.
    pub fn format_on(&self, source: &dyn FileSource) -> Result<ImageFormat, ChainError> {
        let mut base = source.open_file(self.base())?;
        Ok(detect_storage(&mut *base))
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

    /// Opens the chain in its own format: every file read-only except the active disk
    /// when `writable` (and its parent when `parent_writable`).
    pub fn open_any(
        &self,
        writable: bool,
        parent_writable: bool,
        guids: &mut GuidGen,
    ) -> Result<AnyDisk, ChainError> {
        self.open_any_on(&self.volume.clone(), writable, parent_writable, guids)
    }

    /// Opens the chain in its own format as `source` holds it.
    pub fn open_any_on(
        &self,
        source: &dyn FileSource,
        writable: bool,
        parent_writable: bool,
        guids: &mut GuidGen,
    ) -> Result<AnyDisk, ChainError> {
        match self.format_on(source)? {
            ImageFormat::Vhdx => self
                .open_on(source, writable, parent_writable, guids)
                .map(AnyDisk::Vhdx),
            ImageFormat::Vhd => self
                .open_vhd_on(source, writable, parent_writable)
                .map(AnyDisk::Vhd),
        }
    }

    /// A VHD chain's files, each differencing disk linked to the parent it was made from.
    fn open_vhd_on(
        &self,
        source: &dyn FileSource,
        writable: bool,
        parent_writable: bool,
    ) -> Result<Vhd, ChainError> {
        let n = self.files.len();
        let mut parent: Option<Vhd> = None;
        for (i, name) in self.files.iter().enumerate() {
            let w = (i + 1 == n && writable) || (i + 2 == n && parent_writable);
            let image = |e: vhd::VhdError| ChainError::image(name, e.into());
            let mut v = Vhd::open(source.open_file(name)?, w).map_err(image)?;
            if let Some(p) = parent.take() {
                v.attach_parent(p, PathBuf::from(&self.files[i - 1]))
                    .map_err(image)?;
            }
            parent = Some(v);
        }
        Ok(parent.expect("a chain has a base"))
    }

    /// Opens the chain's files as `source` holds them: the live volume, or a snapshot
    /// of it (where a writable open changes only the snapshot). VHDX only (what a merge
    /// needs); [`open_any_on`](Self::open_any_on) opens either format.
    pub fn open_on(
        &self,
        source: &dyn FileSource,
        writable: bool,
        parent_writable: bool,
        guids: &mut GuidGen,
    ) -> Result<Vhdx, ChainError> {
        if self.format_on(source)? == ImageFormat::Vhd {
            return Err(ChainError::NotVhdx {
                file: self.base().to_string(),
                what: "this open",
            });
        }
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
        if parents.format_on(&self.volume)? == ImageFormat::Vhd {
            return parents.vhd_child(name, guids);
        }
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

    /// A VHD differencing child `name` of this chain's active disk, recorded relative to
    /// it (W2ru), stamped with its parent's time so a run stays deterministic.
    fn vhd_child(self, name: &str, guids: &mut GuidGen) -> Result<DiskChain, ChainError> {
        let disk = self.open_vhd_on(&self.volume, false, false)?;
        let opts = vhd::CreateOptions {
            timestamp: Some(disk.footer().timestamp),
            guids: Some(guids.fork()),
            ..vhd::CreateOptions::default()
        };
        let parent = NewParent {
            disk,
            relative_path: format!(".\\{}", self.active()),
            name: self.active().to_string(),
        };
        let file = self.volume.create(name)?;
        match Vhd::create(Box::new(file), &opts, Some(parent)).and_then(Vhd::close) {
            Ok(()) => {
                let mut files = self.files;
                files.push(name.to_string());
                Ok(DiskChain {
                    volume: self.volume,
                    files,
                })
            }
            Err(e) => {
                let _ = self.volume.remove(name);
                Err(ChainError::image(name, e.into()).on(&self.volume))
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
