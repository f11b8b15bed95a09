//! What a filter costs in the worker's configuration snapshot, counted by
//! the allocator: 10,000 filters must fit the worker's memory goal with
//! room to spare (issue 34 asks for 64 MB with 10,000 filters), so a field
//! that grows every filter shows here first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use eventeum_core::config::FilterConfig;
use eventeum_core::matcher::AddressSets;
use eventeum_core::spec::FilterDefinition;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only adds and subtracts the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FILTERS: usize = 10_000;

/// The bench's filters: `Simple(address indexed who, uint256 value)` on
/// 10,000 contracts, without typed views.
fn definition(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("bench_count_{i}"),
        "contractAddress": format!("0x{i:040x}"),
        "node": "bench_count",
        "view": false,
        "eventSpecification": {"type": "event", "name": "Simple", "inputs": [
            {"name": "who", "type": "address", "indexed": true},
            {"name": "value", "type": "uint256", "indexed": false}]},
    })
}

#[test]
fn a_filter_in_the_snapshot_costs_under_a_kilobyte() {
    let bodies: Vec<serde_json::Value> = (1..=FILTERS).map(definition).collect();
    let sets = AddressSets::new();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let filters: Vec<Arc<FilterConfig>> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let definition = FilterDefinition::from_json(body).unwrap();
            Arc::new(FilterConfig::new(
                format!("bench_count_{i}"),
                definition,
                0,
                None,
                &sets,
            ))
        })
        .collect();
    let per_filter = (LIVE_BYTES.load(Ordering::Relaxed) - before) / FILTERS as isize;
    println!("{per_filter} bytes per filter in the snapshot");
    assert!(
        per_filter < 1024,
        "{per_filter} bytes per filter: 10,000 filters would take {} MB",
        per_filter * FILTERS as isize / 1_000_000
    );

    // A follower fills in each filter's start on a copy of the node's
    // filters, kept until the configuration changes: the definitions are
    // shared, not copied.
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let started: Vec<Arc<FilterConfig>> = filters
        .iter()
        .map(|f| {
            let mut with_start = (**f).clone();
            with_start.start = Some(1);
            Arc::new(with_start)
        })
        .collect();
    let per_copy = (LIVE_BYTES.load(Ordering::Relaxed) - before) / FILTERS as isize;
    println!("{per_copy} bytes per filter in a follower's copy with starts");
    assert!(
        per_copy < 400,
        "{per_copy} bytes per filter copied to fill in its start"
    );
    drop((filters, started));
}
