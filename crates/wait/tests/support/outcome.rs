//! Assertions on one probe attempt's outcome, shared by the probe test files (each includes
//! this file with `#[path]`, as integration tests are separate crates).

use pitcrew_wait::probe::NotReady;

/// The attempt found the target ready; `what` says which case, for the failure message.
#[track_caller]
#[allow(dead_code)] // not every test file that includes this asserts readiness this way
pub fn assert_ready(result: Result<(), NotReady>, what: &str) {
    if let Err(err) = result {
        panic!("{what}: expected ready, got {err:?}");
    }
}

/// The attempt found the target not ready, for a reason containing `contains`; returns it for
/// further checks (its kind, say).
#[track_caller]
pub fn assert_not_ready(result: Result<(), NotReady>, contains: &str) -> NotReady {
    match result {
        Ok(()) => panic!("expected not ready ({contains:?}), got ready"),
        Err(err) => {
            assert!(
                err.reason.contains(contains),
                "reason {:?} lacks {contains:?}",
                err.reason
            );
            err
        }
    }
}
