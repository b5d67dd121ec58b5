//! One peer's outgoing frames: a byte buffer that senders append encoded frames to
//! and that the peer's writer takes whole.
//!
//! Appending costs a lock and a copy, with no allocation and no hand-off per message;
//! the writer swaps the buffer for its empty one and writes what it took in one go.
//! Frames queued while the writer is busy wait in the buffer, so a burst is written in
//! as many system calls as the writer needs turns, not one per message.
//!
//! While the writer is parked with nothing queued, a sender over plain TCP may write a
//! frame straight to the socket instead, sparing the writer's wake-up on the
//! round-trip path. Order is kept because that happens only under the same lock,
//! only while the writer is parked (it parks only after writing all it took), and
//! whatever the socket does not take goes into the buffer at once, still under the
//! lock, which unparks the writer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Room reserved in a new buffer: a few dozen small frames.
const INITIAL_CAPACITY: usize = 4 * 1024;

/// A buffer that grew beyond this during a burst of large frames is not kept.
const KEPT_CAPACITY: usize = 1024 * 1024;

/// Shortest pause since the previous send for a frame to be written directly. Bursts
/// run at well under a microsecond per frame and are better left to the writer, which
/// batches them; a lone request or reply, which comes after a pause of several
/// microseconds on loopback, is written at once.
const DIRECT_GAP: Duration = Duration::from_micros(2);

/// One peer's outgoing frames.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the parked writer when a frame is queued.
    queued: Notify,
    /// Wakes senders waiting for room once the writer takes a full buffer.
    room: Notify,
    /// Most frames held before further ones are refused.
    capacity: usize,
}

#[derive(Debug)]
struct State {
    /// Whole frames, length prefixes included, in the order they were queued.
    buf: BytesMut,
    /// How many frames `buf` holds.
    frames: usize,
    /// The writer found nothing to take and waits for [`Outbox::queued`].
    parked: bool,
    /// The open TCP connection's write half, for direct writes; `None` while
    /// disconnected, over TLS and in the in-process network.
    direct: Option<Arc<OwnedWriteHalf>>,
    /// When a frame was last offered while the writer was parked, or when the writer
    /// last parked, whichever is later.
    last_offer: Instant,
}

/// What became of a frame given to [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Written whole to the socket.
    Written,
    /// In the buffer, or partly written and the rest in the buffer.
    Queued,
    /// The buffer holds `capacity` frames already; nothing was done.
    Full,
}

impl Outbox {
    /// An empty outbox that holds at most `capacity` frames.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                buf: BytesMut::with_capacity(INITIAL_CAPACITY),
                frames: 0,
                parked: false,
                direct: None,
                last_offer: Instant::now(),
            }),
            queued: Notify::new(),
            room: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; should something ever, the state is
        // plain data that stays consistent between statements, so carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one whole frame, or writes it to the socket if the writer is parked and
    /// the sender has paused.
    pub(crate) fn push(&self, frame: &[u8]) -> Pushed {
        let mut state = self.lock();
        if state.frames >= self.capacity {
            return Pushed::Full;
        }

        let mut rest = frame;
        if state.parked {
            if state.direct.is_some() {
                rest = state.write_directly(frame);
                if rest.is_empty() {
                    return Pushed::Written;
                }
            }
            state.parked = false;
            self.queued.notify_one();
        }

        state.buf.extend_from_slice(rest);
        state.frames += 1;
        Pushed::Queued
    }

    /// Whether a frame pushed now would be taken.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().frames < self.capacity
    }

    /// Waits until the outbox has room for a frame; it may be full again by the time
    /// the caller pushes.
    pub(crate) async fn room(&self) {
        let notified = self.room.notified();
        tokio::pin!(notified);

        // Registered before looking, so that a take in between is not missed.
        notified.as_mut().enable();
        if self.has_room() {
            return;
        }
        notified.await;
    }

    /// Swaps everything queued into `into`, which must be empty, and returns how many
    /// frames it holds. With nothing queued, parks the writer instead and returns 0:
    /// the caller then waits for [`Outbox::queued`].
    pub(crate) fn take(&self, into: &mut BytesMut) -> usize {
        debug_assert!(into.is_empty());
        let mut state = self.lock();
        if state.frames == 0 {
            state.parked = true;
            state.last_offer = Instant::now();
            return 0;
        }

        std::mem::swap(&mut state.buf, into);
        let frames = std::mem::take(&mut state.frames);
        drop(state);

        if frames >= self.capacity {
            self.room.notify_waiters();
        }
        frames
    }

    /// Resolves once a frame is queued after the writer parked (or at once if one was
    /// queued since the last wait).
    pub(crate) async fn queued(&self) {
        self.queued.notified().await;
    }

    /// Readies a buffer that [`Outbox::take`] filled and its owner wrote for the next
    /// take: emptied, and replaced if a burst of large frames grew it.
    pub(crate) fn recycle(buf: &mut BytesMut) {
        buf.clear();
        if buf.capacity() > KEPT_CAPACITY {
            *buf = BytesMut::with_capacity(INITIAL_CAPACITY);
        }
    }

    /// Lets senders write to `half` directly while the writer is parked.
    pub(crate) fn attach(&self, half: Arc<OwnedWriteHalf>) {
        self.lock().direct = Some(half);
    }

    /// Stops direct writes: the connection is being given up. The writer's next take
    /// finds whatever was queued meanwhile.
    pub(crate) fn detach(&self) {
        let mut state = self.lock();
        state.direct = None;
        state.parked = false;
    }
}

