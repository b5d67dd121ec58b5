//! The live view in a terminal: the screen redrawn in place (alternate screen, raw
//! mode), single keys as shortcuts and a prompt line for typed commands. The terminal
//! is given back as it was however the demo ends, panics included, because restoring
//! it is the `Drop` of [`Terminal`].

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::{Attribute, Color};
use crossterm::{cursor, execute, queue, style, terminal};
use tokio::sync::mpsc;

use super::view::{self, Tone};

/// The keys, as the footer shows them.
const KEYS: [&str; 2] = [
    "keys: k kill leader  r restart killed  p pause leader  c resume paused  s split",
    "      h heal  t transfer  w write timeline  : type a command  ? help  q quit",
];

/// What a key press asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Nothing to carry out (the prompt was edited, or the key means nothing).
    Nothing,
    /// A shortcut key, with the prompt closed.
    Shortcut(char),
    /// A typed command line.
    Line(String),
    /// End the demo (q or Ctrl-C).
    Quit,
}

/// The terminal while the demo owns it.
#[derive(Debug)]
pub struct Terminal {
    /// The command being typed, while the prompt is open.
    prompt: Option<String>,
    /// The answer to the last command, shown on the last line.
    message: String,
    /// Set by the key thread on Ctrl-C, for waits that do not read keys.
    interrupted: Arc<AtomicBool>,
}

impl Terminal {
    /// Takes over the terminal and starts reading keys into the returned channel.
    pub fn open() -> anyhow::Result<(Terminal, mpsc::UnboundedReceiver<Event>)> {
        terminal::enable_raw_mode()?;
        let interrupted = Arc::new(AtomicBool::new(false));
        let terminal = Terminal {
            prompt: None,
            message: "type : then a command, or a key below".into(),
            interrupted: Arc::clone(&interrupted),
        };
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;

        let (keys, events) = mpsc::unbounded_channel();
        // The thread blocks in `read` and ends with the process; it owns nothing that
        // needs cleaning up.
        std::thread::spawn(move || {
            while let Ok(event) = crossterm::event::read() {
                if is_ctrl_c(&event) {
                    interrupted.store(true, Ordering::Relaxed);
                }
                if keys.send(event).is_err() {
                    break;
                }
            }
        });
        Ok((terminal, events))
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// Shows the answer to the last command.
    pub fn set_message(&mut self, message: String) {
        self.message = message;
    }

    /// Interprets one terminal event.
    pub fn on_event(&mut self, event: Event) -> Input {
        if is_ctrl_c(&event) {
            return Input::Quit;
        }
        let Event::Key(KeyEvent {
            code,
            kind: KeyEventKind::Press | KeyEventKind::Repeat,
            ..
        }) = event
        else {
            return Input::Nothing;
        };

        match (&mut self.prompt, code) {
            (Some(_), KeyCode::Esc) => {
                self.prompt = None;
                Input::Nothing
            }
            (Some(text), KeyCode::Enter) => {
                let line = std::mem::take(text);
                self.prompt = None;
                Input::Line(line)
            }
            (Some(text), KeyCode::Backspace) => {
                text.pop();
                Input::Nothing
            }
            (Some(text), KeyCode::Char(c)) => {
                text.push(c);
                Input::Nothing
            }
            (Some(_), _) => Input::Nothing,
            (None, KeyCode::Char(':' | '/') | KeyCode::Enter) => {
                self.prompt = Some(String::new());
                Input::Nothing
            }
            (None, KeyCode::Char('q')) => Input::Quit,
            (None, KeyCode::Char(c)) => Input::Shortcut(c),
            (None, _) => Input::Nothing,
        }
    }

    /// Draws the screen: the table, the latest events, the keys and the prompt.
    pub fn draw(&mut self, table: &[String], events: &[String]) {
        let height = terminal::size().map_or(24, |(_, rows)| usize::from(rows));
        let last = match &self.prompt {
            Some(text) => format!(": {text}_"),
            None => self.message.clone(),
        };
        let footer = vec![KEYS[0].to_string(), KEYS[1].to_string(), last];
        let lines = view::screen(table, events, &footer, height);

        let mut out = io::stdout().lock();
        for (row, line) in lines.iter().enumerate() {
            let (colour, bold) = match view::tone(line) {
                Tone::Plain => (None, false),
                Tone::Title => (None, true),
                Tone::Leader => (Some(Color::Green), true),
                Tone::Campaigning => (Some(Color::Yellow), false),
                Tone::Down => (Some(Color::DarkGrey), false),
                Tone::Paused => (Some(Color::Magenta), false),
                Tone::Action => (Some(Color::Cyan), false),
            };
            // Errors drawing are ignored: the next redraw tries again.
            let _ = queue!(out, cursor::MoveTo(0, row as u16));
            if let Some(colour) = colour {
                let _ = queue!(out, style::SetForegroundColor(colour));
            }
            if bold {
                let _ = queue!(out, style::SetAttribute(Attribute::Bold));
            }
            let _ = queue!(
                out,
                style::Print(line),
                style::SetAttribute(Attribute::Reset),
                style::ResetColor,
                terminal::Clear(terminal::ClearType::UntilNewLine)
            );
        }
        let _ = out.flush();
    }
}

/// Raw mode turns Ctrl-C into a key instead of a signal.
fn is_ctrl_c(event: &Event) -> bool {
    matches!(
        event,
        Event::Key(KeyEvent {
            code: KeyCode::Char('c'),
            modifiers,
            kind: KeyEventKind::Press,
            ..
        }) if modifiers.contains(KeyModifiers::CONTROL)
    )
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// Keys are shortcuts until `:` opens the prompt; Enter hands over the line.
    #[test]
    fn keys_are_shortcuts_until_the_prompt_opens() {
        let mut terminal = Terminal {
            prompt: None,
            message: String::new(),
            interrupted: Arc::new(AtomicBool::new(false)),
        };

        assert_eq!(
            terminal.on_event(key(KeyCode::Char('k'))),
            Input::Shortcut('k')
        );
        assert_eq!(terminal.on_event(key(KeyCode::Char(':'))), Input::Nothing);
        for c in "kill 9".chars() {
            assert_eq!(terminal.on_event(key(KeyCode::Char(c))), Input::Nothing);
        }
        terminal.on_event(key(KeyCode::Backspace));
        terminal.on_event(key(KeyCode::Char('3')));
        assert_eq!(
            terminal.on_event(key(KeyCode::Enter)),
            Input::Line("kill 3".into())
        );
        assert_eq!(terminal.on_event(key(KeyCode::Char('q'))), Input::Quit);

        assert!(KEYS.iter().all(|line| line.chars().count() <= view::WIDTH));

        let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(terminal.on_event(ctrl_c), Input::Quit);
        // Dropping restores a terminal that was never taken over: harmless.
        std::mem::forget(terminal);
    }
}
