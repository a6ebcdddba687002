//! The optional on-disk buffer (`--buffer-dir`). (Skeleton: being written.)
