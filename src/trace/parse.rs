//! Reading strace's log: one [`StraceCall`] per call, and the [`CallKey`] it is compared by.

use std::collections::HashMap;
use std::fmt;

/// One system call as strace printed it; a call that strace showed as `<unfinished ...>`
/// and later `<... resumed>` is joined into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StraceCall {
    /// The thread strace saw make the call (`-f` starts every line with it).
    pub tid: u32,
    /// The syscall's name (`accept4`).
    pub name: String,
    /// The arguments as printed, between the parentheses.
    pub args: String,
    /// The return value (`None` for `?`: the process ended inside the call, or a signal
    /// interrupted it).
    pub ret: Option<i64>,
    /// The errno name when the call failed (`EINPROGRESS`), or the kernel's restart code
    /// of an interrupted call (`? ERESTART_RESTARTBLOCK`).
    pub errno: Option<String>,
    /// The whole call on one line: `name(args) = result`.
    pub text: String,
}

impl StraceCall {
    /// The descriptor the call works on: its first argument (for poll, the first entry's; for
    /// select, the first descriptor of its sets).
    pub fn fd(&self) -> Option<i32> {
        match self.name.as_ref() {
            "socket" | "socketpair" => None,
            "poll" | "ppoll" => poll_fds(&self.args).first().map(|(fd, _)| *fd),
            "select" | "pselect6" => select_fds(&self.args).first().map(|(fd, _)| *fd),
            _ => leading_int(&self.args).map(|(n, _)| n as i32),
        }
    }

    /// What `-yy` printed after the first argument (`TCP:[127.0.0.1:1060]`, `pipe:[123]`).
    pub fn fd_note(&self) -> Option<&str> {
        match self.name.as_ref() {
            "socket" | "socketpair" | "poll" | "ppoll" | "select" | "pselect6" => None,
            _ => leading_int(&self.args).and_then(|(_, rest)| angle(rest)),
        }
    }

    /// True for `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`.
    pub fn is_tcp_info(&self) -> bool {
        self.name == "getsockopt" && self.args.contains("SOL_TCP, TCP_INFO")
    }

    /// The call as the lab's events are compared with it.
    pub fn key(&self) -> CallKey {
        let tcp_info = self.is_tcp_info();
        CallKey {
            name: self.name.clone(),
            fd: self.fd(),
            ret: if tcp_info { None } else { self.ret },
            errno: if tcp_info { None } else { self.errno.clone() },
            tcp_info,
        }
    }
}

/// What is compared between a lab event and a strace line: the call, its descriptor, its
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallKey {
    /// The syscall's name.
    pub name: String,
    /// The descriptor argument: for `accept4` the listener (the new one is `ret`), none for
    /// `socket`; for a TCP_INFO look (a `state` event) unknown, so any.
    pub fd: Option<i32>,
    /// The return value; not compared for TCP_INFO reads (the lab does not log a probe's).
    pub ret: Option<i64>,
    /// The errno name on failure.
    pub errno: Option<String>,
    /// True for `getsockopt(SOL_TCP, TCP_INFO)`.
    pub tcp_info: bool,
}

impl CallKey {
    /// True when this key (the lab's) describes the call strace printed as `seen`.
    pub fn agrees(&self, seen: &CallKey) -> bool {
        let any_fd = self.tcp_info && self.fd.is_none();
        self.name == seen.name
            && self.tcp_info == seen.tcp_info
            && (self.fd == seen.fd || any_fd)
            && self.ret == seen.ret
            && self.errno == seen.errno
    }

    pub(super) fn probe(fd: Option<i32>) -> CallKey {
        CallKey {
            name: "getsockopt".into(),
            fd,
            ret: None,
            errno: None,
            tcp_info: true,
        }
    }
}

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.fd.map_or("?".to_string(), |fd| fd.to_string());
        if self.tcp_info {
            return write!(f, "{}({fd}, TCP_INFO)", self.name);
        }
        match self.name.as_ref() {
            "socket" => write!(f, "socket()")?,
            _ => write!(f, "{}({fd})", self.name)?,
        }
        match (&self.ret, &self.errno) {
            (None, Some(e)) => write!(f, " = ? {e}"),
            (Some(_), Some(e)) => write!(f, " = -1 {e}"),
            (Some(r), None) => write!(f, " = {r}"),
            (None, None) => write!(f, " = ?"),
        }
    }
}

