//! The loop's behaviour with a counting fake in place of the actions, on tokio's paused clock:
//! debounce, retries and their backoff, supersession, resync, the state file, shutdown.
//!
//! Log lines are checked by the binary tests, not here: tracing decides per call site whether
//! anyone listens, and with tests on parallel threads a thread-local capture misses lines
//! (tried: the resync test lost its "change found by resync" line about one run in five).
//!
//! The file events are real (inotify on temp dirs, the kubelet's swap from the testkit). They
//! come from notify's own thread in real time while the test's clock is virtual, so the tests
//! wait for conditions with [`until`], which lets real time pass (for the events to arrive)
//! and virtual time advance (for debounces and retries to fire) by turns, with a deadline.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pitcrew_core::admin::AdminState;
use pitcrew_core::shutdown::{Shutdown, ShutdownTrigger};
use pitcrew_testkit::configmap::ConfigMapVolume;
use tokio::time::Instant;

use super::{Reloader, run_with};
use crate::action::ActionError;
use crate::hash::{self, Scope};
use crate::metrics::Metrics;
use crate::render::{RenderPair, Renderer};
use crate::{Config, Outcome};

/// One run of the fake actions.
#[derive(Debug, Clone)]
struct Run {
    at: Instant,
    hash: String,
    /// The render output's content when the actions ran, if one was asked for.
    output: Option<String>,
}

#[derive(Default)]
struct FakeState {
    runs: Vec<Run>,
    /// Results of the next runs (`false`: fail); then success.
    script: VecDeque<bool>,
    /// Every run fails.
    always_fail: bool,
    /// Every run takes this long (virtual time).
    takes: Duration,
    /// Every run hangs forever.
    hang: bool,
}

/// Counting actions: records each run, fails as scripted.
#[derive(Clone, Default)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    empty: bool,
    read_output: Option<std::path::PathBuf>,
}

impl Fake {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn runs(&self) -> Vec<Run> {
        self.lock().runs.clone()
    }

    fn count(&self) -> usize {
        self.lock().runs.len()
    }
}

impl Reloader for Fake {
    fn is_empty(&self) -> bool {
        self.empty
    }

    fn describe(&self) -> Vec<String> {
        vec!["fake action".to_owned()]
    }

    fn run(&self, hash: &str) -> impl Future<Output = Result<Vec<String>, ActionError>> {
        let fake = self.clone();
        let hash = hash.to_owned();
        async move {
            let output = fake
                .read_output
                .as_ref()
                .map(|path| std::fs::read_to_string(path).unwrap_or_default());
            let (ok, takes, hang) = {
                let mut state = fake.lock();
                state.runs.push(Run {
                    at: Instant::now(),
                    hash,
                    output,
                });
                let scripted = state.script.pop_front();
                (
                    !state.always_fail && scripted.unwrap_or(true),
                    state.takes,
                    state.hang,
                )
            };
            if hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(takes).await;
            if ok {
                Ok(vec!["fake action → ok".to_owned()])
            } else {
                Err(ActionError {
                    action: "fake action".to_owned(),
                    message: "scripted failure".to_owned(),
                })
            }
        }
    }
}

/// A loop under test: its config parts, and what the test reads back.
struct Harness {
    fake: Fake,
    metrics: Metrics,
    admin: AdminState,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
}

impl Harness {
    fn new(fake: Fake) -> Harness {
        let (metrics, registry) = Metrics::new();
        let (trigger, shutdown) = Shutdown::manual();
        Harness {
            fake,
            metrics,
            admin: AdminState::new(registry),
            trigger,
            shutdown,
        }
    }

