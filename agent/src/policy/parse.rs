//! The line parser: header, default verdict and rule lines.
//!
//! Each line is decoded as UTF-8, its comment is cut off, and the rest is
//! split into tokens at spaces and tabs. A `#` starts a comment at the start
//! of a line or after whitespace, so a `#` inside a path is kept. Columns
//! count characters from 1. The parser keeps going after an error, so one
//! run reports every error in the file.

mod net;
mod path;
mod unix;

use super::{Access, NetPattern, Policy, PolicyError, Position, Protocol, Rule, Target, Verdict, check};

/// Format name and version that must open every policy file.
const HEADER: &str = "lupid-policy";
const VERSION: &str = "1";

/// Maximum rule id length, in bytes.
const RULE_ID_MAX: usize = 64;

/// A problem inside one token; `offset` is a byte offset into the token.
struct TokenError {
    offset: usize,
    message: String,
}

impl TokenError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        Self { offset, message: message.into() }
    }
}

/// A whitespace-separated word of a line and the column of its first
/// character.
#[derive(Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    column: usize,
}

struct Parser<'a> {
    file: &'a str,
    errors: Vec<PolicyError>,
    /// Line of the header, once the first non-empty line has been seen.
    header_line: Option<usize>,
    /// The default verdict and the line that set it.
    default_verdict: Option<(Verdict, usize)>,
    /// Whether any `default` line was seen, valid or not.
    default_line_seen: bool,
    rules: Vec<Rule>,
}

pub(super) fn parse(file: &str, text: &[u8]) -> Result<Policy, Vec<PolicyError>> {
    let mut parser = Parser {
        file,
        errors: Vec::new(),
        header_line: None,
        default_verdict: None,
        default_line_seen: false,
        rules: Vec::new(),
    };
    // Some editors start UTF-8 files with a byte order mark.
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    for (index, raw) in text.split(|&byte| byte == b'\n').enumerate() {
        parser.line(index + 1, raw);
    }

    let Some(header_line) = parser.header_line else {
        let message = "empty policy file: start it with the lines `lupid-policy 1` and `default deny`";
        return Err(vec![PolicyError::new(file, Position { line: 1, column: 1 }, message)]);
    };
    if !parser.default_line_seen {
        parser.error(
            Position { line: header_line, column: 1 },
            "missing default verdict: add a line `default deny` or `default allow` after the header",
        );
    }
    check::check_rules(file, &parser.rules, &mut parser.errors);

    let mut errors = parser.errors;
    if let (true, Some((default_verdict, _))) = (errors.is_empty(), parser.default_verdict) {
        return Ok(Policy { name: file.to_owned(), default_verdict, rules: parser.rules });
    }
    errors.sort_by_key(|error| error.at);
    Err(errors)
}

