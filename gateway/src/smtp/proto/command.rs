//! Command lines to [`Command`] values (RFC 5321 §4.1, RFC 3030 BDAT, RFC 3207 STARTTLS,
//! RFC 4954 AUTH, RFC 1985 ETRN), and [`CommandError::reply`], the one place parse errors
//! become replies. Whether a command is allowed now is the session's business, not ours.
//!
//! Strictness: verbs are case-insensitive and followed by exactly one SP; only after
//! `FROM:`/`TO:` are extra spaces tolerated, and trailing spaces are ignored. CR or LF
//! inside a line, other control bytes, invalid UTF-8 and non-ASCII outside a path are refused.

use super::address::{
    AddressError, ForwardPath, ReversePath, parse_forward_path, parse_reverse_path,
};
use super::params::{MailParams, ParamError, RcptParams, parse_mail_params, parse_rcpt_params};
use super::reply::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: ForwardPath,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    StartTls,
    /// Mechanism uppercased; `initial` is the base64 initial response, or "=" for empty.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    Etrn(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("bare CR or LF in command")]
    BareLineEnding,
    #[error("control character in command")]
    ControlCharacter,
    #[error("invalid UTF-8 in command")]
    InvalidUtf8,
    #[error("non-ASCII character outside an address")]
    NonAscii,
    #[error("command unrecognized")]
    Unrecognized,
    #[error("{0} needs an argument")]
    MissingArgument(&'static str),
    #[error("unexpected argument to {0}")]
    ExtraArgument(&'static str),
    #[error("{0}")]
    Syntax(&'static str),
    #[error("sender: {0}")]
    Sender(AddressError),
    #[error("recipient: {0}")]
    Recipient(AddressError),
    #[error(transparent)]
    Param(#[from] ParamError),
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        let detail = self.to_string();
        match self {
            CommandError::Empty | CommandError::BareLineEnding => Reply::syntax_error(&detail),
            CommandError::ControlCharacter | CommandError::InvalidUtf8 | CommandError::NonAscii => {
                Reply::command_syntax(&detail)
            }
            CommandError::Unrecognized => Reply::command_unrecognized(),
            CommandError::MissingArgument(_)
            | CommandError::ExtraArgument(_)
            | CommandError::Syntax(_) => Reply::param_syntax(&detail),
            CommandError::Sender(AddressError::NonAscii)
            | CommandError::Recipient(AddressError::NonAscii) => Reply::non_ascii_address(),
            CommandError::Sender(e) => Reply::sender_syntax(&e.to_string()),
            CommandError::Recipient(e) => Reply::recipient_syntax(&e.to_string()),
            CommandError::Param(ParamError::Unsupported(p)) => Reply::param_unsupported(p),
            CommandError::Param(e) => Reply::param_syntax(&e.to_string()),
        }
    }
}

/// Parses one command line, without its CRLF, outside an SMTPUTF8 transaction.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    parse_command_with(line, false)
}

/// Parses one command line, without its CRLF. `smtputf8` says whether the current
/// transaction's MAIL carried SMTPUTF8, which allows UTF-8 in RCPT paths; MAIL decides
/// from its own parameters.
pub fn parse_command_with(line: &[u8], smtputf8: bool) -> Result<Command, CommandError> {
    if line.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(CommandError::BareLineEnding);
    }
    if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(CommandError::ControlCharacter);
    }
    let line = std::str::from_utf8(line).map_err(|_| CommandError::InvalidUtf8)?;
    let line = line.trim_end_matches(' ');
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, Some(arg)),
        None => (line, None),
    };
    if verb.is_empty() {
        return Err(if line.is_empty() {
            CommandError::Empty
        } else {
            CommandError::Unrecognized
        });
    }
    if verb.len() > 8 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(CommandError::Unrecognized);
    }
    if arg.is_some_and(|a| a.starts_with(' ')) {
        return Err(CommandError::Syntax("expected one space after the command"));
    }
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "MAIL" => return parse_mail(arg),
        "RCPT" => return parse_rcpt(arg, smtputf8),
        _ if !line.is_ascii() => return Err(CommandError::NonAscii),
        _ => {}
    }
    match verb.as_str() {
        "EHLO" => Ok(Command::Ehlo(token("EHLO", arg)?.to_string())),
        "HELO" => Ok(Command::Helo(token("HELO", arg)?.to_string())),
        "DATA" => no_arg("DATA", arg, Command::Data),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_arg("RSET", arg, Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arg("QUIT", arg, Command::Quit),
        "VRFY" => Ok(Command::Vrfy(
            arg.ok_or(CommandError::MissingArgument("VRFY"))?
                .to_string(),
        )),
        "EXPN" => Ok(Command::Expn(
            arg.ok_or(CommandError::MissingArgument("EXPN"))?
                .to_string(),
        )),
        "HELP" => Ok(Command::Help(arg.map(str::to_string))),
        "STARTTLS" => no_arg("STARTTLS", arg, Command::StartTls),
        "AUTH" => parse_auth(arg),
        "ETRN" => Ok(Command::Etrn(token("ETRN", arg)?.to_string())),
        _ => Err(CommandError::Unrecognized),
    }
}

