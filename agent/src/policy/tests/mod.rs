//! Unit tests of the policy parser, compiler and the decisions that follow
//! from the compiled maps.

mod decide_net;
mod decide_path;
mod decide_rename;
mod errors;
mod fuzz;
mod leases;
mod maps;
mod parse;
mod shipped;

use std::net::IpAddr;

use lupid_common::decide::Decision;
use lupid_common::{access, protocol, reason, verdict};

use super::reference::{PathHook, decide_connect_reference, decide_path_reference};
use super::{CompiledPolicy, Policy, compile};

/// The example from the format reference.
const EXAMPLE: &str = "\
# Comments start with '#'. Blank lines ignored.
lupid-policy 1                    # first non-comment line: format and version
default deny                      # verdict when no rule matches: allow | deny

# RULE-ID: VERDICT HOOK OBJECT [ACCESS]
deny-secrets:  deny  open    /srv/secrets/**   read,write
allow-reads:   allow open    /**               read
deny-curl:     deny  exec    /usr/bin/curl
allow-usr-bin: allow exec    /usr/bin/**
allow-local:   allow connect 127.0.0.1/32:8080
allow-dns6:    allow connect [2001:db8::/32]:53
deny-meta:     deny  connect 169.254.169.254:*
allow-range:   allow connect 10.0.0.0/8:8000-8999
";

/// Parses a policy that must be valid.
fn parse_ok(text: &str) -> Policy {
    match Policy::parse("test.lp", text.as_bytes()) {
        Ok(policy) => policy,
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

/// Parses a policy that must be invalid and returns its errors as text.
fn parse_errors(text: &str) -> Vec<String> {
    match Policy::parse("test.lp", text.as_bytes()) {
        Ok(policy) => panic!("policy parsed but should not: {policy:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Builds a valid policy from rule lines under `default deny`.
fn with_rules(rules: &str) -> String {
    format!("lupid-policy 1\ndefault deny\n{rules}")
}

fn compiled(text: &str) -> CompiledPolicy {
    match compile(&parse_ok(text), 7) {
        Ok(compiled) => compiled,
        Err(errors) => panic!("unexpected compile errors: {errors:#?}"),
    }
}

fn exec(compiled: &CompiledPolicy, path: &str) -> Decision {
    decide_path_reference(compiled, PathHook::Exec, path.as_bytes(), 0)
}

fn open(compiled: &CompiledPolicy, path: &str, bits: u32) -> Decision {
    decide_path_reference(compiled, PathHook::Open, path.as_bytes(), bits)
}

fn read(compiled: &CompiledPolicy, path: &str) -> Decision {
    open(compiled, path, access::READ)
}

fn write(compiled: &CompiledPolicy, path: &str) -> Decision {
    open(compiled, path, access::WRITE)
}

/// Decides a TCP connect.
fn connect(compiled: &CompiledPolicy, addr: &str, port: u16) -> Decision {
    connect_protocol(compiled, addr, port, protocol::TCP)
}

/// Decides a connect or send on a socket of IP protocol `protocol`.
fn connect_protocol(compiled: &CompiledPolicy, addr: &str, port: u16, protocol: u16) -> Decision {
    let addr: IpAddr = addr.parse().expect("test address");
    decide_connect_reference(compiled, addr, port, protocol)
}

/// Decides a connect to the Unix socket bound to `name`.
fn connect_unix(compiled: &CompiledPolicy, name: &str) -> Decision {
    decide_path_reference(compiled, PathHook::UnixConnect, name.as_bytes(), 0)
}

/// Returns the name of the rule behind a decision, or "default".
fn rule_name(compiled: &CompiledPolicy, decision: Decision) -> &str {
    if decision.reason == reason::DEFAULT {
        return "default";
    }
    let index = usize::try_from(decision.rule_id).expect("rule id") - 1;
    &compiled.rule_names[index]
}

fn allowed(decision: Decision) -> bool {
    decision.verdict == verdict::ALLOW
}
