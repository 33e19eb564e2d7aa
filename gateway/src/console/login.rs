//! The admin account: one `admin:HASH` line in a file on the data partition (mode 0600),
//! hashed with [`crate::password`]. No file means the appliance was never set up.

use super::term::{Term, print};
use std::path::Path;
use std::time::Duration;

pub const USER: &str = "admin";

/// Failed attempts before the prompt starts over; each failure costs a pause.
const ATTEMPTS: usize = 3;
const PAUSE: Duration = Duration::from_secs(2);

pub fn exists(path: &Path) -> bool {
    stored(path).is_some()
}

fn stored(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("admin:"))?;
    crate::password::is_valid(line.trim()).then(|| line.trim().to_string())
}

pub fn set(path: &Path, plain: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let line = format!("{USER}:{}\n", crate::password::hash(plain));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::config::store::write_atomic(path, line.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Asks for the user and password until they match; `false` when the line went away.
pub fn prompt(term: &mut Term, path: &Path, banner: &str) -> bool {
    loop {
        print(banner);
        for _ in 0..ATTEMPTS {
            let user = match term.read("login: ") {
                super::term::Input::Line(l) => l.trim().to_string(),
                super::term::Input::Interrupted => continue,
                super::term::Input::End => return false,
            };
            if user.is_empty() {
                continue;
            }
            let Some(password) = term.secret("Password: ") else {
                return false;
            };
            let ok = user == USER
                && stored(path).is_some_and(|h| crate::password::verify(&password, &h));
            if ok {
                return true;
            }
            std::thread::sleep(PAUSE);
            print("Login incorrect\n");
        }
    }
}

/// Whether `plain` is the admin password stored at `path`; a wrong one costs the pause a
/// wrong login costs.
pub fn check(path: &Path, plain: &str) -> bool {
    let ok = stored(path).is_some_and(|h| crate::password::verify(plain, &h));
    if !ok {
        std::thread::sleep(PAUSE);
    }
    ok
}

/// Asks for a new password twice; `None` when the line went away.
pub fn choose(term: &mut Term) -> Option<String> {
    loop {
        let first = term.secret("New admin password: ")?;
        if first.chars().count() < 8 {
            print("The password needs at least 8 characters.\n");
            continue;
        }
        let again = term.secret("Repeat the password: ")?;
        if first == again {
            return Some(first);
        }
        print("The two entries differ; again.\n");
    }
}
