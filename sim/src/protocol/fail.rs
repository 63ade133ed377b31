//! A failure as the protocols carry it back to their caller.

use crate::scenario::{FailureClass, Hresult};

/// A failure as it travels back to the requester: the real code, an event ID when
/// Hyper-V raises one, the side it happened on (F5.T) and a human text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    pub code: Hresult,
    pub event: Option<u32>,
    pub class: FailureClass,
    pub detail: String,
}

impl Fail {
    pub fn new(code: Hresult, class: FailureClass, detail: impl Into<String>) -> Self {
        Fail {
            code,
            event: None,
            class,
            detail: detail.into(),
        }
    }

    pub fn with_event(mut self, id: u32) -> Self {
        self.event = Some(id);
        self
    }
}
