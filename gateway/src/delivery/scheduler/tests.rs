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

#[test]
fn depths_count_each_message_once_per_destination_with_the_oldest_age() {
    let config = Config::parse(
        "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n\
         [[domain]]\nname = \"a.test\"\nnext_hops = [\"127.0.0.1:2601\"]\n\
         [[domain]]\nname = \"b.test\"\nnext_hops = [\"127.0.0.1:2602\"]\n",
    )
    .expect("config");
    let mut routes = Routes::new(Arc::new(config));
    let rcpts = |list: &[&str]| list.iter().map(|a| Recipient::pending(*a)).collect();
    let envs = [
        Envelope::new("s@x.test", rcpts(&["1@a.test", "2@a.test"]), 150),
        Envelope::new("s@x.test", rcpts(&["1@a.test", "1@b.test"]), 100),
        Envelope::new("s@x.test", rcpts(&["3@b.test"]), 180),
    ];
    let mut by_dest: HashMap<Arc<Destination>, BTreeSet<(u64, QueueId)>> = HashMap::new();
    for (n, env) in envs.iter().enumerate() {
        for dest in dests_of(&mut routes, env) {
            let key = (env.received, QueueId(n as u64 + 1));
            by_dest.entry(dest).or_default().insert(key);
        }
    }
    let seen = depths(&by_dest, 200);
    assert_eq!(seen.get("127.0.0.1:2601"), Some(&(2, 100)));
    assert_eq!(seen.get("127.0.0.1:2602"), Some(&(2, 100)));
    by_dest.values_mut().for_each(|ids| {
        ids.remove(&(100, QueueId(2)));
    });
    let seen = depths(&by_dest, 200);
    assert_eq!(seen.get("127.0.0.1:2601"), Some(&(1, 50)));
    assert_eq!(seen.get("127.0.0.1:2602"), Some(&(1, 20)));
}
