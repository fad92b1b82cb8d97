//! The thin tokio driver of a session: it moves frames, commands, events and time between the
//! socket, the command queue, the consumer's queue and the pure [`Core`].
//!
//! The socket and the core live behind one lock ([`Io`]) so that two kinds of caller can drive
//! them:
//! - the session task ([`Driver`]), which always reads the socket (pings are answered and
//!   closes seen whatever the consumer does), takes queued commands when the previous frames
//!   are written (the sink's backpressure comes from the socket), arms the core's deadlines
//!   and bounds every write by the core's write deadline;
//! - the audio sink, which writes a chunk itself when nothing is queued before it and the
//!   socket is idle: the common case of real-time audio then costs no task hand-off (no
//!   channel, no wake-up of the session task per chunk). Any socket readiness it waits on is
//!   registered with the session task's waker, and whatever it cannot finish (a blocked write,
//!   a new deadline, an event, an end) wakes the session task, so nothing depends on the sink
//!   being polled again.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures::channel::oneshot;
use futures::{Sink, Stream};
use tokio_tungstenite::tungstenite::{self, Message};

use super::core::{Core, End, Input, Outgoing};
use super::queue::EventQueue;
use super::{Command, TurnEvent};
use crate::error::{Cause, Error, Result};
use crate::handshake::Ws;
use crate::protocol::Termination;

/// Frames read per wake-up before yielding to other tasks.
const READ_BUDGET: usize = 64;

/// State shared by the driver, the event stream, the sink and the handles.
///
/// Lock order: [`Io`] before the consumer's side (`inner`), never the other way round.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Whether audio and control messages are still accepted (lock-free fast path).
    accepting: AtomicBool,
    /// The event stream was dropped (lock-free, checked on every driver turn).
    consumer_gone: AtomicBool,
    /// Live senders (the sink and every handle); at zero the audio is over.
    senders: AtomicUsize,
    /// How many commands wait in `Io` (a copy kept for the sink's lock-free `poll_ready`).
    queued: AtomicUsize,
    /// The bound on waiting commands (`audio_buffer`).
    capacity: usize,
    /// The consumer's side: events and the end.
    inner: Mutex<SharedInner>,
    /// The socket, the core and the commands not yet taken.
    io: Mutex<Io>,
    /// The session's span, entered when the sink drives the socket.
    span: tracing::Span,
}

#[derive(Debug)]
pub(crate) struct SharedInner {
    pub(crate) queue: EventQueue,
    consumer: Option<Waker>,
    /// No event comes after those queued.
    finished: bool,
    /// The error the session ended with, for `send()` and `terminate()` after the end.
    end_error: Option<Error>,
}

/// The socket side: whoever holds this lock may drive the session.
pub(crate) struct Io {
    /// The session task's waker (from its last poll): every socket readiness and every
    /// wake-up is registered with it, whoever drives.
    waker: Option<Waker>,
    state: IoState,
}

struct IoState {
    /// `None` once the session task is gone: the socket closes with it.
    ws: Option<Ws>,
    core: Core,
    /// Commands not yet taken by the core, in order; at most `capacity` (plus one per sender
    /// racing between `poll_ready` and `start_send`).
    commands: VecDeque<Command>,
    /// Tasks waiting for room in `commands` (or for the end).
    blocked_senders: Vec<Waker>,
    /// Every sender is gone and the core was told.
    commands_closed: bool,
    waiters: Vec<oneshot::Sender<Result<Termination>>>,
    /// The deadline the session task's timer is armed for.
    timer_at: Option<Instant>,
    /// Frames were handed to the socket and not yet flushed.
    flushing: bool,
    /// The current stall was reported to the core.
    blocked: bool,
    /// The closing handshake is under way.
    closing: bool,
    consumer_gone: bool,
    answered: bool,
    progress: bool,
    /// The time of this turn: one clock read per turn, not one per input.
    now: Instant,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("commands", &self.state.commands.len())
            .finish_non_exhaustive()
    }
}

fn now() -> Instant {
    // tokio's clock, so a paused test clock drives the core too.
    tokio::time::Instant::now().into_std()
}

