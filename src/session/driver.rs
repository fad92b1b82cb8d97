//! The thin tokio driver of a session: one future that moves frames, commands, events and
//! time between the socket, the sink's channel, the consumer's queue and the pure [`Core`].
//!
//! It always reads the socket (pings are answered and closes seen whatever the consumer does),
//! takes a command only when the previous frames are written (the sink's backpressure comes
//! from the socket), and bounds every write by the core's write deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures::channel::{mpsc, oneshot};
use futures::task::AtomicWaker;
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
#[derive(Debug)]
pub(crate) struct Shared {
    /// Whether audio and control messages are still accepted (lock-free fast path).
    accepting: AtomicBool,
    /// The event stream was dropped (lock-free, checked on every driver turn).
    consumer_gone: AtomicBool,
    /// The driver's waker, for the consumer's drop.
    driver: AtomicWaker,
    inner: Mutex<SharedInner>,
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

impl Shared {
    pub(crate) fn new(queue: EventQueue) -> Arc<Self> {
        Arc::new(Self {
            accepting: AtomicBool::new(true),
            consumer_gone: AtomicBool::new(false),
            driver: AtomicWaker::new(),
            inner: Mutex::new(SharedInner {
                queue,
                consumer: None,
                finished: false,
                end_error: None,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A panic while holding this lock cannot leave the queue inconsistent in a way that
        // matters more than losing the session; go on with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        self.driver.wake();
    }
}

/// The session task.
pub(crate) struct Driver {
    ws: Ws,
    core: Core,
    cmds: mpsc::Receiver<Command>,
    cmds_open: bool,
    shared: Arc<Shared>,
    waiters: Vec<oneshot::Sender<Result<Termination>>>,
    timer: Pin<Box<tokio::time::Sleep>>,
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
}

fn now() -> Instant {
    // tokio's clock, so a paused test clock drives the core too.
    tokio::time::Instant::now().into_std()
}

impl Driver {
    pub(crate) fn new(
        ws: Ws,
        core: Core,
        cmds: mpsc::Receiver<Command>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut driver = Self {
            ws,
            core,
            cmds,
            cmds_open: true,
            shared,
            waiters: Vec::new(),
            timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(86_400))),
            timer_at: None,
            flushing: false,
            blocked: false,
            closing: false,
            consumer_gone: false,
            answered: false,
            progress: false,
        };
        // Events of the opening (Begin, anything before it) go out first.
        driver.deliver();
        driver
    }

    fn feed(&mut self, input: Input) {
        self.progress = true;
        self.core.handle(now(), input);
    }

    fn read(&mut self, cx: &mut Context<'_>) {
        let mut budget = READ_BUDGET;
        while self.core.reads() && budget > 0 {
            budget -= 1;
            let input = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return,
                Poll::Ready(None) => Input::Eof,
                Poll::Ready(Some(Ok(message))) => match message {
                    Message::Text(text) => Input::Text(text),
                    Message::Binary(data) => Input::Binary(data.len()),
                    Message::Close(frame) => {
                        // tungstenite queued our reply; the closing handshake flushes it.
                        let parsed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        Input::Close(super::wire::as_received(
                            parsed,
                            self.ws.get_ref().last_close(),
                        ))
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
        }
    }

    fn take_commands(&mut self, cx: &mut Context<'_>) {
        while self.cmds_open && self.core.wants_commands() {
            match Pin::new(&mut self.cmds).poll_next(cx) {
                Poll::Pending => return,
                Poll::Ready(None) => {
                    self.cmds_open = false;
                    self.feed(Input::CommandsClosed);
                }
                Poll::Ready(Some(Command::Audio(data))) => self.feed(Input::Audio(data)),
                Poll::Ready(Some(Command::Control(m))) => self.feed(Input::Control(m)),
                Poll::Ready(Some(Command::Terminate(done))) => {
                    self.waiters.extend(done);
                    self.feed(Input::Terminate);
                }
            }
        }
    }

    fn write(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.closing {
                match Pin::new(&mut self.ws).poll_close(cx) {
                    Poll::Pending => return,
                    Poll::Ready(_) => {
                        self.closing = false;
                        self.feed(Input::CloseFlushed);
                    }
                }
                return;
            }
            if self.flushing {
                match Pin::new(&mut self.ws).poll_flush(cx) {
                    Poll::Pending => {
                        if !self.blocked {
                            self.blocked = true;
                            self.feed(Input::WriteBlocked);
                        }
                        return;
                    }
                    Poll::Ready(result) => {
                        self.flushing = false;
                        self.blocked = false;
                        self.feed(match result {
                            Ok(()) => Input::WriteDone,
                            Err(e) => Input::WriteFailed(e.to_string(), Some(Cause::new(e))),
                        });
                    }
                }
            }
            let Some(next) = self.core.next_write() else {
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
            let sent = match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => Pin::new(&mut self.ws).start_send(message),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => {
                    self.feed(Input::WriteBlocked);
                    Pin::new(&mut self.ws).start_send(message)
                }
            };
            self.flushing = true;
            if let Err(e) = sent {
                self.flushing = false;
                self.feed(Input::WriteFailed(e.to_string(), Some(Cause::new(e))));
            }
        }
    }

    /// Moves the core's events to the consumer's queue; reports an overflow to the core.
    fn deliver(&mut self) {
        let decided = self.core.decided().is_some();
        if self.shared.consumer_gone.load(Ordering::Acquire) {
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
        let mut inner = self.shared.lock();
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
            self.deliver();
        }
    }

    /// Once the end is decided: stop taking commands and tell every `terminate()` waiting.
    fn answer(&mut self) {
        if self.answered {
            return;
        }
        let Some(end) = self.core.decided().cloned() else {
            return;
        };
        self.answered = true;
        self.shared.accepting.store(false, Ordering::Release);
        self.cmds.close();
        while let Ok(command) = self.cmds.try_recv() {
            if let Command::Terminate(Some(done)) = command {
                self.waiters.push(done);
            }
        }
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

    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.core.next_deadline() else {
            return false;
        };
        if at <= now() {
            self.feed(Input::Tick);
            return true;
        }
        if self.timer_at != Some(at) {
            self.timer_at = Some(at);
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(at));
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            self.feed(Input::Tick);
            return true;
        }
        false
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.shared.driver.register(cx.waker());
        loop {
            this.progress = false;
            this.read(cx);
            this.take_commands(cx);
            this.write(cx);
            this.deliver();
            this.answer();
            this.shared
                .accepting
                .store(this.core.accepts_commands(), Ordering::Release);
            if this.core.is_ended() {
                this.deliver();
                this.answer();
                return Poll::Ready(());
            }
            let ticked = this.arm_timer(cx);
            if !this.progress && !ticked {
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
        // Also when the runtime drops the task: the consumer and the sink must see an end.
        self.shared.accepting.store(false, Ordering::Release);
        let mut inner = self.shared.lock();
        inner.finished = true;
        if let Some(w) = inner.consumer.take() {
            w.wake();
        }
    }
}
