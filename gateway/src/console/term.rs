//! The terminal: line editing, history, tab completion and `?` help (rustyline), hidden
//! password input, pasted multi-line blocks, and the pager.
//!
//! Only what a VT100 on a 115200 serial line does is assumed: rustyline's basic cursor
//! movement, no colours, and 80×24 when the line reports no window size.

use super::grammar;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, ConditionalEventHandler, Context, Editor, Event, EventContext, EventHandler, Helper,
    KeyEvent, RepeatCount,
};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toml_edit::DocumentMut;

/// What completion and help need to know about the session.
#[derive(Default)]
pub struct Shared {
    /// The candidate configuration (entry names to complete).
    pub table: DocumentMut,
    /// Off while the wizard asks questions: completing commands there would mislead.
    pub commands: bool,
}

struct Assist(Arc<Mutex<Shared>>);

pub struct Term {
    editor: Option<Editor<Assist, DefaultHistory>>,
    pub shared: Arc<Mutex<Shared>>,
    /// Whether the session waits at its prompt, and since when no key was pressed: the
    /// idle timeout and `monitor` (which prints only between commands) read it.
    pub activity: Arc<Activity>,
    /// The terminal's settings before the line editor changed them, restored when an idle
    /// session is logged out from another thread.
    saved: Option<nix::sys::termios::Termios>,
}

/// See [`Term::activity`].
pub struct Activity {
    state: Mutex<Waiting>,
}

pub struct Waiting {
    pub at_prompt: bool,
    pub last_key: Instant,
    /// The line at the prompt is empty (as far as the keys tell; unsure counts as not).
    pub line_empty: bool,
    /// The prompt being shown, to draw it again under printed text.
    pub prompt: String,
}

impl Activity {
    /// Holds the state while the caller prints: the prompt cannot be left meanwhile.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, empty_after: bool) {
        let mut state = self.lock();
        state.last_key = Instant::now();
        state.line_empty = empty_after;
    }

    fn prompt(&self, at: Option<&str>) {
        let mut state = self.lock();
        state.at_prompt = at.is_some();
        state.line_empty = true;
        state.last_key = Instant::now();
        if let Some(prompt) = at {
            state.prompt = prompt.to_string();
        }
    }
}

pub enum Input {
    Line(String),
    /// Ctrl-C: the line is dropped.
    Interrupted,
    /// Ctrl-D or the line went away.
    End,
}

impl Term {
    pub fn new() -> Term {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let activity = Arc::new(Activity {
            state: Mutex::new(Waiting {
                at_prompt: false,
                last_key: Instant::now(),
                line_empty: true,
                prompt: String::new(),
            }),
        });
        let saved = nix::sys::termios::tcgetattr(std::io::stdin().as_fd()).ok();
        let config = rustyline::Config::builder()
            .auto_add_history(true)
            .history_ignore_dups(true)
            .unwrap_or_else(|_| rustyline::Config::builder())
            .completion_type(rustyline::CompletionType::List)
            .bell_style(rustyline::config::BellStyle::None)
            .max_history_size(500)
            .unwrap_or_else(|_| rustyline::Config::builder())
            .build();
        let editor = Editor::with_config(config).ok().map(|mut e| {
            e.set_helper(Some(Assist(shared.clone())));
            e.bind_sequence(
                KeyEvent::from('?'),
                EventHandler::Conditional(Box::new(QuestionMark(shared.clone()))),
            );
            e.bind_sequence(
                Event::Any,
                EventHandler::Conditional(Box::new(KeyPressed(activity.clone()))),
            );
            e
        });
        Term {
            editor,
            shared,
            activity,
            saved,
        }
    }