    /// Runs the loop for `config` while `body` runs; then stops it (SIGTERM) and checks that
    /// it ended with `Stopped(15)`.
    async fn run(&self, config: Config<Fake>, renderer: Renderer, body: impl Future<Output = ()>) {
        let looping = run_with(
            config,
            renderer,
            (self.metrics.clone(), self.admin.clone()),
            None,
            self.shutdown.clone(),
        );
        tokio::pin!(looping);
        // The loop first: its first poll runs its whole start-up (watcher, first hash), so
        // whatever the body changes comes after.
        tokio::select! {
            biased;
            result = &mut looping => panic!("the loop ended on its own: {result:?}"),
            () = body => {}
        }
        self.trigger.trigger(15);
        let result = tokio::time::timeout(Duration::from_secs(5), looping)
            .await
            .expect("the loop did not stop at SIGTERM");
        assert_eq!(result.unwrap(), Outcome::Stopped(15));
    }
}

fn no_render() -> Renderer {
    Renderer::new(Vec::new(), Vec::new())
}

fn config(watch: &Path, fake: &Fake) -> Config<Fake> {
    let mut config = Config::new(vec![watch.to_owned()], fake.clone());
    config.debounce = Duration::from_millis(300);
    config
}

/// The hash the loop computes for `root` now.
fn hex_of(root: &Path) -> String {
    hash::snapshot(Scope {
        roots: &[root.to_owned()],
        recursive: false,
        exclude: &[],
    })
    .hex()
}

