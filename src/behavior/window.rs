//! Sliding windows as rings of bucket counters.
//!
//! A window of length `W` seconds with `B` buckets has a resolution of
//! `W / B` seconds: bucket `e % B` counts the events of epoch `e` (the
//! seconds since the tracker's origin divided by the resolution). The sum
//! of the ring is the count of the last `B` epochs, the current one
//! included, so it covers between `W - W/B` and `W` seconds: a window is
//! exact to within one bucket.
//!
//! Invariants: a ring is advanced to the current epoch before it is read
//! or written, and advancing zeroes exactly the buckets of the epochs that
//! left the window. Counters saturate at `u32::MAX`.
//!
//! Costs: `4 × B` bytes per ring; advancing costs at most `B` stores,
//! summing `B` loads. No allocation.

/// Zeroes the buckets of the epochs after `last` up to `now`.
pub fn advance(ring: &mut [u32], last: u64, now: u64) {
    let b = ring.len() as u64;
    if b == 0 || now <= last {
        return;
    }
    if now - last >= b {
        ring.fill(0);
        return;
    }
    for e in last + 1..=now {
        ring[(e % b) as usize] = 0;
    }
}

/// Adds `n` to the bucket of epoch `now` (the ring is advanced to `now`).
pub fn add(ring: &mut [u32], now: u64, n: u32) {
    let b = ring.len() as u64;
    if let Some(c) = ring.get_mut((now % b.max(1)) as usize) {
        *c = c.saturating_add(n);
    }
}

/// The count over the window.
pub fn sum(ring: &[u32]) -> u64 {
    ring.iter().map(|&c| u64::from(c)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_bucket_by_bucket() {
        let mut r = [0u32; 4];
        add(&mut r, 10, 1);
        advance(&mut r, 10, 11);
        add(&mut r, 11, 2);
        assert_eq!(sum(&r), 3);
        advance(&mut r, 11, 13);
        assert_eq!(sum(&r), 3, "epochs 10..=13 are in the window");
        advance(&mut r, 13, 14);
        assert_eq!(sum(&r), 2, "epoch 10 left");
        advance(&mut r, 14, 15);
        assert_eq!(sum(&r), 0);
        add(&mut r, 15, u32::MAX);
        add(&mut r, 15, 5);
        assert_eq!(sum(&r), u64::from(u32::MAX), "saturates");
        advance(&mut r, 15, 1000);
        assert_eq!(sum(&r), 0);
        advance(&mut r, 1000, 3);
        add(&mut [], 1, 1);
    }
}