impl Shared {
    pub(crate) fn new(
        ws: Ws,
        core: Core,
        queue: EventQueue,
        capacity: usize,
        span: tracing::Span,
    ) -> Arc<Self> {
        let shared = Arc::new(Self {
            accepting: AtomicBool::new(true),
            consumer_gone: AtomicBool::new(false),
            senders: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            capacity: capacity.max(1),
            inner: Mutex::new(SharedInner {
                queue,
                consumer: None,
                finished: false,
                end_error: None,
            }),
            io: Mutex::new(Io {
                waker: None,
                state: IoState {
                    ws: Some(ws),
                    core,
                    commands: VecDeque::new(),
                    blocked_senders: Vec::new(),
                    commands_closed: false,
                    waiters: Vec::new(),
                    timer_at: None,
                    flushing: false,
                    blocked: false,
                    closing: false,
                    consumer_gone: false,
                    answered: false,
                    progress: false,
                    now: now(),
                },
            }),
            span,
        });
        // Events of the opening (Begin, anything before it) go out first.
        shared.lock_io().state.deliver(&shared);
        shared
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A panic while holding this lock cannot leave the queue inconsistent in a way that
        // matters more than losing the session; go on with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_io(&self) -> MutexGuard<'_, Io> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// The error for a send or terminate after the end: the session's own error when it ended
    /// with one, else [`Error::SessionClosed`].
    pub(crate) fn closed_error(&self) -> Error {
        self.lock()
            .end_error
            .clone()
            .unwrap_or(Error::SessionClosed)
    }

    /// The end error, if the session ended with one.
    pub(crate) fn end_error(&self) -> Option<Error> {
        self.lock().end_error.clone()
    }

    /// The consumer's side: the next event, `None` at the end.
    pub(crate) fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Option<Result<TurnEvent>>> {
        let mut inner = self.lock();
        if let Some(event) = inner.queue.pop() {
            return Poll::Ready(Some(event));
        }
        if inner.finished {
            return Poll::Ready(None);
        }
        match &inner.consumer {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.consumer = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(crate) fn coalesced(&self) -> u64 {
        self.lock().queue.coalesced()
    }

    /// The event stream was dropped.
    pub(crate) fn consumer_dropped(&self) {
        self.lock().queue.clear();
        self.consumer_gone.store(true, Ordering::Release);
        self.wake_driver();
    }

    /// Wakes the session task. Its waker is kept under the `Io` lock, which the task holds for
    /// its whole turn, so a wake-up cannot fall between its last look and its sleep; before
    /// its first turn there is nothing to wake, and that turn looks at everything.
    fn wake_driver(&self) {
        let waker = self.lock_io().waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A new sender (the sink, a handle).
    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::AcqRel);
    }

    /// A sender is gone; the last one ends the audio.
    pub(crate) fn remove_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake_driver();
        }
    }

