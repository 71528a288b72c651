//! The layers keep to their own concerns: the domain knows no protobuf, storage or transport; the
//! service core converts nothing to or from gRPC; adapters and the store reach neither the API nor
//! the server. A path written into a file of a layer that must not know it fails this test with
//! the file, the line and the rule, so a leak is caught where it is made. Unit-test modules
//! (from `#[cfg(test)]` on) are not checked.

use std::path::{Path, PathBuf};

/// What one layer (a folder of `src/`) must not name.
struct Rule {
    layer: &'static str,
    why: &'static str,
    forbidden_modules: &'static [&'static str],
    forbidden_crates: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        layer: "domain",
        why: "the domain is linkgate's own vocabulary, free of protobuf, SQL and transports",
        forbidden_modules: &["pb", "api", "app", "server", "cli", "store", "providers", "telemetry"],
        forbidden_crates: &["prost", "tonic", "tonic_types", "sqlx", "axum", "hyper", "reqwest", "linkgate_client"],
    },
    Rule {
        layer: "app",
        why: "the service core works on domain types; the api layer alone converts to and from gRPC",
        forbidden_modules: &["pb", "api", "server", "cli"],
        forbidden_crates: &["prost", "tonic", "tonic_types", "axum", "hyper", "linkgate_client"],
    },
    Rule {
        layer: "providers",
        why: "adapters translate between the domain and a provider's wire format, nothing more",
        forbidden_modules: &["pb", "api", "app", "server", "cli"],
        forbidden_crates: &["prost", "tonic", "tonic_types", "axum", "linkgate_client"],
    },
    Rule {
        layer: "store",
        why: "the store keeps domain types; it knows neither the API nor the providers' wire formats",
        forbidden_modules: &["pb", "api", "app", "server", "cli", "providers"],
        forbidden_crates: &["prost", "tonic", "tonic_types", "axum", "reqwest", "linkgate_client"],
    },
];

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("the layer's folder reads") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Whether `line` names `name` as a path root (`name::…`, or `crate::name` for a module).
fn names(line: &str, prefix: &str, name: &str) -> bool {
    let needle = format!("{prefix}{name}");
    line.match_indices(&needle).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = &line[at + needle.len()..];
        let starts_a_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        let whole_name = after.starts_with("::")
            || (!prefix.is_empty() && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'));
        starts_a_path && whole_name
    })
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for rule in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(rule.layer), &mut files);
        assert!(!files.is_empty(), "src/{} holds no Rust file", rule.layer);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file reads");
            // Unit tests may stand up whatever they test against (an HTTP server, say).
            let production = text.lines().take_while(|line| line.trim() != "#[cfg(test)]");
            for (number, line) in production.enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let modules = rule.forbidden_modules.iter().filter(|m| names(code, "crate::", m));
                let crates = rule.forbidden_crates.iter().filter(|c| names(code, "", c));
                for name in modules.chain(crates) {
                    found.push(format!(
                        "{}:{}: names `{name}`: {}",
                        file.strip_prefix(&src).unwrap_or(&file).display(),
                        number + 1,
                        rule.why
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_layer_names_what_it_must_not_know() {
    let found = violations();
    assert!(found.is_empty(), "layer leaks:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_a_leak_when_there_is_one() {
    assert!(names("use crate::pb::ErrorReason;", "crate::", "pb"));
    assert!(names("    let x = crate::api::convert::f();", "crate::", "api"));
    assert!(names("use tonic::Status;", "", "tonic"));
    assert!(names("fn f() -> prost::Message {", "", "prost"));
    assert!(!names("use crate::pbx::Thing;", "crate::", "pb"));
    assert!(!names("use crate::application::X;", "crate::", "app"));
    assert!(!names("use tonic_types::StatusExt;", "", "tonic"));
    assert!(!names("use crate::store_helpers::x;", "crate::", "store"));
}
