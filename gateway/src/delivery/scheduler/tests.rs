//! The scheduler's pure parts: which destinations are watched and how they are named.

use super::*;

#[test]
fn health_rows_for_the_same_next_hop_tell_policy_and_users_apart() {
    let text = r#"
        hostname = "gw.test"
        data_dir = "/nonexistent"
        [[listener]]
        address = "127.0.0.1:2525"
        [[domain]]
        name = "a.test"
        next_hops = ["127.0.0.1:25"]
        tls = "none"
        [[domain]]
        name = "b.test"
        next_hops = ["127.0.0.1:25"]
        tls = "required"
        [[route]]
        name = "onprem"
        next_hops = ["127.0.0.1:25"]
        tls = "none"
    "#;
    let config = Arc::new(Config::parse(text).expect("config"));
    let (mut routes, health) = (
        Routes::new(config.clone()),
        Health::new(2, 2, &Default::default()),
    );
    let configured = configured(&config, &mut routes, &health);
    assert_eq!(configured.len(), 2);
    let rows = health.snapshot();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].name, rows[1].name, "one next hop…");
    assert_eq!(
        (rows[0].tls.as_str(), rows[1].tls.as_str()),
        ("none", "required")
    );
    assert_eq!(rows[0].used_by, ["domain a.test", "route onprem"]);
    assert_eq!(rows[1].used_by, ["domain b.test"]);
}
