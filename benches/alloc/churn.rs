//! The allocation-heavy workload both allocator benches run: threads churning `Vec`s,
//! `HashMap`s and `String`s, with a working set that stays bounded.

use std::collections::HashMap;
use std::hint::black_box;

/// One thread's churn: `ops` rounds of building and dropping collections of varied sizes.
pub fn churn_thread(seed: u64, ops: usize) -> usize {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    for i in 0..ops {
        let n = (next() % 2048) as usize;
        let mut v: Vec<u64> = Vec::new();
        for k in 0..n / 8 {
            v.push(k as u64);
        }
        let mut m: HashMap<u64, String> = HashMap::new();
        for k in 0..(n / 256) as u64 {
            m.insert(k, format!("value {k} of round {i}"));
        }
        total += v.len() + m.len();
        // A working set of a few hundred buffers, replaced as it goes.
        let buf = vec![0u8; (next() % 8192) as usize];
        if kept.len() < 256 {
            kept.push(buf);
        } else {
            let j = (next() % 256) as usize;
            kept[j] = buf;
        }
        black_box((&v, &m));
    }
    total + kept.len()
}

/// `threads` threads churning `ops` rounds each.
pub fn churn(threads: u64, ops: usize) -> usize {
    let handles: Vec<_> = (0..threads)
        .map(|t| std::thread::spawn(move || churn_thread(0x9e37_79b9 ^ t, ops)))
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}