    /// Ready when a command can be submitted: there is room in the queue, or the session no
    /// longer accepts commands (`Err` with its error).
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.accepting() {
            return Poll::Ready(Err(self.closed_error()));
        }
        // The common case without the lock: a stale count is at worst one command per sender
        // over the bound, or a look under the lock.
        if self.queued.load(Ordering::Acquire) < self.capacity {
            return Poll::Ready(Ok(()));
        }
        let mut io = self.lock_io();
        let state = &mut io.state;
        if state.answered {
            drop(io);
            return Poll::Ready(Err(self.closed_error()));
        }
        if state.commands.len() < self.capacity {
            return Poll::Ready(Ok(()));
        }
        state.wait_for_room(cx);
        Poll::Pending
    }

    /// For `terminate()`: queues `Terminate` (waiting for room like any command) and has
    /// `done` told the outcome. Once the session is already terminating or ending (another
    /// `terminate()`, the sink's close, an error being closed), `done` waits for that same
    /// end instead of being refused: concurrent and repeated calls share one outcome.
    pub(crate) fn poll_terminate(
        &self,
        cx: &mut Context<'_>,
        done: &mut Option<oneshot::Sender<Result<Termination>>>,
    ) -> Poll<Result<()>> {
        let mut io = self.lock_io();
        let state = &mut io.state;
        if state.answered {
            drop(io);
            return Poll::Ready(Err(self.closed_error()));
        }
        if !state.core.accepts_commands() {
            state.waiters.extend(done.take());
            return Poll::Ready(Ok(()));
        }
        if state.commands.len() >= self.capacity {
            state.wait_for_room(cx);
            return Poll::Pending;
        }
        self.enqueue(io, Command::Terminate(done.take()));
        Poll::Ready(Ok(()))
    }

    /// Submits a command after [`poll_room`](Self::poll_room) said there was room. Audio is
    /// written at once by the caller when nothing waits before it and the socket is idle;
    /// anything else is queued for the session task.
    pub(crate) fn submit(&self, command: Command) -> Result<()> {
        if !self.accepting() {
            return Err(self.closed_error());
        }
        let mut io = self.lock_io();
        let Io { waker, state } = &mut *io;
        if state.answered {
            drop(io);
            return Err(self.closed_error());
        }
        if let (Command::Audio(data), Some(waker)) = (&command, waker.as_ref()) {
            if state.commands.is_empty() && state.core.wants_commands() && state.ws.is_some() {
                let _span = self.span.enter();
                let mut cx = Context::from_waker(waker);
                state.progress = false;
                state.now = now();
                state.feed(Input::Audio(data.clone()));
                state.write(&mut cx);
                if state.needs_driver() {
                    waker.wake_by_ref();
                }
                return Ok(());
            }
        }
        // `poll_ready` keeps the queue under `capacity`; one command per sender may race past
        // it. More means `start_send` without `poll_ready`, which must not grow the queue.
        let bound = self.capacity + self.senders.load(Ordering::Acquire).max(1);
        if state.commands.len() >= bound {
            return Err(Error::config(format!(
                "the session's queue of {} commands is full: call poll_ready (or use send) \
                 before start_send",
                state.commands.len()
            )));
        }
        self.enqueue(io, command);
        Ok(())
    }

    /// Queues `command` for the session task and wakes it.
    fn enqueue(&self, mut io: MutexGuard<'_, Io>, command: Command) {
        io.state.commands.push_back(command);
        self.queued
            .store(io.state.commands.len(), Ordering::Release);
        let waker = io.waker.clone();
        drop(io);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl IoState {
    /// Has the caller's task woken when room is made in `commands` (or the session ends).
    fn wait_for_room(&mut self, cx: &Context<'_>) {
        if !self.blocked_senders.iter().any(|w| w.will_wake(cx.waker())) {
            self.blocked_senders.push(cx.waker().clone());
        }
    }

    /// Wakes every task waiting for room: there is some, or the session ended.
    fn release_senders(&mut self) {
        for waker in self.blocked_senders.drain(..) {
            waker.wake();
        }
    }

    fn feed(&mut self, input: Input) {
        self.progress = true;
        self.core.handle(self.now, input);
    }

    /// After the sink drove the socket: whether the session task must look (something is
    /// unfinished, due earlier than its timer, or decided).
    fn needs_driver(&self) -> bool {
        self.flushing
            || self.closing
            || self.core.has_events()
            || self.core.decided().is_some()
            || !self.core.accepts_commands()
            || match (self.core.next_deadline(), self.timer_at) {
                (Some(due), Some(armed)) => due < armed,
                (Some(_), None) => true,
                (None, _) => false,
            }
    }

    /// Reads up to [`READ_BUDGET`] frames; `true` when the budget ran out (the task was
    /// woken to come back, and must yield first).
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = READ_BUDGET;
        while self.core.reads() && budget > 0 {
            let Some(ws) = self.ws.as_mut() else {
                return false;
            };
            budget -= 1;
            let input = match Pin::new(&mut *ws).poll_next(cx) {
                Poll::Pending => return false,
                Poll::Ready(None) => Input::Eof,
                Poll::Ready(Some(Ok(message))) => match message {
                    Message::Text(text) => Input::Text(text),
                    Message::Binary(data) => Input::Binary(data.len()),
                    Message::Close(frame) => {
                        // tungstenite queued our reply; the closing handshake flushes it.
                        let parsed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        Input::Close(super::wire::as_received(parsed, ws.get_ref().last_close()))
                    }
                    Message::Ping(_) => {
                        // tungstenite queued the pong; flush it even with nothing else to send.
                        self.flushing = true;
                        self.progress = true;
                        continue;
                    }
                    Message::Pong(_) | Message::Frame(_) => continue,
                },
                Poll::Ready(Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                ))) => Input::Eof,
                Poll::Ready(Some(Err(e))) => Input::ReadFailed(e.to_string(), Some(Cause::new(e))),
            };
            self.feed(input);
        }
        if budget == 0 {
            // More may be ready: come back after other tasks had a turn.
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }

    fn take_commands(&mut self, senders: usize) {
        let mut took = false;
        while self.core.wants_commands() {
            match self.commands.pop_front() {
                Some(Command::Audio(data)) => self.feed(Input::Audio(data)),
                Some(Command::Control(m)) => self.feed(Input::Control(m)),
                Some(Command::Terminate(done)) => {
                    self.waiters.extend(done);
                    self.feed(Input::Terminate);
                }
                None => {
                    if senders == 0 && !self.commands_closed {
                        self.commands_closed = true;
                        self.feed(Input::CommandsClosed);
                    }
                    break;
                }
            }
            took = true;
        }
        if took {
            self.release_senders();
        }
    }

    fn write(&mut self, cx: &mut Context<'_>) {
        loop {
            let Self {
                ws,
                core,
                progress,
                now,
                ..
            } = self;
            let Some(ws) = ws.as_mut() else {
                return;
            };
            let mut feed = |core: &mut Core, input| {
                *progress = true;
                core.handle(*now, input);
            };
            if self.closing {
                match Pin::new(ws).poll_close(cx) {
                    Poll::Pending => return,
                    Poll::Ready(_) => {
                        self.closing = false;
                        feed(core, Input::CloseFlushed);
                    }
                }
                return;
            }
            if self.flushing {
                match Pin::new(&mut *ws).poll_flush(cx) {
                    Poll::Pending => {
                        if !self.blocked {
                            self.blocked = true;
                            feed(core, Input::WriteBlocked);
                        }
                        return;
                    }
                    Poll::Ready(result) => {
                        self.flushing = false;
                        self.blocked = false;
                        feed(
                            core,
                            match result {
                                Ok(()) => Input::WriteDone,
                                Err(e) => Input::WriteFailed(e.to_string(), Some(Cause::new(e))),
                            },
                        );
                    }
                }
            }
            let Some(next) = core.next_write() else {
                return;
            };
            let message = match next {
                Outgoing::Close => {
                    self.closing = true;
                    continue;
                }
                Outgoing::Binary(data) => Message::Binary(data),
                Outgoing::Text(text) => Message::text(text),
            };
            // Ready at once unless a flush is pending, and none is (handled above).
            let sent = match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => Pin::new(&mut *ws).start_send(message),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => {
                    feed(core, Input::WriteBlocked);
                    Pin::new(&mut *ws).start_send(message)
                }
            };
            self.flushing = true;
            if let Err(e) = sent {
                self.flushing = false;
                feed(core, Input::WriteFailed(e.to_string(), Some(Cause::new(e))));
            }
        }
    }

    /// Moves the core's events to the consumer's queue; reports an overflow to the core.
    fn deliver(&mut self, shared: &Shared) {
        let decided = self.core.decided().is_some();
        if shared.consumer_gone.load(Ordering::Acquire) {
            if !self.consumer_gone {
                self.consumer_gone = true;
                self.feed(Input::ConsumerGone);
            }
            let _ = self.core.take_events().count();
            return;
        }
        if !self.core.has_events() && (self.answered || !decided) {
            return;
        }
        let mut overflow = None;
        let mut inner = shared.lock();
        let mut any = false;
        for (event, bytes) in self.core.take_events() {
            any = true;
            if let Err(at) = inner.queue.push(event, bytes, decided) {
                overflow.get_or_insert(at);
            }
        }
        if decided && !self.answered {
            inner.finished = true;
            if let Some(End::Error(e)) = self.core.decided() {
                inner.end_error = Some(e.clone());
            }
        }
        if any || decided {
            if let Some(w) = inner.consumer.take() {
                w.wake();
            }
        }
        drop(inner);
        if let Some((events, bytes)) = overflow {
            tracing::warn!(events, bytes, "event consumer too slow; ending the session");
            self.feed(Input::Overflow(events, bytes));
            self.deliver(shared);
        }
    }

    /// Once the end is decided: stop taking commands and tell every `terminate()` waiting.
    fn answer(&mut self, shared: &Shared) {
        if self.answered {
            return;
        }
        let Some(end) = self.core.decided().cloned() else {
            return;
        };
        self.answered = true;
        shared.accepting.store(false, Ordering::Release);
        for command in self.commands.drain(..) {
            if let Command::Terminate(Some(done)) = command {
                self.waiters.push(done);
            }
        }
        shared.queued.store(0, Ordering::Release);
        self.release_senders();
        match &end {
            End::Terminated(t) => tracing::info!(
                audio_seconds = t.audio_duration_seconds,
                session_seconds = t.session_duration_seconds,
                "session terminated"
            ),
            End::Error(e) => {
                tracing::warn!(error = %e, kind = %e.kind(), "session ended with an error")
            }
            End::Quiet => tracing::debug!("event stream dropped; session closed"),
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(match &end {
                End::Terminated(t) => Ok(t.clone()),
                End::Error(e) => Err(e.clone()),
                End::Quiet => Err(Error::SessionClosed),
            });
        }
    }
}

