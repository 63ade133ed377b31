//! Metadata region (MS-VHDX 2.6): the table and the known system items.

use super::layout::*;
use super::locator::ParentLocator;
use super::VhdxError;
use uuid::Uuid;

pub const FLAG_IS_USER: u32 = 0x1;
pub const FLAG_IS_VIRTUAL_DISK: u32 = 0x2;
pub const FLAG_IS_REQUIRED: u32 = 0x4;

/// One metadata table entry with the bytes of its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataItem {
    pub item_id: Uuid,
    pub flags: u32,
    /// Offset relative to the region start as found on disk (0 for new items).
    pub offset: u32,
    pub data: Vec<u8>,
}

impl MetadataItem {
    pub fn new(item_id: Uuid, flags: u32, data: Vec<u8>) -> Self {
        MetadataItem {
            item_id,
            flags,
            offset: 0,
            data,
        }
    }
    pub fn is_user(&self) -> bool {
        self.flags & FLAG_IS_USER != 0
    }
}

/// A table entry as parsed, before the item bytes are read.
#[derive(Debug, Clone, Copy)]
pub struct TableEntry {
    pub item_id: Uuid,
    pub offset: u32,
    pub length: u32,
    pub flags: u32,
}

/// Most item bytes a table may list: every item is read into memory, and 2047 items of
/// 1 MiB in a sparse file would cost 2 GiB. Hyper-V's items take a few KiB.
const MAX_METADATA_TOTAL: u64 = 16 * MIB;

