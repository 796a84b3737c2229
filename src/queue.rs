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
        let later = || tokio::time::Instant::now() + Duration::from_secs(30);
        assert_eq!(send(&tx, 1, later()).await, Ok(()));
        // full: the send waits (nobody takes, so it cannot have finished)...
        let sending = send(&tx, 2, later());
        tokio::pin!(sending);
        let waited = tokio::time::timeout(Duration::from_millis(20), &mut sending).await;
        assert!(
            waited.is_err(),
            "a send to a full queue finished: {waited:?}"
        );
        // ...until a receiver takes the first message, making room
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(sending.await, Ok(()));
        assert_eq!(rx.try_recv(), Ok(2));
        // full again and nobody takes: gives up at the deadline, not before
        assert_eq!(send(&tx, 3, later()).await, Ok(()));
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_millis(50);
        assert_eq!(send(&tx, 4, deadline).await, Err(SendError::Full));
        assert!(tokio::time::Instant::now() >= deadline);
        drop(rx);
        assert_eq!(send(&tx, 5, later()).await, Err(SendError::Disconnected));
    }
}
