//! Output pipes after a command, as Junos has them: `show log | match timeout | count`.
//! `match TEXT` keeps the lines containing TEXT, `except TEXT` drops them, `count` prints
//! how many lines there are, `no-more` prints without the pager. TEXT is matched as written
//! (no patterns); quote it to include blanks.

use super::words::{Failure, Word};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Match(String),
    Except(String),
    Count,
    NoMore,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pipe(Vec<Stage>);

const STAGES: &[(&str, &str)] = &[
    ("match", "keep the lines containing TEXT"),
    ("except", "drop the lines containing TEXT"),
    ("count", "count the lines"),
    ("no-more", "print everything without the pager"),
];

/// `?` after a `|`.
pub fn help() -> String {
    STAGES
        .iter()
        .map(|(word, help)| format!("  {word:<8}  {help}\n"))
        .collect()
}

/// Takes the pipe stages off the end of `words`: `None` without a `|`, else the index of
/// the first `|` and the stages.
pub fn split_off(words: &mut Vec<Word>) -> Result<Option<(usize, Pipe)>, Failure> {
    let Some(at) = words.iter().position(|w| w.text == "|") else {
        return Ok(None);
    };
    let mut stages = Vec::new();
    let mut i = at;
    while i < words.len() {
        // words[i] is a `|`.
        let choices = || STAGES.iter().map(|(w, _)| w.to_string()).collect();
        let Some(name) = words.get(i + 1) else {
            return Err(Failure::end("a pipe needs a command after `|`").choices(choices()));
        };
        let text = |n: usize| {
            words
                .get(n)
                .filter(|w| w.text != "|")
                .map(|w| w.text.clone())
                .ok_or_else(|| Failure::at(i + 1, format!("`{}` needs TEXT", name.text)))
        };
        let (stage, used) = match name.text.as_str() {
            "match" => (Stage::Match(text(i + 2)?), 3),
            "except" => (Stage::Except(text(i + 2)?), 3),
            "count" => (Stage::Count, 2),
            "no-more" => (Stage::NoMore, 2),
            other => {
                return Err(
                    Failure::at(i + 1, format!("unknown pipe \"{other}\"")).choices(choices())
                );
            }
        };
        stages.push(stage);
        i += used;
        match words.get(i) {
            None => {}
            Some(w) if w.text == "|" => {}
            Some(_) => return Err(Failure::at(i, "expected `|` or the end of the line")),
        }
    }
    words.truncate(at);
    Ok(Some((at, Pipe(stages))))
}

impl Pipe {
    /// The output through every stage, and whether it may still be paged.
    pub fn apply(&self, output: &str) -> (String, bool) {
        let mut lines: Vec<&str> = output.lines().collect();
        let mut more = true;
        let mut counted = None;
        for stage in &self.0 {
            match stage {
                Stage::Match(text) => lines.retain(|l| l.contains(text.as_str())),
                Stage::Except(text) => lines.retain(|l| !l.contains(text.as_str())),
                Stage::Count => counted = Some(lines.len()),
                Stage::NoMore => more = false,
            }
        }
        let text = match counted {
            Some(n) => format!("Count: {n} lines\n"),
            None => lines.iter().map(|l| format!("{l}\n")).collect(),
        };
        (text, more)
    }
}

#[cfg(test)]
mod tests {
    use super::super::words::split;
    use super::*;

    #[test]
    fn stages_filter_count_and_turn_the_pager_off() {
        let mut words = split("show log | match timeout | except 127.0.0.1 | no-more");
        let (at, pipe) = split_off(&mut words).unwrap().unwrap();
        assert_eq!(at, 2);
        assert_eq!(words.len(), 2, "the command is left");
        let out = "a timeout 10.0.0.1\nb ok\nc timeout 127.0.0.1\nd timeout\n";
        assert_eq!(
            pipe.apply(out),
            ("a timeout 10.0.0.1\nd timeout\n".into(), false)
        );
        let mut words = split("show log | match \"two words\" | count");
        let (_, pipe) = split_off(&mut words).unwrap().unwrap();
        assert_eq!(
            pipe.apply("x two words\ntwo\ntwo words y\n").0,
            "Count: 2 lines\n"
        );
        let mut plain = split("show log");
        assert_eq!(split_off(&mut plain).unwrap(), None);
    }

    #[test]
    fn a_bad_pipe_points_at_the_word() {
        let mut words = split("show log | grep x");
        let failure = split_off(&mut words).unwrap_err();
        assert_eq!(failure.word, Some(3));
        assert!(failure.choices.contains(&"match".to_string()));
        let mut words = split("show log | match");
        assert!(
            split_off(&mut words)
                .unwrap_err()
                .message
                .contains("needs TEXT")
        );
        let mut words = split("show log | count extra");
        assert_eq!(split_off(&mut words).unwrap_err().word, Some(4));
    }
}
