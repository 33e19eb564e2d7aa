//! The three address files, parsed from text with no I/O: the recipient map (`address
//! route`), the alias map (`address target[, target…]`) and static recipient lists
//! (`address`). `#` starts a comment; blank lines are skipped; addresses compare
//! case-insensitively. A file with one bad line is refused whole, naming the line.

use super::table::RouteId;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Per-recipient route overrides.
#[derive(Debug, Default)]
pub struct RecipientMap {
    entries: HashMap<Box<str>, RouteId>,
}

/// One address to many.
#[derive(Debug, Default)]
pub struct Aliases {
    entries: HashMap<Box<str>, Box<[Box<str>]>>,
}

/// Valid recipients of one route.
#[derive(Debug, Default)]
pub struct AddressList {
    entries: HashSet<Box<str>>,
}

/// Why a file was refused: the first bad line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl RecipientMap {
    /// `route` turns a route name into its id, or `None` when no route has that name.
    pub fn parse(
        text: &str,
        route: impl Fn(&str) -> Option<RouteId>,
    ) -> Result<RecipientMap, LineError> {
        let mut entries = HashMap::with_capacity(text.len() / 32);
        for (line, words) in lines(text) {
            let [address, name] = words[..] else {
                return Err(bad(line, "expected `address route`"));
            };
            let key = address_key(address).ok_or_else(|| bad(line, "not an address"))?;
            let id = route(name).ok_or_else(|| bad(line, &format!("no route named `{name}`")))?;
            entries.insert(key, id);
        }
        entries.shrink_to_fit();
        Ok(RecipientMap { entries })
    }

    /// `address` must already be lower case.
    pub fn get(&self, address: &str) -> Option<RouteId> {
        self.entries.get(address).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Aliases {
    pub fn parse(text: &str) -> Result<Aliases, LineError> {
        let mut entries = HashMap::new();
        for (line, words) in lines(text) {
            let Some((address, targets)) = words.split_first() else {
                continue;
            };
            let key = address_key(address.trim_end_matches(':'))
                .ok_or_else(|| bad(line, "not an address"))?;
            if targets.is_empty() {
                return Err(bad(line, "an alias needs at least one target"));
            }
            let mut list = Vec::with_capacity(targets.len());
            for target in targets {
                if address_key(target).is_none() {
                    return Err(bad(line, &format!("target `{target}` is not an address")));
                }
                list.push(Box::from(*target));
            }
            entries.insert(key, list.into_boxed_slice());
        }
        Ok(Aliases { entries })
    }

    /// The targets of `address` (lower case), as written in the file.
    pub fn get(&self, address: &str) -> Option<&[Box<str>]> {
        self.entries.get(address).map(|t| &t[..])
    }
}

impl AddressList {
    pub fn parse(text: &str) -> Result<AddressList, LineError> {
        let mut entries = HashSet::with_capacity(text.len() / 24);
        for (line, words) in lines(text) {
            let [address] = words[..] else {
                return Err(bad(line, "expected one address per line"));
            };
            entries.insert(address_key(address).ok_or_else(|| bad(line, "not an address"))?);
        }
        Ok(AddressList { entries })
    }

    /// `address` must already be lower case.
    pub fn contains(&self, address: &str) -> bool {
        self.entries.contains(address)
    }
}

/// Non-empty lines without comments, split on blanks and commas, with 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        (!words.is_empty()).then_some((i + 1, words))
    })
}

/// The lookup key of an address: lower case, `local@domain` with both parts present.
fn address_key(address: &str) -> Option<Box<str>> {
    let address = address.trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return None;
    }
    Some(address.to_lowercase().into_boxed_str())
}

fn bad(line: usize, problem: &str) -> LineError {
    LineError {
        line,
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> Option<RouteId> {
        ["cloud", "onprem"]
            .iter()
            .position(|n| *n == name)
            .map(|i| i as RouteId)
    }

    #[test]
    fn the_map_routes_addresses_case_insensitively() {
        let text =
            "# migrated users\nAlice@Example.com cloud\n\n  bob@example.com   onprem # stays\n";
        let map = RecipientMap::parse(text, route).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("alice@example.com"), Some(0));
        assert_eq!(map.get("bob@example.com"), Some(1));
        assert_eq!(map.get("carol@example.com"), None);
    }

    #[test]
    fn a_bad_line_refuses_the_file_and_names_the_line() {
        let unknown = RecipientMap::parse("a@x.test cloud\nb@x.test nowhere\n", route);
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "line 2: no route named `nowhere`"
        );
        let short = RecipientMap::parse("a@x.test cloud\n\n# c\nb@x.test\n", route);
        assert_eq!(short.unwrap_err().line, 4);
        let not_address = RecipientMap::parse("nobody cloud\n", route);
        assert_eq!(not_address.unwrap_err().problem, "not an address");
    }

    #[test]
    fn aliases_expand_to_many_and_lists_hold_addresses() {
        let aliases = Aliases::parse("sales@example.com: a@example.com, b@other.test\n").unwrap();
        let targets: Vec<&str> = aliases
            .get("sales@example.com")
            .unwrap()
            .iter()
            .map(|t| &**t)
            .collect();
        assert_eq!(targets, ["a@example.com", "b@other.test"]);
        assert!(Aliases::parse("x@example.com\n").is_err());
        let list = AddressList::parse("A@Example.com\nb@example.com\n").unwrap();
        assert!(list.contains("a@example.com") && !list.contains("c@example.com"));
        assert_eq!(AddressList::parse("a@x b@x\n").unwrap_err().line, 1);
    }
}
