//! Handing work from async code to a thread through a bounded queue (the audit writer, the
//! store's writer): wait while the queue is full, without blocking the runtime, up to a
//! deadline.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

/// Why [`send`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue stayed full until the deadline.
    Full,
    /// The receiving thread is gone.
    Disconnected,
}

/// How long a full queue is left alone before the next try.
const RETRY: Duration = Duration::from_millis(2);

/// Put `msg` on `tx`'s queue, retrying every 2 ms while it is full, until `deadline`.
pub async fn send<T>(
    tx: &SyncSender<T>,
    mut msg: T,
    deadline: tokio::time::Instant,
) -> Result<(), SendError> {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(m)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(SendError::Full);
                }
                msg = m;
                tokio::time::sleep(RETRY).await;
            }
            Err(TrySendError::Disconnected(_)) => return Err(SendError::Disconnected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_room_then_gives_up_at_the_deadline() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<u32>(1);
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
        assert_eq!(send(&tx, 1, soon()).await, Ok(()));
        // full: a receiver takes the first message after 10 ms, making room
        let taker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            let first = rx.recv().unwrap();
            (first, rx)
        });
        assert_eq!(send(&tx, 2, soon()).await, Ok(()));
        let (first, rx) = taker.join().unwrap();
        assert_eq!(first, 1);
        // full again and nobody takes: gives up at the deadline
        let start = std::time::Instant::now();
        assert_eq!(send(&tx, 3, soon()).await, Err(SendError::Full));
        assert!(start.elapsed() >= Duration::from_millis(40));
        drop(rx);
        assert_eq!(send(&tx, 4, soon()).await, Err(SendError::Disconnected));
    }
}