/// Parses strace's log (`-f -o FILE`, with or without `-yy`): one entry per completed or
/// interrupted call, in the order the calls started. Signals and exits are skipped.
pub fn parse_strace(text: &str) -> Vec<StraceCall> {
    let mut calls: Vec<Option<StraceCall>> = Vec::new();
    // Per thread: the slot and the text of a call printed as `<unfinished ...>`.
    let mut pending: HashMap<u32, (usize, String)> = HashMap::new();
    for line in text.lines() {
        let (tid, rest) = split_tid(line);
        let rest = rest.trim_end();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if let Some((slot, head)) = pending.remove(&tid) {
                let tail = tail.trim_start();
                let tail = tail.strip_prefix("<unfinished ...>").unwrap_or(tail);
                let sep = if tail.starts_with(')') { "" } else { " " };
                calls[slot] = parse_call(tid, &format!("{head}{sep}{tail}"));
            }
        } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, (calls.len(), head.trim_end().to_string()));
            calls.push(None);
        } else {
            calls.push(parse_call(tid, rest));
        }
    }
    calls.into_iter().flatten().collect()
}

/// `12345  read(...)` (from `-f -o`) or `[pid 12345] read(...)` (on stderr): the thread id.
fn split_tid(line: &str) -> (u32, &str) {
    if let Some(rest) = line.strip_prefix("[pid")
        && let Some((n, rest)) = rest.split_once(']')
    {
        return (n.trim().parse().unwrap_or(0), rest.trim_start());
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(' ') {
        return (
            line[..digits].parse().unwrap_or(0),
            line[digits..].trim_start(),
        );
    }
    (0, line)
}

fn parse_call(tid: u32, text: &str) -> Option<StraceCall> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let close = closing(text, open).filter(|&i| text.as_bytes()[i] == b')')?;
    let args = text[open + 1..close].trim_end();
    let result = text[close + 1..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let (ret, errno) = match leading_int(result) {
        Some((r, rest)) => {
            let errno = (r < 0)
                .then(|| rest.split_whitespace().next())
                .flatten()
                .filter(|e| e.starts_with('E'))
                .map(str::to_string);
            (Some(r), errno)
        }
        // `? ERESTARTSYS (To be restarted if SA_RESTART is set)`: interrupted by a signal.
        None => {
            let code = result
                .strip_prefix('?')
                .and_then(|r| r.split_whitespace().next());
            (
                None,
                code.filter(|c| c.starts_with("ERESTART"))
                    .map(str::to_string),
            )
        }
    };
    Some(StraceCall {
        tid,
        name: name.to_string(),
        args: args.to_string(),
        ret,
        errno,
        text: format!("{name}({args}) = {result}"),
    })
}

/// The index of the bracket closing the one at `open`, skipping strings and nested brackets.
fn closing(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                (false, _) => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A leading decimal (or `0x`) integer, and the text after it.
fn leading_int(s: &str) -> Option<(i64, &str)> {
    let s = s.trim_start();
    if let Some(hex) = s.strip_prefix("0x") {
        let n = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
        return Some((i64::from_str_radix(&hex[..n], 16).ok()?, &hex[n..]));
    }
    let sign = usize::from(s.starts_with('-'));
    let n = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..sign + n].parse().ok()?, &s[sign + n..]))
}

/// The text of a `<...>` annotation at the start of `s` (nested ones included).
fn angle(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('<')?;
    let mut depth = 1usize;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&inner[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `fd=N<...>` entries of a poll array.
pub(super) fn poll_fds(args: &str) -> Vec<(i32, Option<&str>)> {
    let list = if args.starts_with('[') {
        closing(args, 0).map_or(args, |end| &args[..end])
    } else {
        ""
    };
    list.match_indices("fd=")
        .filter_map(|(i, _)| {
            let (n, rest) = leading_int(&list[i + 3..])?;
            Some((n as i32, angle(rest)))
        })
        .collect()
}

/// The descriptors of select's three sets as passed (`5, [3<...> 4<...>], NULL, [4], ...`):
/// readfds', then writefds', then exceptfds', with what `-yy` printed for each.
pub(super) fn select_fds(args: &str) -> Vec<(i32, Option<&str>)> {
    let mut out = Vec::new();
    let Some((_, mut rest)) = leading_int(args) else {
        return out;
    };
    for _ in 0..3 {
        rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(rest)
            .trim_start();
        if !rest.starts_with('[') {
            // NULL
            rest = rest.find(',').map_or("", |i| &rest[i..]);
            continue;
        }
        let Some(end) = closing(rest, 0) else {
            break;
        };
        let mut set = &rest[1..end];
        while let Some((fd, after)) = leading_int(set) {
            let note = angle(after);
            out.push((fd as i32, note));
            let skip = note.map_or(0, |n| n.len() + 2);
            set = after.get(skip..).unwrap_or("");
        }
        rest = &rest[end + 1..];
    }
    out
}