/// Parses the 64 KiB metadata table; `region_len` bounds every item.
pub fn parse_table(
    b: &[u8],
    region_offset: u64,
    region_len: u64,
) -> Result<Vec<TableEntry>, VhdxError> {
    let bad = |r: String| VhdxError::corrupt("metadata table", region_offset, r);
    if &b[0..8] != SIG_METADATA {
        return Err(bad("signature is not \"metadata\"".into()));
    }
    let count = u16_at(b, 10) as usize;
    if count > MAX_TABLE_ENTRIES {
        return Err(bad(format!(
            "{count} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    let mut out: Vec<TableEntry> = Vec::with_capacity(count);
    let mut user = 0;
    let mut total = 0u64;
    for i in 0..count {
        let e = &b[32 + 32 * i..64 + 32 * i];
        let t = TableEntry {
            item_id: guid_from_le(e),
            offset: u32_at(e, 16),
            length: u32_at(e, 20),
            flags: u32_at(e, 24),
        };
        let is_user = t.flags & FLAG_IS_USER != 0;
        if t.length == 0 {
            if t.offset != 0 {
                return Err(bad(format!(
                    "item {} has length 0 but offset {}",
                    t.item_id, t.offset
                )));
            }
        } else {
            if (t.offset as usize) < METADATA_TABLE_SIZE {
                return Err(bad(format!(
                    "item {} at offset {:#x} lies inside the table",
                    t.item_id, t.offset
                )));
            }
            if t.length > MAX_METADATA_ITEM {
                return Err(bad(format!(
                    "item {} is {} bytes (at most 1 MiB)",
                    t.item_id, t.length
                )));
            }
            if u64::from(t.offset) + u64::from(t.length) > region_len {
                return Err(bad(format!(
                    "item {} runs past the end of the region",
                    t.item_id
                )));
            }
            let end = t.offset + t.length;
            if let Some(o) = out
                .iter()
                .find(|o| o.length != 0 && !(o.offset + o.length <= t.offset || end <= o.offset))
            {
                return Err(bad(format!(
                    "items {} and {} overlap",
                    o.item_id, t.item_id
                )));
            }
        }
        if out
            .iter()
            .any(|o| o.item_id == t.item_id && (o.flags & FLAG_IS_USER != 0) == is_user)
        {
            return Err(bad(format!("item {} appears twice", t.item_id)));
        }
        total += u64::from(t.length);
        if total > MAX_METADATA_TOTAL {
            return Err(bad(format!(
                "items total more than {MAX_METADATA_TOTAL} bytes, which no disk needs"
            )));
        }
        user += usize::from(is_user);
        if user > 1024 {
            return Err(bad("more than 1024 user items".into()));
        }
        out.push(t);
    }
    Ok(out)
}

/// The metadata region's bytes for `items`, laid out after the table.
pub fn build_region(items: &mut [MetadataItem], region_len: u64) -> Result<Vec<u8>, VhdxError> {
    let total: usize = METADATA_TABLE_SIZE + items.iter().map(|i| i.data.len()).sum::<usize>();
    if total as u64 > region_len {
        return Err(VhdxError::InvalidParameter(
            "metadata items do not fit the region".into(),
        ));
    }
    let mut b = vec![0u8; total];
    b[0..8].copy_from_slice(SIG_METADATA);
    put_u16(&mut b, 10, items.len() as u16);
    let mut at = METADATA_TABLE_SIZE;
    for (i, item) in items.iter_mut().enumerate() {
        let e = 32 + 32 * i;
        put_guid(&mut b, e, &item.item_id);
        item.offset = if item.data.is_empty() { 0 } else { at as u32 };
        put_u32(&mut b, e + 16, item.offset);
        put_u32(&mut b, e + 20, item.data.len() as u32);
        put_u32(&mut b, e + 24, item.flags);
        b[at..at + item.data.len()].copy_from_slice(&item.data);
        at += item.data.len();
    }
    Ok(b)
}

/// The parameters a reader needs, decoded from the system items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskParams {
    pub block_size: u32,
    pub leave_block_allocated: bool,
    pub has_parent: bool,
    pub virtual_size: u64,
    pub disk_id: Uuid,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub parent_locator: Option<ParentLocator>,
}

fn item(items: &[MetadataItem], id: Uuid) -> Option<&MetadataItem> {
    items.iter().find(|i| i.item_id == id && !i.is_user())
}

impl DiskParams {
    /// Decodes and validates the system items; unknown required items are refused.
    pub fn from_items(items: &[MetadataItem], region_offset: u64) -> Result<DiskParams, VhdxError> {
        let known = [
            META_FILE_PARAMETERS,
            META_VIRTUAL_DISK_SIZE,
            META_VIRTUAL_DISK_ID,
            META_LOGICAL_SECTOR_SIZE,
            META_PHYSICAL_SECTOR_SIZE,
            META_PARENT_LOCATOR,
        ];
        for i in items {
            if i.flags & FLAG_IS_REQUIRED != 0 && (i.is_user() || !known.contains(&i.item_id)) {
                return Err(VhdxError::UnknownRequired {
                    what: "metadata item",
                    id: i.item_id,
                });
            }
        }
        let bad = |r: String| VhdxError::corrupt("metadata", region_offset, r);
        let get = |id: Uuid, name: &str, len: usize| -> Result<&[u8], VhdxError> {
            let it = item(items, id).ok_or_else(|| bad(format!("{name} item is missing")))?;
            if it.data.len() < len {
                return Err(bad(format!(
                    "{name} item is {} bytes, needs {len}",
                    it.data.len()
                )));
            }
            Ok(&it.data)
        };
        let fp = get(META_FILE_PARAMETERS, "file parameters", 8)?;
        let block_size = u32_at(fp, 0);
        let fp_flags = u32_at(fp, 4);
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(bad(format!(
                "block size {block_size} is not a power of two between 1 MiB and 256 MiB"
            )));
        }
        let logical = u32_at(get(META_LOGICAL_SECTOR_SIZE, "logical sector size", 4)?, 0);
        let physical = u32_at(
            get(META_PHYSICAL_SECTOR_SIZE, "physical sector size", 4)?,
            0,
        );
        for (name, v) in [("logical", logical), ("physical", physical)] {
            if v != 512 && v != 4096 {
                return Err(bad(format!("{name} sector size {v} (512 or 4096 only)")));
            }
        }
        let virtual_size = u64_at(get(META_VIRTUAL_DISK_SIZE, "virtual disk size", 8)?, 0);
        if virtual_size == 0 || virtual_size > MAX_VIRTUAL_SIZE {
            return Err(bad(format!(
                "virtual disk size {virtual_size} (1 byte to 64 TiB)"
            )));
        }
        if !virtual_size.is_multiple_of(u64::from(logical)) {
            return Err(bad(format!(
                "virtual disk size {virtual_size} is not a multiple of the logical sector size {logical}"
            )));
        }
        let disk_id = guid_from_le(get(META_VIRTUAL_DISK_ID, "virtual disk id", 16)?);
        let has_parent = fp_flags & 2 != 0;
        let parent_locator = match item(items, META_PARENT_LOCATOR) {
            Some(it) => Some(ParentLocator::parse(&it.data).map_err(|r| {
                VhdxError::corrupt("parent locator", region_offset + u64::from(it.offset), r)
            })?),
            None => None,
        };
        if has_parent && parent_locator.is_none() {
            return Err(bad("differencing disk without a parent locator".into()));
        }
        Ok(DiskParams {
            block_size,
            leave_block_allocated: fp_flags & 1 != 0,
            has_parent,
            virtual_size,
            disk_id,
            logical_sector_size: logical,
            physical_sector_size: physical,
            parent_locator,
        })
    }

    /// The system items of these parameters, with Hyper-V's flags.
    pub fn to_items(&self) -> Vec<MetadataItem> {
        let mut fp = vec![0u8; 8];
        put_u32(&mut fp, 0, self.block_size);
        put_u32(
            &mut fp,
            4,
            u32::from(self.leave_block_allocated) | (u32::from(self.has_parent) << 1),
        );
        let vd = FLAG_IS_VIRTUAL_DISK | FLAG_IS_REQUIRED;
        let mut items = vec![
            MetadataItem::new(META_FILE_PARAMETERS, FLAG_IS_REQUIRED, fp),
            MetadataItem::new(
                META_VIRTUAL_DISK_SIZE,
                vd,
                self.virtual_size.to_le_bytes().to_vec(),
            ),
            MetadataItem::new(
                META_VIRTUAL_DISK_ID,
                vd,
                self.disk_id.to_bytes_le().to_vec(),
            ),
            MetadataItem::new(
                META_LOGICAL_SECTOR_SIZE,
                vd,
                self.logical_sector_size.to_le_bytes().to_vec(),
            ),
            MetadataItem::new(
                META_PHYSICAL_SECTOR_SIZE,
                vd,
                self.physical_sector_size.to_le_bytes().to_vec(),
            ),
        ];
        if let Some(loc) = &self.parent_locator {
            items.push(MetadataItem::new(
                META_PARENT_LOCATOR,
                FLAG_IS_REQUIRED,
                loc.to_bytes(),
            ));
        }
        items
    }
}