/// The session task.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(86_400))),
        }
    }
}

/// Arms `timer` for the core's next deadline; feeds a tick if it is due.
fn arm_timer(
    state: &mut IoState,
    timer: &mut Pin<Box<tokio::time::Sleep>>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(at) = state.core.next_deadline() else {
        return false;
    };
    if at <= state.now {
        state.feed(Input::Tick);
        return true;
    }
    if state.timer_at != Some(at) {
        state.timer_at = Some(at);
        timer.as_mut().reset(tokio::time::Instant::from_std(at));
    }
    if timer.as_mut().poll(cx).is_ready() {
        state.timer_at = None;
        state.feed(Input::Tick);
        return true;
    }
    false
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let shared = &*this.shared;
        let mut io = shared.lock_io();
        match &io.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => io.waker = Some(cx.waker().clone()),
        }
        let state = &mut io.state;
        loop {
            state.progress = false;
            state.now = now();
            let spent = state.read(cx);
            state.take_commands(shared.senders.load(Ordering::Acquire));
            shared.queued.store(state.commands.len(), Ordering::Release);
            state.write(cx);
            state.deliver(shared);
            state.answer(shared);
            shared
                .accepting
                .store(state.core.accepts_commands(), Ordering::Release);
            if state.core.is_ended() {
                state.deliver(shared);
                state.answer(shared);
                return Poll::Ready(());
            }
            let ticked = arm_timer(state, &mut this.timer, cx);
            // A full read budget yields even with progress: otherwise this loop would read on
            // (holding the lock the sink needs) for as long as the server sends.
            if spent || (!state.progress && !ticked) {
                return Poll::Pending;
            }
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Also when the runtime drops the task: the socket closes with it, and the consumer
        // and the senders must see an end.
        let mut io = self.shared.lock_io();
        io.waker = None;
        io.state.ws = None;
        let answered = std::mem::replace(&mut io.state.answered, true);
        let consumer = {
            let mut inner = self.shared.lock();
            if !answered && !inner.finished {
                // Stopped before an end was decided (the runtime shut down): the stream must
                // not end as if cleanly, and senders and `terminate()` get the same error.
                let error =
                    Error::connection_lost("the session task was stopped (its runtime shut down)");
                let _ = inner.queue.push(Err(error.clone()), 0, true);
                inner.end_error = Some(error);
            }
            inner.finished = true;
            inner.consumer.take()
        };
        // Only now, with the end error in place, may a sender see the end.
        self.shared.accepting.store(false, Ordering::Release);
        io.state.release_senders();
        io.state.waiters.clear();
        drop(io);
        if let Some(w) = consumer {
            w.wake();
        }
    }
}
