//! Random input never makes the parser or the compiler panic.

use crate::policy::{Policy, compile};

/// A small deterministic generator (xorshift64), so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).expect("bound fits u64")).expect("index fits usize")
    }
}

fn parse_and_compile(text: &[u8]) {
    if let Ok(policy) = Policy::parse("fuzz.lp", text) {
        let _ = compile(&policy, 3);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut random = Random(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let length = random.below(300);
        let text: Vec<u8> = (0..length).map(|_| random.next().to_le_bytes()[0]).collect();
        parse_and_compile(&text);
    }
}

#[test]
fn random_tokens_never_panic() {
    const PIECES: &[&str] = &[
        "lupid-policy",
        "1",
        "default",
        "deny",
        "allow",
        "r:",
        "x:",
        "exec",
        "open",
        "connect",
        "read",
        "write",
        "read,write",
        "create",
        "write,create",
        "tcp",
        "udp",
        "unix:",
        "unix:/a",
        "unix:/a/**",
        "unix:@a",
        "@",
        ",",
        "/",
        "/**",
        "/a",
        "/a/**",
        "//",
        "/.",
        "..",
        "*",
        "?",
        "#",
        ":",
        "[",
        "]",
        "::1",
        "[::/0]",
        "10.0.0.0/8",
        "/8",
        "/129",
        ":*",
        ":0",
        ":65535",
        "-",
        "80-90",
        "é",
        "\t",
        " ",
        " ",
        "\n",
        "\n",
        "\r",
        "\0",
        "\u{7f}",
    ];
    let mut random = Random(0x0dd_ba11_cafe_f00d);
    for _ in 0..3000 {
        let mut text = String::from("lupid-policy 1\ndefault deny\n");
        for _ in 0..random.below(60) {
            text.push_str(PIECES[random.below(PIECES.len())]);
        }
        parse_and_compile(text.as_bytes());
    }
}

#[test]
fn mutated_example_never_panics() {
    let mut random = Random(0xfeed_face_0bad_c0de);
    for _ in 0..3000 {
        let mut text = super::EXAMPLE.as_bytes().to_vec();
        for _ in 0..=random.below(4) {
            let at = random.below(text.len());
            text[at] = random.next().to_le_bytes()[0];
        }
        parse_and_compile(&text);
    }
}