    /// Logs the session out when it waits at its prompt `limit` without a key pressed:
    /// the terminal's settings come back, a line says why, and the process ends (init
    /// brings back the login prompt on the appliance).
    pub fn idle_logout(&self, limit: Duration) {
        let activity = self.activity.clone();
        let saved = self.saved.clone();
        std::thread::spawn(move || {
            loop {
                let left = {
                    let state = activity.lock();
                    let idle = state.last_key.elapsed();
                    if state.at_prompt && idle >= limit {
                        break;
                    }
                    limit.saturating_sub(idle).max(Duration::from_millis(200))
                };
                std::thread::sleep(left.min(Duration::from_secs(1)));
            }
            if let Some(saved) = &saved {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin().as_fd(),
                    nix::sys::termios::SetArg::TCSANOW,
                    saved,
                );
            }
            print(&format!(
                "\r\nidle for {}: logged out\r\n",
                crate::config::Span(limit)
            ));
            std::process::exit(0);
        });
    }

    pub fn set_commands(&self, on: bool, table: &DocumentMut) {
        if let Ok(mut s) = self.shared.lock() {
            s.commands = on;
            s.table = table.clone();
        }
    }

    pub fn read(&mut self, prompt: &str) -> Input {
        let Some(editor) = self.editor.as_mut() else {
            return plain_line(prompt);
        };
        self.activity.prompt(Some(prompt));
        let read = editor.readline(prompt);
        self.activity.prompt(None);
        match read {
            Ok(line) => Input::Line(line),
            Err(ReadlineError::Interrupted) => Input::Interrupted,
            Err(_) => Input::End,
        }
    }

    /// A line read without echo (passwords).
    pub fn secret(&mut self, prompt: &str) -> Option<String> {
        print(prompt);
        let quiet = NoEcho::new();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        let got = loop {
            match std::io::stdin().lock().read(&mut byte) {
                Ok(1) if byte[0] == b'\n' || byte[0] == b'\r' => break true,
                Ok(1) => line.push(byte[0]),
                _ => break !line.is_empty(),
            }
            if line.len() > 1024 {
                break true;
            }
        };
        drop(quiet);
        print("\n");
        got.then(|| String::from_utf8_lossy(&line).into_owned())
    }

    /// [`Term::block`] without echo, for a pasted private key: the terminal (and anyone
    /// watching it or its scrollback) never shows the key; a line says how much was read.
    /// The prompt is printed once echo is off, so nothing typed after it is shown.
    pub fn secret_block(&mut self, prompt: &str, end: &str) -> Option<String> {
        let quiet = NoEcho::new();
        print(prompt);
        let text = self.block(end);
        drop(quiet);
        if let Some(text) = &text {
            print(&format!(
                "({} lines read, not shown)\n",
                text.lines().count()
            ));
        }
        text
    }

    /// Pasted lines up to (not including) a line equal to `end`, or an empty line when
    /// `end` is empty. `None` on Ctrl-D. Read in the terminal's own line mode rather than
    /// through the line editor: a paste arrives faster than it could redraw, and the
    /// editor would drop what it read ahead of the first line.
    pub fn block(&mut self, end: &str) -> Option<String> {
        let mut text = String::new();
        loop {
            let Input::Line(line) = plain_line("") else {
                return None;
            };
            let trimmed = line.trim_end();
            if trimmed == end && (!end.is_empty() || trimmed.is_empty()) {
                return Some(text);
            }
            text.push_str(trimmed);
            text.push('\n');
            if text.len() > 1 << 20 {
                return Some(text);
            }
        }
    }

    /// Prints `text`, a page at a time when it is longer than `page` lines (0: all).
    pub fn page(&mut self, text: &str, page: usize) {
        let lines: Vec<&str> = text.lines().collect();
        if page == 0 || lines.len() <= page || CAPTURE.with(|c| c.borrow().is_some()) {
            print(text);
            if !text.ends_with('\n') && !text.is_empty() {
                print("\n");
            }
            return;
        }
        let mut shown = 0;
        let mut step = page.saturating_sub(1).max(1);
        while shown < lines.len() {
            let end = (shown + step).min(lines.len());
            let mut chunk = lines[shown..end].join("\n");
            chunk.push('\n');
            print(&chunk);
            shown = end;
            if shown >= lines.len() {
                break;
            }
            print("--More-- (space: page, enter: line, q: quit)");
            let key = key();
            print("\r                                              \r");
            match key {
                Some(b' ') => step = page.saturating_sub(1).max(1),
                Some(b'\r' | b'\n') => step = 1,
                _ => break,
            }
        }
    }
}

