//! The scheduler's pure parts: which destinations are watched and how they are named.

use super::index::dests_of;
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
    let mut by_dest: HashMap<Arc<Destination>, BTreeSet<(Secs, QueueId)>> = HashMap::new();
    for (n, env) in envs.iter().enumerate() {
        for dest in dests_of(&mut routes, env) {
            let key = (secs(env.received), QueueId(n as u64 + 1));
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

#[test]
fn a_queued_message_costs_the_scheduler_24_bytes_whatever_its_envelope() {
    // With its id as the map's key and the index entries, a million queued messages fit
    // in well under 256 MiB; the envelopes stay in the queue (`BENCHMARKS.md`).
    assert!(
        std::mem::size_of::<Entry>() <= 24,
        "{}",
        std::mem::size_of::<Entry>()
    );
}

#[test]
fn messages_to_the_same_places_share_one_set_of_routing_keys() {
    let mut keys = Interner::default();
    let rcpts = |list: &[&str]| list.iter().map(|a| Recipient::pending(*a)).collect();
    let a = Envelope::new("s@x.test", rcpts(&["1@a.test", "2@a.test", "3@b.test"]), 1);
    let b = Envelope::new("t@y.test", rcpts(&["9@a.test", "8@b.test"]), 2);
    let mut c = Envelope::new("t@y.test", rcpts(&["9@a.test", "8@b.test"]), 2);
    c.recipients[1].status = crate::envelope::RcptStatus::Delivered {
        reply: "250 ok".into(),
        at: 3,
    };
    let (ka, kb, kc) = (keys.of(&a), keys.of(&b), keys.of(&c));
    assert_eq!(ka.len(), 2, "one key per domain: {ka:?}");
    assert!(Arc::ptr_eq(&ka, &kb), "same domains, one shared set");
    assert_eq!(kc.len(), 1, "only open recipients count: {kc:?}");
    assert_eq!(&*kc[0].domain, "a.test");
}
