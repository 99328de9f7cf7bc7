//! Connect destinations: `IPv4[/LEN]:PORTS` or `[IPv6[/LEN]]:PORTS`.
//!
//! PORTS is `*` (every port, 0 included), one port `N` or a range `N-M`,
//! with ports from 1 to 65535. An address without `/LEN` is a single host.
//! IPv4 prefixes are returned IPv4-mapped (`::ffff:a.b.c.d`, length + 96),
//! as the kernel trie stores them. The optional protocol field after the
//! destination is parsed by the line parser.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::TokenError;
use crate::policy::{NetPattern, Protocol, format_prefix, prefix_mask};

const EXAMPLES: &str = "e.g. 127.0.0.1:8080, 10.0.0.0/8:* or [2001:db8::/32]:443";

/// Parses one connect destination token, for every protocol.
pub(super) fn parse_destination(token: &str) -> Result<NetPattern, TokenError> {
    let (host, ports, ports_offset) = split_host_ports(token)?;
    let (network, prefix_len) =
        if token.starts_with('[') { parse_ipv6_prefix(host, 1)? } else { parse_ipv4_prefix(host)? };
    let (port_lo, port_hi) = parse_ports(ports)
        .map_err(|error| TokenError { offset: ports_offset + error.offset, message: error.message })?;
    Ok(NetPattern { network, prefix_len, port_lo, port_hi, protocol: Protocol::Any })
}

/// Splits a token into the address part, the ports part and the byte offset
/// of the ports part.
fn split_host_ports(token: &str) -> Result<(&str, &str, usize), TokenError> {
    if let Some(bracketed) = token.strip_prefix('[') {
        let Some(close) = bracketed.find(']') else {
            return Err(TokenError::new(
                0,
                format!("missing ] in \"{token}\": write an IPv6 destination as [ADDRESS/LEN]:PORTS, {EXAMPLES}"),
            ));
        };
        let after = &bracketed[close + 1..];
        let Some(ports) = after.strip_prefix(':') else {
            return Err(TokenError::new(
                close + 2,
                format!("missing :PORTS after ] in \"{token}\": write e.g. [::1]:443 or [::1]:*"),
            ));
        };
        return Ok((&bracketed[..close], ports, close + 3));
    }

    match token.split_once(':') {
        Some((host, ports)) if !ports.contains(':') => Ok((host, ports, host.len() + 1)),
        Some(_) => Err(TokenError::new(
            0,
            format!("IPv6 destination \"{token}\" must be in brackets: write [ADDRESS/LEN]:PORTS, e.g. [::1]:443"),
        )),
        None => Err(TokenError::new(
            token.len(),
            format!("missing :PORTS after \"{token}\": write ADDRESS:PORTS, {EXAMPLES}"),
        )),
    }
}

fn parse_ipv4_prefix(host: &str) -> Result<(Ipv6Addr, u8), TokenError> {
    let (address, length) = split_length(host);
    let Ok(v4) = address.parse::<Ipv4Addr>() else {
        return Err(TokenError::new(
            0,
            format!("invalid IPv4 address \"{address}\": rules take IP addresses, not host names, {EXAMPLES}"),
        ));
    };
    let prefix_len = match length {
        None => 32,
        Some(text) => parse_length(text, 32, address.len() + 1)?,
    };
    let network = v4.to_ipv6_mapped();
    check_host_bits(network, prefix_len + 96, 0)?;
    Ok((network, prefix_len + 96))
}

/// Parses the inside of `[...]`; `offset` is where it starts in the token.
fn parse_ipv6_prefix(host: &str, offset: usize) -> Result<(Ipv6Addr, u8), TokenError> {
    let (address, length) = split_length(host);
    let Ok(network) = address.parse::<Ipv6Addr>() else {
        let hint = if address.parse::<Ipv4Addr>().is_ok() {
            "write IPv4 addresses without brackets, e.g. 10.0.0.1:443"
        } else {
            "expected e.g. [2001:db8::1]:443 or [2001:db8::/32]:*"
        };
        return Err(TokenError::new(offset, format!("invalid IPv6 address \"{address}\": {hint}")));
    };
    let prefix_len = match length {
        None => 128,
        Some(text) => parse_length(text, 128, offset + address.len() + 1)?,
    };
    check_host_bits(network, prefix_len, offset)?;
    Ok((network, prefix_len))
}

fn split_length(host: &str) -> (&str, Option<&str>) {
    match host.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (host, None),
    }
}

/// Parses a prefix length of at most `max`; `offset` is where it starts.
fn parse_length(text: &str, max: u8, offset: usize) -> Result<u8, TokenError> {
    match parse_decimal(text) {
        Some(length) if length <= u32::from(max) => Ok(u8::try_from(length).unwrap_or(max)),
        _ => {
            Err(TokenError::new(offset, format!("invalid prefix length \"{text}\": expected a number from 0 to {max}")))
        }
    }
}

fn check_host_bits(network: Ipv6Addr, prefix_len: u8, offset: usize) -> Result<(), TokenError> {
    let bits = u128::from(network);
    let masked = bits & prefix_mask(prefix_len);
    if masked == bits {
        return Ok(());
    }
    let written = format_prefix(network, prefix_len);
    let fixed = format_prefix(Ipv6Addr::from(masked), prefix_len);
    Err(TokenError::new(
        offset,
        format!("{written} has host bits set past its prefix length: write the network address, {fixed}"),
    ))
}

/// Parses `*`, `N` or `N-M` into an inclusive range.
fn parse_ports(text: &str) -> Result<(u16, u16), TokenError> {
    if text == "*" {
        return Ok((0, u16::MAX));
    }
    let Some((lo_text, hi_text)) = text.split_once('-') else {
        let port = parse_port(text, 0)?;
        return Ok((port, port));
    };
    let lo = parse_port(lo_text, 0)?;
    let hi = parse_port(hi_text, lo_text.len() + 1)?;
    if lo > hi {
        return Err(TokenError::new(
            0,
            format!("invalid port range {text}: the first port must not exceed the second, write {hi}-{lo}"),
        ));
    }
    Ok((lo, hi))
}

fn parse_port(text: &str, offset: usize) -> Result<u16, TokenError> {
    match parse_decimal(text).map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Ok(port),
        _ => Err(TokenError::new(
            offset,
            format!("invalid port \"{text}\": expected * for every port, a port from 1 to 65535 or a range N-M"),
        )),
    }
}

/// Parses a short string of ASCII digits; `u32::from_str` alone would also
/// take a leading `+`.
fn parse_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
