//! The helper thread that runs `gss_accept_sec_context`, which reads the
//! keytab and writes the replay cache and so may wait on a disk: a
//! reactor never calls it (the resolver pool does the same for DNS).
//! One thread: a Kerberos accept is well under a millisecond of CPU, and
//! one thread keeps the credential handle single-threaded. The queue is
//! bounded; a full queue refuses the client at once.

use super::{Accepted, Context, Cred};
use mio::Waker;
use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};

/// Steps waiting for the thread; beyond this a client is refused.
pub const MAX_QUEUE: usize = 256;

/// One context-establishment step to run.
pub struct Job {
    pub reactor: usize,
    pub key: usize,
    pub id: u64,
    pub ctx: Box<Context>,
    /// The client's token (at most 65,535 bytes, RFC 1961 §3).
    pub token: Box<[u8]>,
}

/// Its outcome, back to the connection's reactor with the context.
pub struct Done {
    pub key: usize,
    pub id: u64,
    pub ctx: Box<Context>,
    pub result: Result<Accepted, String>,
}

/// Where one reactor receives its outcomes.
pub struct Outlet {
    pub tx: Sender<Done>,
    pub waker: Arc<Waker>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

struct Inner {
    q: Mutex<Queue>,
    cv: Condvar,
}

/// The handle reactors submit through.
pub struct Worker {
    inner: Arc<Inner>,
}

impl Worker {
    /// Starts the thread, which owns `cred` from now on.
    pub fn start(cred: Cred, outlets: Vec<Outlet>) -> std::io::Result<Worker> {
        let inner = Arc::new(Inner { q: Mutex::new(Queue::default()), cv: Condvar::new() });
        let i = inner.clone();
        std::thread::Builder::new().name("socksd-gss".into()).spawn(move || run(&i, &cred, &outlets))?;
        Ok(Worker { inner })
    }

    /// Queues a step; gives the job back when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        let mut q = self.inner.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.jobs.len() >= MAX_QUEUE || q.stop {
            return Err(Box::new(job));
        }
        q.jobs.push_back(job);
        drop(q);
        self.inner.cv.notify_one();
        Ok(())
    }

    /// Ends the thread after the step it is running.
    pub fn stop(&self) {
        self.inner.q.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.inner.cv.notify_all();
    }
}

fn run(inner: &Inner, cred: &Cred, outlets: &[Outlet]) {
    loop {
        let job = {
            let mut q = inner.q.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.stop {
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                q = inner.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Job { reactor, key, id, mut ctx, token } = job;
        let result = ctx.accept(cred, &token);
        if let Some(o) = outlets.get(reactor) {
            // A stopped reactor has dropped its receiver: nothing to do.
            if o.tx.send(Done { key, id, ctx, result }).is_ok() {
                let _ = o.waker.wake();
            }
        }
    }
}