/// One key press in raw mode (the pager).
fn key() -> Option<u8> {
    use nix::sys::termios::{self, SetArg};
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(saved) = &saved {
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    }
    // Straight from the descriptor: a buffered read could take keys meant for the editor.
    let mut byte = [0u8; 1];
    let got = nix::unistd::read(stdin.as_fd(), &mut byte)
        .ok()
        .filter(|n| *n == 1);
    if let Some(saved) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, saved);
    }
    got.map(|_| byte[0])
}

/// Without a usable terminal (input from a pipe): plain lines.
fn plain_line(prompt: &str) -> Input {
    print(prompt);
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => Input::End,
        Ok(_) => Input::Line(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

thread_local! {
    /// Output of a command piped through `| match …` and friends, held until it ends.
    static CAPTURE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// From now on output is held instead of written, until [`captured`].
pub fn capture() {
    CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
}

/// Ends a [`capture`] and returns what was printed meanwhile.
pub fn captured() -> String {
    CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default()
}

fn capturing(text: &str) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(held) => {
            held.push_str(text);
            true
        }
        None => false,
    })
}

pub fn print(text: &str) {
    if capturing(text) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Every key typed at the prompt counts as activity; the key then does what it always does.
struct KeyPressed(Arc<Activity>);

impl ConditionalEventHandler for KeyPressed {
    fn handle(&self, event: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        use rustyline::KeyCode;
        // Whether the line is empty once this key has done its work: only the keys whose
        // effect is certain say yes (a key recalling history may fill it).
        let before = ctx.line();
        let empty_after = match event.get(0).map(|k| (k.0, k.1)) {
            Some((KeyCode::Enter, _)) => true,
            Some((KeyCode::Char('C' | 'U'), rustyline::Modifiers::CTRL)) => {
                ctx.pos() == before.len()
            }
            Some((KeyCode::Backspace, _)) => before.chars().count() <= 1 && ctx.pos() > 0,
            _ => false,
        };
        self.0.key(empty_after);
        None
    }
}

/// `?` anywhere in a command line shows what may come there and redraws the line; in a
/// quoted value or in the wizard it is an ordinary character.
struct QuestionMark(Arc<Mutex<Shared>>);

impl ConditionalEventHandler for QuestionMark {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        let shared = self.0.lock().ok()?;
        let before = &ctx.line()[..ctx.pos()];
        if !shared.commands || before.matches('"').count() % 2 == 1 {
            return None;
        }
        let help = grammar::help(before, &shared.table);
        // Raw mode: the terminal does not turn \n into \r\n for us.
        print(&format!("?\r\n{}", help.replace('\n', "\r\n")));
        Some(Cmd::Repaint)
    }
}

impl Completer for Assist {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let Ok(shared) = self.0.lock() else {
            return Ok((pos, Vec::new()));
        };
        if !shared.commands {
            return Ok((pos, Vec::new()));
        }
        let (start, words) = grammar::complete(&line[..pos], &shared.table);
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.clone(),
                replacement: format!("{w} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Assist {
    type Hint = String;
}
impl Highlighter for Assist {}
impl Validator for Assist {}
impl Helper for Assist {}

/// The terminal's echo off while it lives (passwords, pasted private keys); the saved
/// settings come back on drop, also when reading failed.
struct NoEcho(Option<nix::sys::termios::Termios>);

impl NoEcho {
    fn new() -> NoEcho {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet);
        }
        NoEcho(saved)
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}
