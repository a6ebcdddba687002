//! The stdout sink (`kubectl logs` shows what it writes). (Skeleton: being written.)