/// Waits until `done` holds: real time passes (notify's thread delivers events) and virtual
/// time advances (timers fire) by turns. Panics after 60 real seconds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not happen");
        std::thread::sleep(Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets `virtual_time` pass the same way, for "and nothing else happens" checks.
async fn settle(virtual_time: Duration) {
    let end = Instant::now() + virtual_time;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_fifty_swaps_is_one_reload_of_the_last_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "v0")]);
    let harness = Harness::new(Fake::default());
    let fake = harness.fake.clone();
    harness
        .run(config(&root, &fake), no_render(), async {
            settle(Duration::from_secs(1)).await;
            assert_eq!(fake.count(), 0, "no reload at start without --initial");
            for version in 1..=50 {
                volume.update_texts(&[("a.conf", &format!("v{version}")), ("b.conf", "same")]);
            }
            until("a reload", || fake.count() >= 1).await;
            settle(Duration::from_secs(5)).await;
            let runs = fake.runs();
            assert_eq!(runs.len(), 1, "{runs:?}");
            assert_eq!(runs[0].hash, hex_of(&root));
            assert!(harness.metrics.events() >= 50, "{}", harness.metrics.events());
            assert_eq!(harness.metrics.changes(), 1);
            assert_eq!(harness.metrics.reloads("ok"), 1);
            assert!(harness.admin.is_ready() && harness.admin.is_live());
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn swaps_to_identical_content_and_touches_reload_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "same"), ("b.conf", "also")]);
    let harness = Harness::new(Fake::default());
    let fake = harness.fake.clone();
    harness
        .run(config(&root, &fake), no_render(), async {
            for _ in 0..5 {
                volume.update_texts(&[("b.conf", "also"), ("a.conf", "same")]);
            }
            let file = std::fs::File::options()
                .append(true)
                .open(volume.payload_dir().join("a.conf"))
                .unwrap();
            file.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
            drop(file);
            until("the events", || harness.metrics.events() >= 5).await;
            settle(Duration::from_secs(5)).await;
            assert_eq!(fake.count(), 0);
            assert_eq!(harness.metrics.changes(), 0);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_reload_is_retried_with_doubling_pauses_up_to_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let _volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "x")]);
    let fake = Fake::default();
    fake.lock().script = [false; 7].into_iter().collect();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    config.retry_first_delay = Duration::from_secs(1);
    config.retry_max_delay = Duration::from_secs(8);
    harness
        .run(config, no_render(), async {
            until("the first attempt to fail", || {
                harness.metrics.reloads("failed") == 1
            })
            .await;
            assert!(
                !harness.admin.is_ready(),
                "--initial: not ready before a reload worked"
            );
            until("the eighth attempt", || fake.count() == 8).await;
            until("its success", || harness.metrics.reloads("ok") == 1).await;
            assert!(harness.admin.is_ready());
            let runs = fake.runs();
            let gaps: Vec<Duration> = runs.windows(2).map(|pair| pair[1].at - pair[0].at).collect();
            let expected = [1, 2, 4, 8, 8, 8, 8];
            for (gap, seconds) in gaps.iter().zip(expected) {
                let base = Duration::from_secs(seconds);
                // Jitter lengthens a pause by up to 20 %; `until` steps 50ms at a time.
                assert!(
                    *gap >= base && *gap <= base * 6 / 5 + Duration::from_millis(100),
                    "pauses {gaps:?}, expected about {expected:?}"
                );
            }
            assert!(runs.iter().all(|run| run.hash == runs[0].hash));
            assert_eq!(harness.metrics.reloads("failed"), 7);
            settle(Duration::from_secs(30)).await;
            assert_eq!(fake.count(), 8, "no retry after the success");
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_newer_change_supersedes_the_retry_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "broken")]);
    let fake = Fake::default();
    fake.lock().script = [false].into_iter().collect();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    // A retry this far away cannot be what runs next.
    config.retry_first_delay = Duration::from_secs(600);
    config.retry_max_delay = Duration::from_secs(600);
    harness
        .run(config, no_render(), async {
            until("the failure", || harness.metrics.reloads("failed") == 1).await;
            let changed_at = Instant::now();
            volume.update_texts(&[("a.conf", "fixed")]);
            until("the reload of the fix", || fake.count() == 2).await;
            let runs = fake.runs();
            assert_eq!(runs[1].hash, hex_of(&root));
            assert_ne!(runs[1].hash, runs[0].hash);
            assert!(runs[1].at - changed_at < Duration::from_secs(10), "{runs:?}");
            until("its success", || harness.metrics.reloads("ok") == 1).await;
            settle(Duration::from_secs(5)).await;
            assert_eq!(fake.count(), 2, "the superseded content is not retried");
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_change_during_a_reload_is_reloaded_right_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one")]);
    let fake = Fake::default();
    fake.lock().takes = Duration::from_secs(20);
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    harness
        .run(config, no_render(), async {
            until("the first reload to start", || fake.count() == 1).await;
            volume.update_texts(&[("a.conf", "two")]);
            until("the change to be seen", || harness.metrics.changes() == 1).await;
            assert_eq!(fake.count(), 1, "one reload at a time");
            until("the second reload", || fake.count() == 2).await;
            let runs = fake.runs();
            assert!(runs[1].at - runs[0].at >= Duration::from_secs(20), "{runs:?}");
            assert_eq!(runs[1].hash, hex_of(&root));
            until("both to succeed", || harness.metrics.reloads("ok") == 2).await;
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_render_step_runs_before_the_actions_with_the_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let output = dir.path().join("app.conf");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("app.conf.tmpl", "port ${PORT} v1\n")]);
    let fake = Fake {
        read_output: Some(output.clone()),
        ..Fake::default()
    };
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    let pairs = vec![RenderPair {
        template: root.join("app.conf.tmpl"),
        output: output.clone(),
    }];
    config.renders.clone_from(&pairs);
    let renderer = Renderer::new(pairs, [("PORT".into(), "8080".into())]);
    harness
        .run(config, renderer, async {
            until("the render at start", || output.exists()).await;
            assert_eq!(std::fs::read_to_string(&output).unwrap(), "port 8080 v1\n");
            assert_eq!(fake.count(), 0);
            volume.update_texts(&[("app.conf.tmpl", "port ${PORT} v2\n")]);
            until("the reload", || fake.count() == 1).await;
            assert_eq!(fake.runs()[0].output.as_deref(), Some("port 8080 v2\n"));
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_broken_template_is_a_failed_reload_and_its_fix_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let output = dir.path().join("app.conf");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("t", "ok ${A}\n")]);
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    let pairs = vec![RenderPair {
        template: root.join("t"),
        output: output.clone(),
    }];
    config.renders.clone_from(&pairs);
    let renderer = Renderer::new(pairs, [("A".into(), "a".into())]);
    harness
        .run(config, renderer, async {
            until("the render at start", || output.exists()).await;
            volume.update_texts(&[("t", "broken ${A\n")]);
            until("the failed reload", || harness.metrics.reloads("failed") == 1).await;
            assert_eq!(fake.count(), 0, "no action after a failed render");
            assert_eq!(
                std::fs::read_to_string(&output).unwrap(),
                "ok a\n",
                "the last good output stays"
            );
            volume.update_texts(&[("t", "fixed ${A}\n")]);
            until("the reload of the fix", || fake.count() == 1).await;
            assert_eq!(std::fs::read_to_string(&output).unwrap(), "fixed a\n");
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_state_file_skips_an_applied_initial_reload_and_catches_a_change_made_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let state = dir.path().join("state");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one")]);

    // First start, --initial: reloads, and remembers.
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut first = config(&root, &fake);
    first.initial = true;
    first.state_file = Some(state.clone());
    harness
        .run(first, no_render(), async {
            until("the initial reload", || harness.metrics.reloads("ok") == 1).await;
        })
        .await;
    assert!(std::fs::read_to_string(&state).unwrap().contains(&hex_of(&root)));

    // Restart with the same content: nothing to do, ready at once.
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut again = config(&root, &fake);
    again.initial = true;
    again.state_file = Some(state.clone());
    harness
        .run(again, no_render(), async {
            until("readiness", || harness.admin.is_ready()).await;
            settle(Duration::from_secs(3)).await;
            assert_eq!(fake.count(), 0, "already applied");
        })
        .await;

    // Changed while the sidecar was down: reloaded at start even without --initial.
    volume.update_texts(&[("a.conf", "two")]);
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut after = config(&root, &fake);
    after.state_file = Some(state.clone());
    harness
        .run(after, no_render(), async {
            until("the reload of the change made while down", || fake.count() == 1).await;
            until("the state file to follow", || {
                std::fs::read_to_string(&state).is_ok_and(|text| text.contains(&hex_of(&root)))
            })
            .await;
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_state_file_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let state = dir.path().join("state");
    let _volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one")]);
    std::fs::write(&state, b"\0\xffgarbage").unwrap();
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    config.state_file = Some(state.clone());
    harness
        .run(config, no_render(), async {
            until("the initial reload", || harness.metrics.reloads("ok") == 1).await;
        })
        .await;
    assert!(std::fs::read_to_string(&state).unwrap().contains(&hex_of(&root)));
}

#[tokio::test(start_paused = true)]
async fn without_a_state_file_the_baseline_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let state = dir.path().join("state");
    let _volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one")]);
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.state_file = Some(state.clone());
    harness
        .run(config, no_render(), async {
            until("the baseline", || state.exists()).await;
            assert!(std::fs::read_to_string(&state).unwrap().contains(&hex_of(&root)));
            assert_eq!(fake.count(), 0);
            assert!(harness.admin.is_ready());
        })
        .await;
}

/// The watcher cannot see a change made behind a symlink that leads out of the watched
/// directory (inotify reports changes to the directory's entries, not to files elsewhere that
/// they point at): the resync finds it, reloads, and re-creates the watcher.
#[tokio::test(start_paused = true)]
async fn the_resync_finds_a_change_the_watcher_missed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("app.conf"), "one").unwrap();
    std::os::unix::fs::symlink(outside.join("app.conf"), root.join("app.conf")).unwrap();
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.resync = Duration::from_secs(30);
    harness
        .run(config, no_render(), async {
            settle(Duration::from_secs(1)).await;
            let started = Instant::now();
            std::fs::write(outside.join("app.conf"), "two").unwrap();
            until("the resync's reload", || fake.count() == 1).await;
            assert!(
                started.elapsed() >= Duration::from_secs(20),
                "found by the resync, not an event"
            );
            assert_eq!(harness.metrics.resyncs("changed"), 1);
            assert_eq!(harness.metrics.events(), 0);
            assert!(harness.admin.is_live(), "re-created: live");
            until("a quiet resync", || harness.metrics.resyncs("unchanged") >= 1).await;
            assert_eq!(fake.count(), 1);
        })
        .await;
}

/// Regression (seen by the reload benchmark): a resync that fell inside a debounce re-hashed at
/// once and reloaded before the burst was over, so one burst could give two reloads.
#[tokio::test(start_paused = true)]
async fn a_resync_during_a_debounce_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("app.conf", "one")]);
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.debounce = Duration::from_secs(10);
    config.resync = Duration::from_secs(2);
    harness
        .run(config, no_render(), async {
            settle(Duration::from_secs(1)).await;
            let started = Instant::now();
            volume.update_texts(&[("app.conf", "two")]);
            until("the reload", || fake.count() == 1).await;
            assert!(
                started.elapsed() >= Duration::from_secs(9),
                "reloaded {:?} after the swap: a resync cut the 10 s debounce short",
                started.elapsed()
            );
            settle(Duration::from_secs(5)).await;
            assert_eq!(fake.count(), 1);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_path_that_appears_later_is_waited_for_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not-yet/config");
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    harness
        .run(config(&root, &fake), no_render(), async {
            until("readiness", || harness.admin.is_ready()).await;
            assert!(harness.admin.is_live(), "waiting is not dead");
            settle(Duration::from_secs(2)).await;
            let _volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "x")]);
            until("the reload for the new content", || fake.count() == 1).await;
            assert_eq!(fake.runs()[0].hash, hex_of(&root));
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_and_recreated_directory_keeps_being_watched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a.conf"), "one").unwrap();
    let fake = Fake::default();
    let harness = Harness::new(fake.clone());
    harness
        .run(config(&root, &fake), no_render(), async {
            settle(Duration::from_secs(1)).await;
            std::fs::remove_dir_all(&root).unwrap();
            until("the reload for the deletion", || fake.count() == 1).await;
            std::fs::create_dir(&root).unwrap();
            std::fs::write(root.join("a.conf"), "two").unwrap();
            until("the reload for the new directory", || fake.count() == 2).await;
            // The new directory is watched, not only its parent.
            std::fs::write(root.join("a.conf"), "three").unwrap();
            until("a reload for a write inside it", || fake.count() == 3).await;
            assert_eq!(fake.runs()[2].hash, hex_of(&root));
            assert_eq!(harness.metrics.resyncs("changed"), 0, "all seen by events");
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn sigterm_ends_the_loop_at_once_even_during_a_hanging_reload() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let _volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "x")]);
    let fake = Fake::default();
    fake.lock().hang = true;
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    // `run` asserts the Stopped(15) outcome within 5 (virtual) seconds of the signal.
    harness
        .run(config, no_render(), async {
            until("the hanging reload", || fake.count() == 1).await;
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn without_any_action_changes_are_only_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one")]);
    let fake = Fake {
        empty: true,
        ..Fake::default()
    };
    let harness = Harness::new(fake.clone());
    let mut config = config(&root, &fake);
    config.initial = true;
    harness
        .run(config, no_render(), async {
            until("readiness", || harness.admin.is_ready()).await;
            volume.update_texts(&[("a.conf", "two")]);
            until("the change", || harness.metrics.changes() == 1).await;
            settle(Duration::from_secs(2)).await;
            assert_eq!(fake.count(), 0);
            assert_eq!(
                harness.metrics.reloads("ok") + harness.metrics.reloads("failed"),
                0
            );
        })
        .await;
}
