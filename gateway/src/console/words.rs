//! Splitting a command line into words (with their columns, so an error can point at
//! one), and the error type every command returns.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Column of the word's first character in the line.
    pub at: usize,
}

/// Words separated by blanks; `"…"` keeps blanks inside a word.
pub fn split(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut current: Option<Word> = None;
    let mut quoted = false;
    for (col, c) in line.chars().enumerate() {
        match c {
            '"' => {
                quoted = !quoted;
                current.get_or_insert(Word {
                    text: String::new(),
                    at: col,
                });
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(w) = current.take() {
                    out.push(w);
                }
            }
            c => current
                .get_or_insert(Word {
                    text: String::new(),
                    at: col,
                })
                .text
                .push(c),
        }
    }
    out.extend(current);
    out
}

/// A refused command: the word at fault (or the end of the line), why, and what would
/// have been valid there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Index of the offending word; `None` for the end of the line.
    pub word: Option<usize>,
    pub message: String,
    pub choices: Vec<String>,
    /// Whether to suggest the choice nearest to the word (not for an ambiguous prefix,
    /// where every choice fits equally).
    pub suggest: bool,
}

impl Failure {
    pub fn at(word: usize, message: impl Into<String>) -> Failure {
        Failure {
            word: Some(word),
            message: message.into(),
            choices: Vec::new(),
            suggest: true,
        }
    }

    pub fn end(message: impl Into<String>) -> Failure {
        Failure {
            word: None,
            message: message.into(),
            choices: Vec::new(),
            suggest: true,
        }
    }

    pub fn plain(message: impl Into<String>) -> Failure {
        Failure::end(message)
    }

    pub fn choices(mut self, choices: Vec<String>) -> Failure {
        self.choices = choices;
        self
    }

    /// The caret line under the input, the message, a suggestion and the valid choices.
    pub fn render(&self, prompt_width: usize, line: &str, words: &[Word]) -> String {
        let col = match self.word.and_then(|i| words.get(i)) {
            Some(w) => w.at,
            None => line.trim_end().chars().count() + 1,
        };
        let mut out = String::new();
        if self.word.is_some() || !self.choices.is_empty() {
            let _ = writeln!(out, "{}^", " ".repeat(prompt_width + col));
        }
        let _ = write!(out, "error: {}", self.message);
        if let Some(w) = self
            .word
            .and_then(|i| words.get(i))
            .filter(|_| self.suggest)
            && let Some(best) = closest(&w.text, &self.choices)
        {
            let _ = write!(out, " (did you mean \"{best}\"?)");
        }
        out.push('\n');
        if !self.choices.is_empty() {
            let _ = writeln!(out, "valid here: {}", self.choices.join(", "));
        }
        out
    }
}

/// The choice within two edits of `word`, if exactly one is nearest.
fn closest<'a>(word: &str, choices: &'a [String]) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in choices {
        let d = distance(word, c);
        if d <= 2 && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_columns_and_quotes() {
        let w = split("  commit  \"two words\" x");
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].text.as_str(), w[0].at), ("commit", 2));
        assert_eq!((w[1].text.as_str(), w[1].at), ("two words", 10));
    }

    #[test]
    fn the_caret_points_at_the_bad_word_and_a_close_choice_is_suggested() {
        let line = "set domian x";
        let words = split(line);
        let f =
            Failure::at(1, "unknown word \"domian\"").choices(vec!["domain".into(), "dns".into()]);
        let text = f.render(2, line, &words);
        assert!(text.starts_with("      ^\n"), "{text:?}");
        assert!(text.contains("did you mean \"domain\""), "{text}");
        assert!(text.contains("valid here: domain, dns"), "{text}");
    }
}
