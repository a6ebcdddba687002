//! The follower thread: discovery, reading, rotation. (Skeleton: being written.)

use std::sync::Arc;

use crate::{Event, FileStatus, FollowConfig, FollowError};

/// State shared between the follower thread and its [`crate::FollowControl`]s.
pub(crate) struct Shared {}

impl Shared {
    pub(crate) fn stop(&self) {
        todo!()
    }
    pub(crate) fn finish(&self) {
        todo!()
    }
    pub(crate) fn status(&self) -> Vec<FileStatus> {
        todo!()
    }
}

pub(crate) fn spawn(
    _config: FollowConfig,
) -> Result<(tokio::sync::mpsc::Receiver<Event>, Arc<Shared>), FollowError> {
    todo!()
}