impl State {
    /// Writes as much of `frame` as the socket takes at once, unless the sender is in a
    /// burst; returns what is left to queue.
    fn write_directly<'f>(&mut self, frame: &'f [u8]) -> &'f [u8] {
        // Read the clock only here, not for frames queued while the writer is busy:
        // the writer stamps the time when it parks, which stands for those.
        let pause = self.last_offer.elapsed();
        let Some(half) = self.direct.as_ref().filter(|_| pause >= DIRECT_GAP) else {
            self.last_offer = Instant::now();
            return frame;
        };

        // Socket full or failing: nothing written; the writer waits for room or finds
        // the failure.
        let written = half.try_write(frame).unwrap_or_default();

        // Stamped after the system call, so that the pause measures the sender's own
        // time between frames: a sender in a burst would otherwise see each write's
        // own duration as a pause and go on writing one frame per system call.
        self.last_offer = Instant::now();
        &frame[written..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte: u8) -> Vec<u8> {
        vec![0, 0, 0, 1, byte]
    }

    /// Frames come out whole and in order, and the count matches.
    #[test]
    fn a_take_returns_every_queued_frame_in_order() {
        let outbox = Outbox::new(8);
        for byte in 1..=3 {
            assert_eq!(outbox.push(&frame(byte)), Pushed::Queued);
        }

        let mut taken = BytesMut::new();
        assert_eq!(outbox.take(&mut taken), 3);
        assert_eq!(&taken[..], &[frame(1), frame(2), frame(3)].concat()[..]);

        Outbox::recycle(&mut taken);
        assert_eq!(outbox.take(&mut taken), 0, "nothing left after a take");
    }

    /// The capacity counts frames; a full outbox refuses without changing anything,
    /// and a take makes room again.
    #[test]
    fn a_full_outbox_refuses_until_taken() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(&frame(1)), Pushed::Queued);
        assert_eq!(outbox.push(&frame(2)), Pushed::Queued);
        assert!(!outbox.has_room());
        assert_eq!(outbox.push(&frame(3)), Pushed::Full);

        let mut taken = BytesMut::new();
        assert_eq!(outbox.take(&mut taken), 2);
        assert_eq!(&taken[..], &[frame(1), frame(2)].concat()[..]);
        assert!(outbox.has_room());
    }

    /// A parked writer is woken by the first frame queued after it parked.
    #[tokio::test]
    async fn a_frame_queued_after_parking_wakes_the_writer() {
        let outbox = Arc::new(Outbox::new(8));
        let mut taken = BytesMut::new();
        assert_eq!(outbox.take(&mut taken), 0);

        let pusher = Arc::clone(&outbox);
        tokio::spawn(async move { pusher.push(&frame(9)) });
        outbox.queued().await;
        assert_eq!(outbox.take(&mut taken), 1);
        assert_eq!(&taken[..], &frame(9)[..]);
    }

    /// A sender waiting for room is released when the writer takes a full buffer.
    #[tokio::test]
    async fn a_sender_waiting_for_room_is_released_by_a_take() {
        let outbox = Arc::new(Outbox::new(1));
        assert_eq!(outbox.push(&frame(1)), Pushed::Queued);

        let waiter = Arc::clone(&outbox);
        let waiting = tokio::spawn(async move {
            waiter.room().await;
            waiter.push(&frame(2))
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());

        let mut taken = BytesMut::new();
        assert_eq!(outbox.take(&mut taken), 1);
        assert_eq!(waiting.await.unwrap(), Pushed::Queued);
    }
}
