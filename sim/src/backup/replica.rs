//! The server's replica of one VM: the last state of its disks' images, the change
//! tracking reference points the next incremental starts from, and whether it is flagged
//! inconsistent (R17).

use hvsim_engine::rct::RefPoint;

use crate::protocol::hyperv::migration::Placement;
use crate::world::SparseImage;

#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub images: Vec<SparseImage>,
    /// Per disk: the RCT reference point of the last point's consistency point.
    pub baseline: Vec<Option<RefPoint>>,
    /// Why the replica is flagged inconsistent (R17), if it is.
    pub inconsistent: Option<String>,
    /// Where the last complete transfer found the VM (R11: a later one compares).
    pub placement: Option<Placement>,
}

impl Replica {
    /// F5.T: a transfer of `incoming` broke off half way: each disk holds the first half
    /// of its new pages over what it held. Returns where the last disk was cut.
    pub fn cut_short(&mut self, incoming: &[SparseImage]) -> u64 {
        let mut cut_at = 0;
        for (i, img) in incoming.iter().enumerate() {
            let cut = img.nth_page_offset(img.len_pages() / 2).unwrap_or(0);
            let mut partial = self.images.get(i).cloned().unwrap_or_default();
            partial.copy_range(img, 0, cut);
            if i < self.images.len() {
                self.images[i] = partial;
            } else {
                self.images.push(partial);
            }
            cut_at = cut;
        }
        cut_at
    }
}
