//! The consumer's event queue: bounded, and coalescing superseded partials when the consumer
//! is behind (pure; shared with the event stream behind a lock by the driver).

use std::collections::VecDeque;

use crate::error::Result;

use super::TurnEvent;

/// Events waiting for the consumer.
///
/// Up to `soft` events queue as they come. Past `soft` (the consumer is behind), a `Partial`
/// replaces a queued `Partial` of the same `turn_order`, and a `Final` removes one: the
/// consumer loses only text that a newer message of the same turn superseded. `Begin`,
/// finals, errors, `Termination` and every other kind are never dropped. Past `max_events`
/// events or `max_bytes` bytes of server frames, [`push`](Self::push) refuses and the session
/// ends with [`Error::EventOverflow`](crate::Error::EventOverflow).
#[derive(Debug)]
pub(crate) struct EventQueue {
    items: VecDeque<(Result<TurnEvent>, usize)>,
    bytes: usize,
    soft: usize,
    max_events: usize,
    max_bytes: usize,
    coalesced: u64,
}

impl EventQueue {
    pub(crate) fn new(soft: usize, max_events: usize, max_bytes: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            soft: soft.max(1),
            max_events: max_events.max(soft),
            max_bytes,
            coalesced: 0,
        }
    }

    /// How many partials were replaced by a newer message of their turn so far.
    pub(crate) fn coalesced(&self) -> u64 {
        self.coalesced
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Queues `event` (`bytes`: the size of its frame). `force` skips the bounds (the last
    /// item of a session). `Err((events, bytes))` when the bounds are exceeded.
    pub(crate) fn push(
        &mut self,
        event: Result<TurnEvent>,
        bytes: usize,
        force: bool,
    ) -> std::result::Result<(), (usize, usize)> {
        if self.items.len() >= self.soft {
            if let Ok(TurnEvent::Partial(t) | TurnEvent::Final(t)) = &event {
                let order = t.turn_order;
                let older = self.items.iter().rposition(
                    |(e, _)| matches!(e, Ok(TurnEvent::Partial(p)) if p.turn_order == order),
                );
                if let Some(i) = older {
                    if let Some((_, b)) = self.items.remove(i) {
                        self.bytes -= b;
                        self.coalesced += 1;
                    }
                }
            }
        }
        if !force && (self.items.len() >= self.max_events || self.bytes + bytes > self.max_bytes) {
            return Err((self.items.len(), self.bytes));
        }
        self.bytes += bytes;
        self.items.push_back((event, bytes));
        Ok(())
    }

    pub(crate) fn pop(&mut self) -> Option<Result<TurnEvent>> {
        let (event, bytes) = self.items.pop_front()?;
        self.bytes -= bytes;
        Some(event)
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }
}