impl Parser<'_> {
    fn error(&mut self, at: Position, message: impl Into<String>) {
        self.errors.push(PolicyError::new(self.file, at, message));
    }

    fn token_error(&mut self, line: usize, token: Token<'_>, error: &TokenError) {
        let column = token.column + token.text[..error.offset].chars().count();
        self.error(Position { line, column }, error.message.clone());
    }

    fn line(&mut self, line: usize, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(error) => {
                let valid = &raw[..error.valid_up_to()];
                // The prefix is valid UTF-8 by the definition of valid_up_to.
                let column = String::from_utf8_lossy(valid).chars().count() + 1;
                let byte = raw[error.valid_up_to()];
                self.error(
                    Position { line, column },
                    format!("invalid UTF-8 byte 0x{byte:02x}: a policy file must be UTF-8 text"),
                );
                return;
            }
        };
        let content = strip_comment(text);
        if let Some((offset, bad)) = content.char_indices().find(|&(_, c)| c.is_control() && c != '\t') {
            let column = content[..offset].chars().count() + 1;
            self.error(
                Position { line, column },
                format!("invalid character U+{:04X}: a policy line may not contain control characters", u32::from(bad)),
            );
            return;
        }

        let tokens = tokenize(content);
        let Some(first) = tokens.first() else {
            return;
        };
        let at = Position { line, column: first.column };
        if self.header_line.is_none() {
            self.header_line = Some(line);
            if first.text == HEADER {
                self.header(line, &tokens);
                return;
            }
            self.error(at, format!("missing header: the first line of a policy must be `{HEADER} {VERSION}`"));
        }

        match first.text {
            HEADER => self.error(at, format!("duplicate header: `{HEADER}` may appear only on the first line")),
            "default" => self.default_line(line, &tokens),
            word => match word.split_once(':') {
                Some((id, rest)) => self.rule(line, *first, id, rest, &tokens[1..]),
                None => self.error(
                    at,
                    format!(
                        "unknown keyword \"{word}\": expected `default` or a rule `ID: VERDICT HOOK OBJECT [ACCESS]`"
                    ),
                ),
            },
        }
    }

    fn header(&mut self, line: usize, tokens: &[Token<'_>]) {
        match tokens.get(1) {
            None => self.error(end_of(line, tokens), format!("missing format version: write `{HEADER} {VERSION}`")),
            Some(version) if version.text != VERSION => self.error(
                Position { line, column: version.column },
                format!(
                    "unsupported format version \"{}\": this lupid reads version {VERSION}, write `{HEADER} {VERSION}`",
                    version.text
                ),
            ),
            Some(_) => self.extra_tokens(line, &tokens[2..], "the header is `lupid-policy 1`"),
        }
    }

    fn default_line(&mut self, line: usize, tokens: &[Token<'_>]) {
        self.default_line_seen = true;
        let Some(word) = tokens.get(1) else {
            self.error(
                end_of(line, tokens),
                "missing verdict after `default`: write `default deny` or `default allow`",
            );
            return;
        };
        let Some(verdict @ (Verdict::Allow | Verdict::Deny)) = parse_verdict(word.text) else {
            self.error(
                Position { line, column: word.column },
                format!("invalid default verdict \"{}\": expected allow or deny", word.text),
            );
            return;
        };
        self.extra_tokens(line, &tokens[2..], "the line is `default allow` or `default deny`");
        if let Some((_, first_line)) = self.default_verdict {
            self.error(
                Position { line, column: tokens[0].column },
                format!("duplicate default verdict: it is already set on line {first_line}; keep one `default` line"),
            );
            return;
        }
        self.default_verdict = Some((verdict, line));
    }

    /// Parses a rule line. `id` is the `first` token up to its first colon,
    /// `rest` whatever followed the colon in that token, and `tokens` the
    /// tokens after `first`.
    fn rule(&mut self, line: usize, first: Token<'_>, id: &str, rest: &str, tokens: &[Token<'_>]) {
        let errors_before = self.errors.len();
        let id_column = first.column;
        let at = Position { line, column: id_column };
        if !is_valid_rule_id(id) {
            self.error(
                at,
                format!(
                    "invalid rule id \"{id}\": an id is 1 to {RULE_ID_MAX} characters from A-Z a-z 0-9 . _ - \
                     and starts with a letter or digit"
                ),
            );
        }

        // `id:deny` needs no space after the colon: the text after it is the
        // first field.
        let mut fields = Vec::with_capacity(tokens.len() + 1);
        if !rest.is_empty() {
            fields.push(Token { text: rest, column: id_column + id.chars().count() + 1 });
        }
        fields.extend_from_slice(tokens);

        let Some(verdict_token) = fields.first() else {
            self.error(
                end_of(line, &[first]),
                format!("missing verdict after rule id \"{id}\": expected allow, deny, audit or lease"),
            );
            return;
        };
        let verdict = parse_verdict(verdict_token.text);
        if verdict.is_none() {
            self.error(
                Position { line, column: verdict_token.column },
                format!("invalid verdict \"{}\": expected allow, deny, audit or lease", verdict_token.text),
            );
        }

        let Some(hook_token) = fields.get(1) else {
            self.error(end_of(line, &fields), "missing hook: expected exec, open or connect");
            return;
        };
        let target = match hook_token.text {
            "exec" => self.exec_target(line, &fields),
            "open" => self.open_target(line, &fields),
            "connect" => self.connect_target(line, &fields),
            other => {
                self.error(
                    Position { line, column: hook_token.column },
                    format!("invalid hook \"{other}\": expected exec, open or connect"),
                );
                return;
            }
        };

        if let (Some(verdict), Some(target), true) = (verdict, target, self.errors.len() == errors_before) {
            self.rules.push(Rule {
                id: id.to_owned(),
                verdict,
                target,
                at,
                object_at: Position { line, column: fields[2].column },
            });
        }
    }

    /// Parses `exec PATH`; `fields` starts at the verdict.
    fn exec_target(&mut self, line: usize, fields: &[Token<'_>]) -> Option<Target> {
        if let Some(token) = fields.get(2)
            && let Some(content) = parse_content(token.text)
        {
            self.extra_tokens(
                line,
                fields.get(3..).unwrap_or_default(),
                "an exec rule is `ID: VERDICT exec sha256:HEX`",
            );
            return match content {
                Ok(digest) => Some(Target::ExecContent(digest)),
                Err(message) => {
                    self.error(Position { line, column: token.column }, message);
                    None
                }
            };
        }
        let path = self.path_field(line, fields, "exec");
        if let Some(extra) = fields.get(3) {
            self.error(
                Position { line, column: extra.column },
                format!("unexpected \"{}\": exec rules take no access list, remove it", extra.text),
            );
        }
        self.extra_tokens(line, fields.get(4..).unwrap_or_default(), "an exec rule is `ID: VERDICT exec PATH`");
        Some(Target::Exec(path?))
    }

    /// Parses `open PATH ACCESS`; `fields` starts at the verdict.
    fn open_target(&mut self, line: usize, fields: &[Token<'_>]) -> Option<Target> {
        let path = self.path_field(line, fields, "open");
        let Some(access_token) = fields.get(3) else {
            if fields.len() == 3 {
                self.error(end_of(line, fields), format!("missing access for an open rule: {ACCESS_EXPECTED}"));
            }
            return None;
        };
        let access = match parse_access(access_token.text) {
            Ok(access) => Some(access),
            Err(error) => {
                self.token_error(line, *access_token, &error);
                None
            }
        };
        self.extra_tokens(line, &fields[4..], "an open rule is `ID: VERDICT open PATH ACCESS`");
        Some(Target::Open(path?, access?))
    }

    /// Parses `connect DESTINATION [PROTOCOL]` or `connect unix:NAME`;
    /// `fields` starts at the verdict.
    fn connect_target(&mut self, line: usize, fields: &[Token<'_>]) -> Option<Target> {
        let Some(token) = fields.get(2) else {
            self.error(
                end_of(line, fields),
                "missing destination for a connect rule: e.g. 127.0.0.1:8080, 10.0.0.0/8:* udp, [::1]:443 \
                 or unix:/run/app.sock",
            );
            return None;
        };
        if let Some(name) = token.text.strip_prefix(unix::PREFIX) {
            return self.unix_target(line, fields, *token, name);
        }
        let destination = match net::parse_destination(token.text) {
            Ok(destination) => Some(destination),
            Err(error) => {
                self.token_error(line, *token, &error);
                None
            }
        };
        let protocol = match fields.get(3) {
            None => Some(Protocol::Any),
            Some(protocol_token) => match parse_protocol(protocol_token.text) {
                Ok(protocol) => Some(protocol),
                Err(error) => {
                    self.token_error(line, *protocol_token, &error);
                    None
                }
            },
        };
        self.extra_tokens(
            line,
            fields.get(4..).unwrap_or_default(),
            "a connect rule is `ID: VERDICT connect DESTINATION [tcp|udp]`",
        );
        Some(Target::Connect(NetPattern { protocol: protocol?, ..destination? }))
    }

    /// Parses the rest of `connect unix:NAME`; `name` is `token` without
    /// its `unix:`.
    fn unix_target(&mut self, line: usize, fields: &[Token<'_>], token: Token<'_>, name: &str) -> Option<Target> {
        let pattern = match unix::parse_unix_name(name) {
            Ok(pattern) => Some(pattern),
            Err(error) => {
                let error = TokenError::new(unix::PREFIX.len() + error.offset, error.message);
                self.token_error(line, token, &error);
                None
            }
        };
        if let Some(extra) = fields.get(3) {
            self.error(
                Position { line, column: extra.column },
                format!(
                    "unexpected \"{}\": Unix socket rules take no protocol and no access list, remove it",
                    extra.text
                ),
            );
        }
        self.extra_tokens(
            line,
            fields.get(4..).unwrap_or_default(),
            "a Unix socket rule is `ID: VERDICT connect unix:NAME`",
        );
        Some(Target::ConnectUnix(pattern?))
    }

    fn path_field(&mut self, line: usize, fields: &[Token<'_>], hook: &str) -> Option<super::PathPattern> {
        let Some(token) = fields.get(2) else {
            self.error(
                end_of(line, fields),
                format!("missing path for an {hook} rule: e.g. /usr/bin/git for one file or /usr/bin/** for a subtree"),
            );
            return None;
        };
        match path::parse_path(token.text) {
            Ok(path) => Some(path),
            Err(error) => {
                self.token_error(line, *token, &error);
                None
            }
        }
    }

    fn extra_tokens(&mut self, line: usize, extra: &[Token<'_>], form: &str) {
        if let Some(token) = extra.first() {
            self.error(
                Position { line, column: token.column },
                format!("unexpected \"{}\" at the end of the line: {form}", token.text),
            );
        }
    }
}

/// Returns `text` up to its comment, if any.
fn strip_comment(text: &str) -> &str {
    let mut previous = ' ';
    for (offset, c) in text.char_indices() {
        if c == '#' && (previous == ' ' || previous == '\t') {
            return &text[..offset];
        }
        previous = c;
    }
    text
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    for (column, (offset, c)) in text.char_indices().enumerate() {
        let is_space = c == ' ' || c == '\t';
        match (start, is_space) {
            (None, false) => start = Some((offset, column + 1)),
            (Some((begin, begin_column)), true) => {
                tokens.push(Token { text: &text[begin..offset], column: begin_column });
                start = None;
            }
            _ => {}
        }
    }
    if let Some((begin, begin_column)) = start {
        tokens.push(Token { text: &text[begin..], column: begin_column });
    }
    tokens
}

/// Returns the position just past the last token, where a missing field
/// would go.
fn end_of(line: usize, tokens: &[Token<'_>]) -> Position {
    let column = tokens.last().map_or(1, |token| token.column + token.text.chars().count());
    Position { line, column }
}

/// Parses a path the way a rule names it, for a lease's capability.
pub(crate) fn parse_lease_path(text: &str) -> Result<super::PathPattern, String> {
    path::parse_path(text).map_err(|error| error.message)
}

/// Parses a Unix socket name the way a rule names it after `unix:`, for a
/// lease's capability.
pub(crate) fn parse_lease_unix(text: &str) -> Result<super::PathPattern, String> {
    unix::parse_unix_name(text).map_err(|error| error.message)
}

/// Parses an access list the way an open rule writes it, for a lease's
/// capability.
pub(crate) fn parse_lease_access(text: &str) -> Result<Access, String> {
    parse_access(text).map_err(|error| error.message)
}

fn parse_verdict(text: &str) -> Option<Verdict> {
    match text {
        "allow" => Some(Verdict::Allow),
        "deny" => Some(Verdict::Deny),
        "audit" => Some(Verdict::Audit),
        "lease" => Some(Verdict::Lease),
        _ => None,
    }
}

/// Parses the `sha256:HEX` form of an exec object, or returns `None` when
/// `text` is not in that form.
fn parse_content(text: &str) -> Option<Result<[u8; 32], String>> {
    let hex_text = text.strip_prefix("sha256:")?;
    let mut digest = [0; 32];
    Some(match hex::decode_to_slice(hex_text, &mut digest) {
        Ok(()) => Ok(digest),
        Err(_) => Err(format!(
            "invalid content digest \"{hex_text}\": write sha256: followed by 64 hexadecimal digits, \
             as `sha256sum FILE` prints them"
        )),
    })
}

fn is_valid_rule_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    id.len() <= RULE_ID_MAX
        && first.is_ascii_alphanumeric()
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// The expected forms of an open rule's access list, for error messages.
const ACCESS_EXPECTED: &str = "expected read, write, create or a list of them such as read,write or write,create";

/// Parses an open rule's access list: `read`, `write` and `create`, in any
/// order, each at most once, separated by commas.
fn parse_access(text: &str) -> Result<Access, TokenError> {
    let mut access = Access::default();
    let mut offset = 0;
    for item in text.split(',') {
        let seen = match item {
            "read" => std::mem::replace(&mut access.read, true),
            "write" => std::mem::replace(&mut access.write, true),
            "create" => std::mem::replace(&mut access.create, true),
            _ => {
                return Err(TokenError::new(
                    offset,
                    format!("invalid access \"{item}\" for an open rule: {ACCESS_EXPECTED}"),
                ));
            }
        };
        if seen {
            return Err(TokenError::new(offset, format!("duplicate access \"{item}\": list each access once")));
        }
        offset += item.len() + 1;
    }
    Ok(access)
}

/// Parses the protocol field of a connect rule: `tcp` or `udp`.
fn parse_protocol(text: &str) -> Result<Protocol, TokenError> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ if parse_access(text).is_ok() => Err(TokenError::new(
            0,
            format!(
                "unexpected \"{text}\": connect rules take no access list, and the only field after \
                 the destination is the protocol, tcp or udp; remove it"
            ),
        )),
        _ => Err(TokenError::new(
            0,
            format!("invalid protocol \"{text}\": expected tcp or udp, or no protocol field for every IP protocol"),
        )),
    }
}
