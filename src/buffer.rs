//! Fixed-size relay buffers, lent from a per-thread pool.
//!
//! A connection holds a buffer only while a direction has bytes in flight;
//! an idle relay holds none. Once the pool is warm, taking and returning
//! buffers never allocates, which keeps the steady-state relay path free of
//! allocation.

pub type Buf = Box<[u8]>;

pub struct Pool {
    free: Vec<Buf>,
    size: usize,
    max_free: usize,
}

impl Pool {
    /// `max_free` bounds what the pool keeps after a burst: buffers returned
    /// beyond it are freed.
    pub fn new(size: usize, max_free: usize) -> Pool {
        Pool { free: Vec::with_capacity(max_free), size, max_free }
    }

    pub fn take(&mut self) -> Buf {
        self.free.pop().unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    pub fn give(&mut self, buf: Buf) {
        if self.free.len() < self.max_free {
            self.free.push(buf);
        }
    }

    /// Buffers currently idle in the pool.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let mut p = Pool::new(64, 2);
        let a = p.take();
        let ptr = a.as_ptr();
        assert_eq!(a.len(), 64);
        p.give(a);
        let b = p.take();
        assert_eq!(b.as_ptr(), ptr);
        drop(b);
        p.give(vec![0; 64].into_boxed_slice());
        p.give(vec![0; 64].into_boxed_slice());
        p.give(vec![0; 64].into_boxed_slice());
        assert_eq!(p.idle(), 2);
    }
}