fn parse_mail(arg: Option<&str>) -> Result<Command, CommandError> {
    let path = after_keyword(arg, "MAIL", "FROM:")?;
    // UTF-8 is allowed structurally here; the SMTPUTF8 parameter after the path decides.
    let (from, rest) = parse_reverse_path(path, true).map_err(CommandError::Sender)?;
    let params = parse_mail_params(rest)?;
    let path_text = path.get(..path.len() - rest.len()).unwrap_or(path);
    if !params.smtputf8 && !path_text.is_ascii() {
        return Err(CommandError::Sender(AddressError::NonAscii));
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(arg: Option<&str>, smtputf8: bool) -> Result<Command, CommandError> {
    let path = after_keyword(arg, "RCPT", "TO:")?;
    let (to, rest) = parse_forward_path(path, smtputf8).map_err(CommandError::Recipient)?;
    let params = parse_rcpt_params(rest)?;
    Ok(Command::Rcpt { to, params })
}

/// `FROM:` / `TO:` (case-insensitive), then optional spaces: "MAIL FROM: <a@b>" is common.
fn after_keyword<'a>(
    arg: Option<&'a str>,
    verb: &'static str,
    keyword: &str,
) -> Result<&'a str, CommandError> {
    let arg = arg.ok_or(CommandError::MissingArgument(verb))?;
    match arg.get(..keyword.len()) {
        Some(k) if k.eq_ignore_ascii_case(keyword) => Ok(arg
            .get(keyword.len()..)
            .unwrap_or("")
            .trim_start_matches(' ')),
        _ => Err(CommandError::Syntax(if verb == "MAIL" {
            "expected MAIL FROM:<address>"
        } else {
            "expected RCPT TO:<address>"
        })),
    }
}

/// `BDAT SP chunk-size [SP "LAST"]` (RFC 3030 §2).
fn parse_bdat(arg: Option<&str>) -> Result<Command, CommandError> {
    let arg = arg.ok_or(CommandError::MissingArgument("BDAT"))?;
    let (size, last) = match arg.split_once(' ') {
        Some((size, last)) if last.eq_ignore_ascii_case("LAST") => (size, true),
        Some(_) => return Err(CommandError::ExtraArgument("BDAT")),
        None => (arg, false),
    };
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax("BDAT size must be digits"));
    }
    let size = size
        .parse()
        .map_err(|_| CommandError::Syntax("BDAT size out of range"))?;
    Ok(Command::Bdat { size, last })
}

/// `AUTH SP mechanism [SP initial-response]` (RFC 4954 §4); the response is not decoded.
fn parse_auth(arg: Option<&str>) -> Result<Command, CommandError> {
    let arg = arg.ok_or(CommandError::MissingArgument("AUTH"))?;
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m, Some(i)),
        None => (arg, None),
    };
    let mech_ok = (1..=20).contains(&mechanism.len())
        && mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !mech_ok {
        return Err(CommandError::Syntax("invalid SASL mechanism name"));
    }
    if let Some(i) = initial {
        let body = i.trim_end_matches('=');
        let base64 = body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if i.is_empty() || !base64 || i.len() - body.len() > 2 || (body.is_empty() && i != "=") {
            return Err(CommandError::Syntax("initial response must be base64"));
        }
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial: initial.map(str::to_string),
    })
}

/// Exactly one argument without spaces.
fn token<'a>(verb: &'static str, arg: Option<&'a str>) -> Result<&'a str, CommandError> {
    match arg {
        None => Err(CommandError::MissingArgument(verb)),
        Some(a) if a.contains(' ') => Err(CommandError::ExtraArgument(verb)),
        Some(a) => Ok(a),
    }
}

fn no_arg(
    verb: &'static str,
    arg: Option<&str>,
    command: Command,
) -> Result<Command, CommandError> {
    match arg {
        None => Ok(command),
        Some(_) => Err(CommandError::ExtraArgument(verb)),
    }
}

#[cfg(test)]
mod tests;
