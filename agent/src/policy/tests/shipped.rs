//! The example policies in `policies/` must parse and compile.

use lupid_common::{access, protocol};

use crate::policy::{Policy, compile};

fn check(name: &str, text: &[u8]) {
    let policy = Policy::parse(name, text).unwrap_or_else(|errors| panic!("{name}: {errors:#?}"));
    let compiled = compile(&policy, 1);
    assert!(compiled.is_ok(), "{name}: {compiled:?}");
}

#[test]
fn coding_agent_policy_valid() {
    check("coding-agent.lp", include_bytes!("../../../../policies/coding-agent.lp"));
}

#[test]
fn demo_policy_valid() {
    check("demo.lp", include_bytes!("../../../../policies/demo.lp"));
}

#[test]
fn p0_policy_valid() {
    check("p0.lp", include_bytes!("../../../../policies/p0.lp"));
}

#[test]
fn browsing_agent_policy_valid() {
    check("browsing-agent.lp", include_bytes!("../../../../policies/browsing-agent.lp"));
}

#[test]
fn data_agent_policy_valid() {
    check("data-agent.lp", include_bytes!("../../../../policies/data-agent.lp"));
}

/// Every `.lp` file in `policies/` has a test above.
#[test]
fn every_shipped_policy_is_checked() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let this = include_str!("shipped.rs");
    for entry in std::fs::read_dir(dir).expect("list policies/") {
        let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
        if std::path::Path::new(&name).extension().is_some_and(|extension| extension == "lp") {
            assert!(this.contains(&format!("\"{name}\"")), "policies/{name} has no test in shipped.rs");
        }
    }
}

fn compiled_shipped(name: &str, text: &[u8]) -> crate::policy::CompiledPolicy {
    let policy = Policy::parse(name, text).unwrap_or_else(|errors| panic!("{name}: {errors:#?}"));
    compile(&policy, 1).unwrap_or_else(|errors| panic!("{name}: {errors:#?}"))
}

#[test]
fn p0_denies_unix_allows_create() {
    let policy = compiled_shipped("p0.lp", include_bytes!("../../../../policies/p0.lp"));
    for name in ["/run/app.sock", "@lupid-test"] {
        assert!(!super::allowed(super::connect_unix(&policy, name)), "{name}");
    }
    let created = super::open(&policy, "/home/agent/new.txt", access::WRITE | access::CREATE);
    assert_eq!(super::rule_name(&policy, created), "allow-files");
    assert!(super::allowed(created));
}

#[test]
fn coding_agent_registry_tcp_only() {
    let policy = compiled_shipped("coding-agent.lp", include_bytes!("../../../../policies/coding-agent.lp"));
    assert!(super::allowed(super::connect_protocol(&policy, "192.0.2.10", 443, protocol::TCP)));
    assert!(!super::allowed(super::connect_protocol(&policy, "192.0.2.10", 443, protocol::UDP)));
    let created = super::open(&policy, "/home/agent/repo/src/new.rs", access::WRITE | access::CREATE);
    assert_eq!(super::rule_name(&policy, created), "write-repo");
}

#[test]
fn coding_agent_credentials_denied() {
    let policy = compiled_shipped("coding-agent.lp", include_bytes!("../../../../policies/coding-agent.lp"));
    for path in [
        "/home/agent/.netrc",
        "/home/agent/.cargo/credentials.toml",
        "/home/agent/.cargo/credentials",
        "/home/agent/.npmrc",
        "/home/agent/.pypirc",
        "/home/agent/.docker/config.json",
        "/home/agent/.config/gh/hosts.yml",
        "/home/agent/.gnupg/private-keys-v1.d/key",
        "/home/agent/.kube/config",
        "/home/agent/.ssh/id_ed25519",
    ] {
        assert!(!super::allowed(super::open(&policy, path, access::READ)), "{path} must not be readable");
    }
}

#[test]
fn coding_agent_cargo_bin_not_writable() {
    // A program written to ~/.cargo/bin could then run under exec-cargo.
    let policy = compiled_shipped("coding-agent.lp", include_bytes!("../../../../policies/coding-agent.lp"));
    let planted = super::open(&policy, "/home/agent/.cargo/bin/evil", access::WRITE | access::CREATE);
    assert!(!super::allowed(planted));
    let cached = super::open(&policy, "/home/agent/.cargo/registry/cache/crate.crate", access::WRITE | access::CREATE);
    assert_eq!(super::rule_name(&policy, cached), "write-cargo-registry");
    assert!(super::allowed(cached));
    let lock = super::open(&policy, "/home/agent/.cargo/.package-cache", access::WRITE | access::CREATE);
    assert!(super::allowed(lock));
}
