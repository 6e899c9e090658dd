//! Running a stage's work on plain threads (derive, describe).

/// Runs `work` on every item, `workers` plain threads pulling from one queue, and returns the
/// results in no set order. Plain threads, not rayon's: a worker may wait for the memory
/// budget (or a provider), and a rayon thread waiting could hold up the very work that frees it.
pub(super) fn on_workers<T: Send, R: Send>(
    mut items: Vec<T>,
    workers: usize,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len()).max(1);
    // Taken from the end: reversed, the work starts in the order given.
    items.reverse();
    let queue = std::sync::Mutex::new(items);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let item = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(item) = item else { break };
                    let result = work(item);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
