//! The cost of a 100,000-entry recipient map: load time, the memory it keeps, and the cost
//! of routing one recipient with it. Memory is counted exactly by a counting allocator
//! (this test binary's global allocator); times are wall clock in whatever profile the
//! test runs in. `cargo test -p edgemx-tests --test route_map_size -- --nocapture` prints
//! the figures.

use edgemx::config::Config;
use edgemx::routing::{Maps, Table};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: usize = 100_000;

#[test]
fn a_100k_entry_map_loads_quickly_and_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("recipients.map");
    let mut text = String::with_capacity(ENTRIES * 40);
    for i in 0..ENTRIES {
        let route = if i % 3 == 0 { "cloud" } else { "onprem" };
        text.push_str(&format!("user{i:06}.surname@example.com {route}\n"));
    }
    std::fs::write(&map, &text).unwrap();
    drop(text);
    let config = Config::parse(&format!(
        r#"
hostname = "mx.test"
data_dir = "{dir}"
[[listener]]
address = "127.0.0.1:2525"
[[route]]
name = "onprem"
domains = ["example.com"]
next_hops = ["10.0.0.1:25"]
[[route]]
name = "cloud"
next_hops = ["10.0.0.2:25"]
[routing]
map = "{map}"
"#,
        dir = dir.path().display(),
        map = map.display()
    ))
    .unwrap();
    let table = Arc::new(Table::new(&config));

    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let maps = Maps::load(table.clone(), &config).unwrap();
    let load = started.elapsed();
    let kept = LIVE.load(Ordering::Relaxed) - before;

    let snapshot = maps.current();
    assert_eq!(snapshot.map.len(), ENTRIES);
    let addresses: Vec<String> = (0..1000)
        .map(|i| format!("User{:06}.Surname@example.com", i * 97))
        .collect();
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        for a in &addresses {
            black_box(edgemx::policy::route(&table, &snapshot, a, true));
        }
    }
    let per_route = started.elapsed() / (rounds * addresses.len()) as u32;
    let routed = edgemx::policy::route(&table, &snapshot, "User000000.Surname@example.com", true);
    assert_eq!(routed.recipient.route.as_deref(), Some("cloud"));

    println!(
        "{ENTRIES} entries: load {load:?}, {:.1} MiB kept ({} bytes per entry), route one recipient {per_route:?}",
        kept as f64 / (1 << 20) as f64,
        kept / ENTRIES as isize
    );
    // Generous bounds (debug build, shared machine): they catch a blow-up, not a wobble.
    assert!(kept < 32 << 20, "{kept} bytes for {ENTRIES} entries");
    assert!(load.as_secs() < 10, "{load:?}");
}
