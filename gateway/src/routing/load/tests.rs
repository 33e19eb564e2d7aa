//! Loading and reloading the address files from real files.

use super::*;

fn setup(map: &str) -> (tempfile::TempDir, Maps) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipients.map");
    std::fs::write(&path, map).unwrap();
    let text = format!(
        r#"
        hostname = "mx.test"
        data_dir = "/tmp/x"
        [[listener]]
        address = "127.0.0.1:2525"
        [[route]]
        name = "cloud"
        domains = ["example.com"]
        next_hops = ["10.0.0.1:25"]
        [routing]
        map = "{}"
        "#,
        path.display()
    );
    let config = Config::parse(&text).unwrap();
    let maps = Maps::load(Arc::new(Table::new(&config)), &config).unwrap();
    (dir, maps)
}

fn replace(dir: &tempfile::TempDir, text: &str) {
    let tmp = dir.path().join("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.path().join("recipients.map")).unwrap();
}

#[test]
fn a_changed_file_is_reloaded_and_an_unchanged_one_is_not_read() {
    let (dir, maps) = setup("a@example.com cloud\n");
    assert!(!maps.reload(false).unwrap(), "unchanged");
    replace(&dir, "a@example.com cloud\nb@example.com cloud\n");
    assert!(maps.reload(false).unwrap(), "changed");
    assert_eq!(maps.current().map.len(), 2);
}

#[test]
fn a_broken_reload_keeps_the_old_map_and_names_the_line() {
    let (dir, maps) = setup("a@example.com cloud\n");
    replace(&dir, "b@example.com cloud\n# fine\nc@example.com nowhere\n");
    let error = maps.reload(false).unwrap_err().to_string();
    assert!(error.contains("routing.map"), "{error}");
    assert!(
        error.contains("line 3: no route named `nowhere`"),
        "{error}"
    );
    let current = maps.current();
    assert_eq!(current.map.len(), 1);
    assert!(current.map.get("a@example.com").is_some());
    assert!(current.map.get("b@example.com").is_none());
    // A vanished file is a failed reload too, not an empty map.
    std::fs::remove_file(dir.path().join("recipients.map")).unwrap();
    assert!(maps.reload(false).is_err());
    assert!(maps.current().map.get("a@example.com").is_some());
}

#[test]
fn check_files_reports_a_bad_line_as_a_configuration_error() {
    let (dir, _) = setup("a@example.com cloud\n");
    replace(&dir, "x y z\n");
    let text = format!(
        "hostname = \"mx.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n[routing]\nmap = \"{}\"\n",
        dir.path().join("recipients.map").display()
    );
    let errors = check_files(&Config::parse(&text).unwrap());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().starts_with("routing.map = "),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .to_string()
            .ends_with("line 1: expected `address route`")
    );
}
