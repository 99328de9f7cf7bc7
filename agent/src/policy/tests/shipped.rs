//! The example policies in `policies/` must parse and compile.

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
