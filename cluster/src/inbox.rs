//! Received envelopes on their way to the server's handle: a queue that each
//! connection's reader appends a read's worth of envelopes to, and that the handle
//! takes whole.
//!
//! The mirror of [`crate::outbox`]: a lock and a move per batch, no allocation per
//! read, and a wake-up only when the handle is waiting. It is bounded in batches (one
//! per socket read, [`crate::Options::inbound_capacity`]); a reader that finds it full
//! waits, which stops it reading its socket, so that a slow handle slows its peers'
//! writers through TCP rather than growing memory.
//!
//! The two queues that change places keep the room the largest burst gave them:
//! shrinking them whenever traffic paused lowered one-way throughput by up to a tenth
//! in alternating runs, since steady traffic pauses often and grows them again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::envelope::Envelope;

/// The envelopes received for one server.
#[derive(Debug)]
pub(crate) struct Inbox<M> {
    state: Mutex<State<M>>,
    /// Wakes the handle when envelopes arrive while it waits; shared with the server's
    /// core, which signals it too when the server stops.
    arrived: Arc<Notify>,
    /// Wakes readers waiting for room once the handle takes a full inbox.
    room: Notify,
    /// Most batches held before readers must wait.
    capacity: usize,
}

#[derive(Debug)]
struct State<M> {
    envelopes: VecDeque<Envelope<M>>,
    /// Batches delivered since the handle last took them.
    batches: usize,
    /// The handle found nothing and waits for [`Inbox::arrived`].
    waiting: bool,
    /// The handle is gone: nothing delivered would be read.
    closed: bool,
}

/// What became of a batch given to [`Inbox::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Moved into the inbox; the batch is left empty.
    Taken,
    /// The inbox holds `capacity` batches; the batch is left as it was.
    Full,
    /// The handle is gone; the batch is left as it was.
    Closed,
}

impl<M> Inbox<M> {
    /// An empty inbox that holds at most `capacity` batches and signals arrivals on
    /// `arrived`.
    pub(crate) fn new(capacity: usize, arrived: Arc<Notify>) -> Inbox<M> {
        Inbox {
            state: Mutex::new(State {
                envelopes: VecDeque::new(),
                batches: 0,
                waiting: false,
                closed: false,
            }),
            arrived,
            room: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Nothing panics while holding this lock; should something ever, the queue is
        // still whole, so carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves every envelope of `batch` to the end of the inbox as one batch, unless the
    /// inbox is full or closed.
    pub(crate) fn deliver(&self, batch: &mut Vec<Envelope<M>>) -> Delivered {
        let mut state = self.lock();
        if state.closed {
            return Delivered::Closed;
        }
        if state.batches >= self.capacity {
            return Delivered::Full;
        }

        state.envelopes.extend(batch.drain(..));
        state.batches += 1;
        if state.waiting {
            state.waiting = false;
            self.arrived.notify_one();
        }
        Delivered::Taken
    }

    /// Waits until the inbox has room for a batch or is closed; it may be full again by
    /// the time the caller delivers.
    pub(crate) async fn room(&self) {
        let notified = self.room.notified();
        tokio::pin!(notified);

        // Registered before looking, so that a take in between is not missed.
        notified.as_mut().enable();
        {
            let state = self.lock();
            if state.closed || state.batches < self.capacity {
                return;
            }
        }
        notified.await;
    }

    /// Moves everything received into `into`, which must be empty, and returns whether
    /// there was anything. With nothing received, marks the handle as waiting instead:
    /// the caller then waits for [`Inbox::arrived`].
    pub(crate) fn take(&self, into: &mut VecDeque<Envelope<M>>) -> bool {
        debug_assert!(into.is_empty());
        let mut state = self.lock();
        if state.envelopes.is_empty() {
            state.waiting = true;
            return false;
        }

        std::mem::swap(&mut state.envelopes, into);
        let batches = std::mem::take(&mut state.batches);
        drop(state);

        if batches >= self.capacity {
            self.room.notify_waiters();
        }
        true
    }

    /// Resolves once envelopes arrive after the handle started waiting (or at once if
    /// some arrived since the last wait), or once the server stops.
    pub(crate) async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Refuses further deliveries and releases readers waiting for room: the handle is
    /// gone.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[u64]) -> Vec<Envelope<()>> {
        ids.iter()
            .map(|&message_id| Envelope {
                from: 2,
                message_id,
                message: (),
            })
            .collect()
    }

    fn ids(envelopes: &VecDeque<Envelope<()>>) -> Vec<u64> {
        envelopes.iter().map(|e| e.message_id).collect()
    }

    /// Batches come out in the order delivered, and delivering empties the batch.
    #[test]
    fn a_take_returns_every_batch_in_order() {
        let inbox = Inbox::new(4, Arc::default());
        let mut first = batch(&[1, 2]);
        assert_eq!(inbox.deliver(&mut first), Delivered::Taken);
        assert!(first.is_empty());
        assert_eq!(inbox.deliver(&mut batch(&[3])), Delivered::Taken);

        let mut taken = VecDeque::new();
        assert!(inbox.take(&mut taken));
        assert_eq!(ids(&taken), [1, 2, 3]);

        taken.clear();
        assert!(!inbox.take(&mut taken), "nothing left after a take");
    }

    /// The capacity counts batches; a full inbox leaves the batch with its reader.
    #[test]
    fn a_full_inbox_keeps_the_batch_until_taken() {
        let inbox = Inbox::new(1, Arc::default());
        assert_eq!(inbox.deliver(&mut batch(&[1, 2, 3])), Delivered::Taken);
        let mut second = batch(&[4]);
        assert_eq!(inbox.deliver(&mut second), Delivered::Full);
        assert_eq!(second.len(), 1);

        let mut taken = VecDeque::new();
        assert!(inbox.take(&mut taken));
        assert_eq!(inbox.deliver(&mut second), Delivered::Taken);
    }

    /// A closed inbox refuses deliveries, and a reader waiting for room is released.
    #[tokio::test]
    async fn closing_refuses_deliveries_and_releases_waiting_readers() {
        let inbox = Arc::new(Inbox::new(1, Arc::default()));
        assert_eq!(inbox.deliver(&mut batch(&[1])), Delivered::Taken);

        let reader = Arc::clone(&inbox);
        let waiting = tokio::spawn(async move {
            reader.room().await;
            reader.deliver(&mut batch(&[2]))
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());

        inbox.close();
        assert_eq!(waiting.await.unwrap(), Delivered::Closed);
    }

    /// A waiting handle is woken by the first batch delivered after it started waiting.
    #[tokio::test]
    async fn a_delivery_wakes_the_waiting_handle() {
        let inbox = Arc::new(Inbox::new(4, Arc::default()));
        let mut taken = VecDeque::new();
        assert!(!inbox.take(&mut taken));

        let reader = Arc::clone(&inbox);
        tokio::spawn(async move { reader.deliver(&mut batch(&[7])) });
        inbox.arrived().await;
        assert!(inbox.take(&mut taken));
        assert_eq!(ids(&taken), [7]);
    }
}
