//! The manifests in `examples/` are valid Kubernetes objects, and every `pitcrew/wait`
//! container in them has arguments and env settings that `pitcrew-wait` accepts.
//!
//! A broken example is worse than none: people copy them into pod specs.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::CommandFactory as _;
use pitcrew_wait::cli::Args;
use yaml_rust2::{Yaml, YamlLoader};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn text<'a>(yaml: &'a Yaml, key: &str, context: &str) -> &'a str {
    yaml[key]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: `{key}` missing or not a string"))
}

/// The pod template's spec of the workload kinds the examples use.
fn pod_spec<'a>(doc: &'a Yaml, context: &str) -> &'a Yaml {
    let (api, kind) = (text(doc, "apiVersion", context), text(doc, "kind", context));
    let spec = match (api, kind) {
        ("v1", "Pod") => &doc["spec"],
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch/v1", "Job") => {
            &doc["spec"]["template"]["spec"]
        }
        _ => panic!("{context}: unexpected apiVersion/kind {api}/{kind}"),
    };
    if kind == "Job" {
        let policy = text(spec, "restartPolicy", context);
        assert!(
            matches!(policy, "Never" | "OnFailure"),
            "{context}: a Job needs restartPolicy Never or OnFailure"
        );
    }
    if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
        let selector = &doc["spec"]["selector"]["matchLabels"];
        let labels = &doc["spec"]["template"]["metadata"]["labels"];
        let selector = selector
            .as_hash()
            .unwrap_or_else(|| panic!("{context}: selector.matchLabels missing"));
        for (key, value) in selector {
            assert_eq!(
                &labels[key.as_str().unwrap()],
                value,
                "{context}: template labels must match the selector"
            );
        }
    }
    assert!(spec.as_hash().is_some(), "{context}: pod spec missing");
    spec
}

/// Expands `$(VAR)` the way the kubelet does for args, with a placeholder for declared vars.
fn expand(arg: &str, declared: &HashSet<String>, context: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find(')')
            .map_or_else(|| panic!("{context}: unclosed $( in {arg:?}"), |end| start + end);
        let name = &rest[start + 2..end];
        assert!(
            declared.contains(name),
            "{context}: $({name}) in args but no env var {name} declared"
        );
        out.push_str("placeholder");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn check_wait_container(container: &Yaml, context: &str) -> usize {
    let env = container["env"].as_vec().cloned().unwrap_or_default();
    let declared: HashSet<String> = env
        .iter()
        .map(|var| text(var, "name", context).to_owned())
        .collect();
    let mut args: Vec<String> = container["args"]
        .as_vec()
        .unwrap_or_else(|| panic!("{context}: a pitcrew/wait container needs args"))
        .iter()
        .map(|arg| expand(arg.as_str().expect("args are strings"), &declared, context))
        .collect();

    // Env twins: every PITCREW_* variable must be one pitcrew-wait reads. Its value is checked
    // by passing it as the flag it stands for (clap reads env only from this process).
    let command = Args::command();
    for var in &env {
        let name = text(var, "name", context);
        if !name.starts_with("PITCREW_") {
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == name))
            .unwrap_or_else(|| panic!("{context}: {name} is not an env twin of any pitcrew-wait flag"));
        let value = var["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: {name} needs a literal value"));
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{context}: {name} twins a positional"));
        if arg.get_action().takes_values() {
            args.extend([format!("--{long}"), value.to_owned()]);
        } else if !matches!(value, "" | "false" | "0" | "no" | "off") {
            args.push(format!("--{long}"));
        }
    }
    let parsed =
        Args::try_parse_from_args(&args).unwrap_or_else(|err| panic!("{context}: args rejected: {err}"));
    let config = parsed.config().unwrap_or_else(|err| panic!("{context}: {err}"));
    assert!(!config.targets.is_empty(), "{context}: no target");
    config.targets.len()
}

/// Builds `Args` from a container's args without reading this process's environment.
trait ParseFromArgs: Sized {
    fn try_parse_from_args(args: &[String]) -> Result<Self, clap::Error>;
}

impl ParseFromArgs for Args {
    fn try_parse_from_args(args: &[String]) -> Result<Self, clap::Error> {
        use clap::Parser as _;
        Args::try_parse_from(std::iter::once("pitcrew-wait".to_owned()).chain(args.iter().cloned()))
    }
}

#[test]
fn every_example_is_valid_and_its_wait_arguments_parse() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "the issue asks for at least four wait patterns: {files:?}"
    );

    let mut wait_containers = 0;
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let docs = YamlLoader::load_from_str(&source)
            .unwrap_or_else(|err| panic!("{}: invalid YAML: {err}", file.display()));
        assert!(!docs.is_empty(), "{}: empty", file.display());
        for doc in &docs {
            let name = text(&doc["metadata"], "name", &file.display().to_string());
            let context = format!("{} ({name})", file.display());
            let spec = pod_spec(doc, &context);
            let mut names = HashSet::new();
            for list in ["initContainers", "containers"] {
                for container in spec[list].as_vec().into_iter().flatten() {
                    let container_name = text(container, "name", &context);
                    assert!(
                        names.insert(container_name.to_owned()),
                        "{context}: duplicate container {container_name}"
                    );
                    let image = text(container, "image", &context);
                    if image.starts_with("pitcrew/wait:") {
                        assert_eq!(
                            list, "initContainers",
                            "{context}: wait belongs in initContainers"
                        );
                        check_wait_container(container, &format!("{context} container {container_name}"));
                        wait_containers += 1;
                    }
                }
            }
            assert!(
                spec["containers"].as_vec().is_some_and(|c| !c.is_empty()),
                "{context}: no app container"
            );
        }
    }
    assert!(wait_containers >= files.len(), "every example uses pitcrew/wait");
}
