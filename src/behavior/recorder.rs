//! Appends session records to their file, off the callback threads.
//!
//! # Invariants
//!
//! * One writer thread owns the file; sessions hand it finished lines
//!   through a bounded queue and never wait: when the queue is full the
//!   line is dropped and counted (and the count logged).
//! * The file is opened with `O_APPEND` and each line is written with one
//!   `write(2)`. A short write (a full disk) is undone by truncating the
//!   file back to its length before the write, so the file never holds
//!   half a record.
//! * [`Recorder::reopen`] (SIGHUP) closes the file and opens the path again
//!   (maybe a new one), so that logrotate's rename-and-reopen works; lines
//!   queued before the request go to the old file.
//! * [`Recorder::shutdown`] writes what is queued and joins the thread.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

enum Job {
    Line(String),
    Reopen(Option<PathBuf>),
}

pub struct Recorder {
    tx: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl Recorder {
    /// A recorder writing to `path` (none: lines are discarded until a
    /// reopen names one), queueing at most `queue` lines.
    pub fn start(path: Option<PathBuf>, queue: usize) -> Recorder {
        let (tx, rx) = sync_channel(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("mailward-records".into())
            .spawn(move || writer(path, rx))
            .map_err(|e| log::error!("cannot start the record writer: {e}"))
            .ok();
        Recorder {
            tx: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
            dropped: AtomicU64::new(0),
        }
    }

    fn send(&self, job: Job) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|t| t.try_send(job)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) | Some(Err(TrySendError::Disconnected(_))) | None => {
                false
            }
        }
    }

    /// Queues one line (ending with a newline).
    pub fn record(&self, line: String) {
        if !self.send(Job::Line(line)) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_power_of_two() {
                log::warn!("session records: queue full, {n} record(s) dropped so far");
            }
        }
    }

    /// Closes the file and opens `path`.
    pub fn reopen(&self, path: Option<PathBuf>) {
        if !self.send(Job::Reopen(path)) {
            log::warn!("session records: queue full, file not reopened");
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued, then stops the writer.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t
            && t.join().is_err()
        {
            log::error!("session records: the writer panicked");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn open(path: &Path) -> Option<File> {
    match OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            log::error!("session records: cannot open {}: {e}", path.display());
            None
        }
    }
}

fn writer(mut path: Option<PathBuf>, rx: Receiver<Job>) {
    let mut file = path.as_deref().and_then(open);
    let mut failures = 0u64;
    while let Ok(job) = rx.recv() {
        match job {
            Job::Reopen(p) => {
                path = p;
                file = path.as_deref().and_then(open);
            }
            Job::Line(line) => {
                if file.is_none() {
                    file = path.as_deref().and_then(open);
                }
                let Some(f) = file.as_mut() else { continue };
                if let Err(e) = write_line(f, line.as_bytes()) {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        log::error!("session records: {e} ({failures} failure(s))");
                    }
                }
            }
        }
    }
}

/// Writes `line` with one `write(2)`, undoing a short write.
fn write_line(f: &mut File, line: &[u8]) -> std::io::Result<()> {
    let n = loop {
        match f.write(line) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n < line.len() {
        let len = f.metadata()?.len();
        f.set_len(len.saturating_sub(n as u64))?;
        return Err(std::io::Error::other(format!(
            "short write ({n} of {} bytes), record removed",
            line.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_reopen_follows_a_rename() {
        let dir = std::env::temp_dir().join(format!("mailward-rec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let r = Recorder::start(Some(path.clone()), 10);
        r.record("{\"a\":1}\n".into());
        // logrotate: rename, then SIGHUP.
        let rotated = dir.join("sessions.jsonl.1");
        // Wait for the first line before renaming (the writer is async).
        for _ in 0..1000 {
            if std::fs::read_to_string(&path).unwrap().lines().count() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::rename(&path, &rotated).unwrap();
        r.record("{\"b\":2}\n".into());
        r.reopen(Some(path.clone()));
        r.record("{\"c\":3}\n".into());
        r.shutdown();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "old\n{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"c\":3}\n");
        r.record("late\n".into());
        assert_eq!(r.dropped(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
