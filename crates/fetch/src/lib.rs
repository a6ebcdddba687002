//! pitcrew-fetch: downloads files into a volume so that they only ever appear complete and
//! verified (checksum, size, content type), retrying and resuming on the way, and unpacks
//! archives without letting an entry escape the target directory.
//!
//! Module map: `extract` unpacks a verified archive; `s3` turns `s3://bucket/key` and the
//! standard AWS environment into signed requests.

pub mod extract;
pub mod s3;
