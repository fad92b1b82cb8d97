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

    #[cfg(test)]
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
        if self.items.is_empty() {
            // An idle session keeps no event capacity (see `Core::take_events`).
            self.items = VecDeque::new();
        }
        Some(event)
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Turn;

    fn turn(order: u64, eot: bool, text: &str) -> Result<TurnEvent> {
        let t: Turn = serde_json::from_value(serde_json::json!({"turn_order": order,
            "turn_is_formatted": false, "end_of_turn": eot, "transcript": text,
            "end_of_turn_confidence": 0.5, "words": []}))
        .unwrap();
        Ok(if eot {
            TurnEvent::Final(t)
        } else {
            TurnEvent::Partial(t)
        })
    }

    fn texts(q: &mut EventQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop())
            .map(|e| match e {
                Ok(TurnEvent::Partial(t)) => format!("P{}:{}", t.turn_order, t.transcript),
                Ok(TurnEvent::Final(t)) => format!("F{}:{}", t.turn_order, t.transcript),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn below_the_soft_bound_nothing_is_coalesced() {
        let mut q = EventQueue::new(10, 20, 1 << 20);
        for i in 0..5 {
            q.push(turn(0, false, &i.to_string()), 10, false).unwrap();
        }
        assert_eq!(q.coalesced(), 0);
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn past_the_soft_bound_newer_partials_and_finals_replace_older_partials() {
        let mut q = EventQueue::new(2, 20, 1 << 20);
        q.push(turn(0, false, "a"), 1, false).unwrap();
        q.push(turn(1, false, "x"), 1, false).unwrap();
        q.push(turn(0, false, "ab"), 1, false).unwrap(); // replaces P0:a
        q.push(turn(0, true, "abc"), 1, false).unwrap(); // replaces P0:ab
        q.push(turn(1, false, "xy"), 1, false).unwrap(); // replaces P1:x
        assert_eq!(q.coalesced(), 3);
        assert_eq!(texts(&mut q), ["F0:abc", "P1:xy"]);
    }

    #[test]
    fn finals_and_other_kinds_are_never_dropped_and_the_hard_bound_refuses() {
        let mut q = EventQueue::new(2, 4, 1 << 20);
        for i in 0..4 {
            q.push(turn(i, true, "f"), 1, false).unwrap();
        }
        assert_eq!(q.push(turn(9, true, "f"), 1, false), Err((4, 4)));
        // The last item of a session always fits.
        q.push(Err(crate::Error::SessionClosed), 0, true).unwrap();
        assert_eq!(q.len(), 5);
        let mut q = EventQueue::new(2, 100, 10);
        q.push(turn(0, true, "f"), 8, false).unwrap();
        assert_eq!(
            q.push(turn(1, true, "f"), 8, false),
            Err((1, 8)),
            "byte bound"
        );
    }
}
