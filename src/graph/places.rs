//! Places for pages in memory, handed out in the order the tenant queue sends: the request
//! whose channel is expected to need the most requests still goes first (by
//! [`rank`](crate::http::rank)), the rest first come, first served (issue 11, case d).
//!
//! A channel takes its page's place before it joins the tenant queue (the place bounds what
//! a run holds in memory, so it is taken before anything is fetched). Handed out first come,
//! first served, a channel of 2 000 pages among 500 short ones waited behind every short
//! channel queued for a place on each of its requests — three to four seconds a page while
//! they lasted, where its own rate allows one a second — and the tenant queue's priority
//! never came into play.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// A counting semaphore whose waiters are served by priority (higher first), then in the
/// order they came.
pub struct Places {
    inner: Mutex<Inner>,
}

struct Inner {
    free: usize,
    next_id: u64,
    waiting: BTreeMap<(Reverse<u32>, u64), oneshot::Sender<()>>,
}

/// One place; given back (to the best waiter) when dropped.
pub struct Place {
    places: Arc<Places>,
}

impl Places {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Places {
            inner: Mutex::new(Inner {
                free: n,
                next_id: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place, ahead of every waiter of a lower `priority`. Cancel-safe: a
    /// waiter dropped before or after its place was handed to it gives the place on.
    pub async fn acquire(self: &Arc<Self>, priority: u32) -> Place {
        let (key, rx) = {
            let mut inner = self.inner();
            if inner.free > 0 && inner.waiting.is_empty() {
                inner.free -= 1;
                return Place {
                    places: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            inner.next_id += 1;
            let key = (Reverse(priority), inner.next_id);
            inner.waiting.insert(key, tx);
            (key, rx)
        };
        let mut waiter = Waiter {
            places: self,
            key,
            rx: Some(rx),
        };
        let rx = waiter.rx.as_mut().expect("set above");
        // The sender is dropped only after it sent (see `release`) or by `Waiter`'s drop.
        let handed = rx.await;
        debug_assert!(handed.is_ok(), "a place's sender went without sending");
        waiter.rx = None;
        Place {
            places: self.clone(),
        }
    }

    /// Hands a place to the best waiter still waiting, else keeps it free.
    fn release(&self) {
        let mut inner = self.inner();
        while let Some((_, tx)) = inner.waiting.pop_first() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        inner.free += 1;
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        self.inner().free
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.inner().waiting.len()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.places.release();
    }
}

/// A waiter's stake: leaving the queue, or giving on a place handed to it too late.
struct Waiter<'p> {
    places: &'p Arc<Places>,
    key: (Reverse<u32>, u64),
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        let still_waiting = self.places.inner().waiting.remove(&self.key).is_some();
        if !still_waiting && rx.try_recv().is_ok() {
            // Handed a place while being dropped: it goes to the next in line.
            self.places.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waiters line up; the one with the higher priority gets the next place first, equal
    /// ones in the order they came.
    #[tokio::test(start_paused = true)]
    async fn places_go_by_priority_then_first_come() {
        let places = Places::new(1);
        let held = places.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [("a", 1), ("b", 5), ("c", 1), ("d", 5)] {
            let (places, order) = (places.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _place = places.acquire(priority).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["b", "d", "a", "c"]);
        assert_eq!(places.free(), 1);
    }

    /// A waiter dropped in line leaves it; the place goes to the next one.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_takes_no_place() {
        let places = Places::new(1);
        let held = places.acquire(0).await;
        let gone = {
            let places = places.clone();
            tokio::spawn(async move {
                let _place = places.acquire(9).await;
            })
        };
        let next = {
            let places = places.clone();
            tokio::spawn(async move {
                let _place = places.acquire(0).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(places.waiting(), 2);
        gone.abort();
        let _ = gone.await;
        assert_eq!(places.waiting(), 1, "the dropped waiter left the line");
        drop(held);
        next.await.unwrap();
        assert_eq!(places.free(), 1);
    }

    /// A place handed to a waiter that is dropped before it saw it is not lost.
    #[tokio::test(start_paused = true)]
    async fn a_place_handed_to_a_dropped_waiter_goes_on() {
        let places = Places::new(1);
        let held = places.acquire(0).await;
        let mut waiting = Box::pin(places.acquire(3));
        // Polled once: in line.
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(held);
        // Handed the place, then dropped without looking.
        drop(waiting);
        assert_eq!(places.free(), 1);
        let _again = places.acquire(0).await;
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
