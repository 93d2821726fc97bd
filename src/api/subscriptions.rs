//! The four `*Subscribe` streams: history in the log's total order (`since`/`until`
//! inclusive, optionally backwards), then live events in arrival order, resumable by cursor.
//!
//! Each subscription runs in its own task that reads pages from storage and pushes replies
//! into a channel bounded in replies and in bytes. When the client is slow the task simply
//! waits; writers never wait for it, and nothing is lost because the task reads from storage,
//! not from a buffer of live events. What one slow subscriber holds in the node is bounded
//! whatever the size of its events: the replies it has not taken (at most
//! [`defaults::SUBSCRIPTION_BUFFER_BYTES`], or one reply larger than that) and the page being
//! sent (pages shrink as events grow, toward [`defaults::SUBSCRIPTION_PAGE_BYTES`]).
//!
//! Live events are found by cursor: the group store's `watch` channel says what the newest
//! event cursor is, and the task takes everything after the last cursor it sent from the
//! store's ring of recent events when the ring holds all of it, from storage otherwise (a
//! subscriber that fell behind reads storage, so it never holds the store back). Messages in a
//! page read from storage are opened from their entries first (`api/stored_messages.rs`);
//! the ring keeps them whole.

use std::{
    ops::Bound,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use actix::Addr;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::Status;

use super::stored_messages::{open_messages, WITH_ENTRIES};
use crate::{
    actors::{
        group_store::{EventWatch, RecentEvents},
        GroupStoreActor, WatchEvents,
    },
    defaults,
    error::Error,
    log::{EntryId, LogId, OrderKey},
    metrics::Metrics,
    storage::{Direction, OrderRange, Storage, StoredEvent},
};

/// The range fields every `*Subscribe.Request` has.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// First event id (inclusive); empty: from the first.
    pub since: Vec<u8>,
    /// Last event id (inclusive); empty: the newest, then live.
    pub until: Vec<u8>,
    /// Walk from `until` down to `since`, then end.
    pub go_backwards: bool,
    /// Extension: resume strictly after this cursor (arrival order), then live.
    pub since_cursor: u64,
}

impl Range {
    /// The range of a `*Subscribe.Request`.
    pub fn new(since: Vec<u8>, until: Vec<u8>, go_backwards: bool, since_cursor: u64) -> Self {
        Self {
            since,
            until,
            go_backwards,
            since_cursor,
        }
    }
}

/// Turns a stored event into a reply; `None` skips it.
pub type Convert<T> = Arc<dyn Fn(&StoredEvent) -> Result<Option<T>, Error> + Send + Sync>;

/// What one subscription reads.
pub struct Source {
    /// Where the events are stored.
    pub storage: Arc<dyn Storage>,
    /// The log whose view is read.
    pub log: LogId,
    /// The store actor (for the live cursor).
    pub store: Addr<GroupStoreActor>,
    /// Event kinds wanted.
    pub kinds: Vec<u8>,
}

/// Starts a subscription; errors (bad ids) are returned before any event is sent.
pub async fn subscribe<T: Send + 'static>(
    source: Source,
    range: Range,
    convert: Convert<T>,
    metrics: Metrics,
) -> Result<impl Stream<Item = Result<T, Status>> + Send + 'static, Error> {
    let EventWatch {
        cursor: mut watch,
        recent,
    } = source
        .store
        .send(WatchEvents)
        .await
        .map_err(|_| Error::stopped("the group store stopped"))?;
    let snapshot = *watch.borrow_and_update();
    let since = resolve(&*source.storage, &source.log, "since", &range.since).await?;
    let until = resolve(&*source.storage, &source.log, "until", &range.until).await?;
    if let (Some(since), Some(until)) = (since, until) {
        if since > until {
            return Err(Error::InvalidArgument(
                "since: the event comes after until".into(),
            ));
        }
    }
    if range.since_cursor > 0 && (since.is_some() || until.is_some() || range.go_backwards) {
        return Err(Error::InvalidArgument(
            "since_cursor: resumes the live stream; it cannot be combined with since, until or \
             go_backwards"
                .into(),
        ));
    }
    let live = until.is_none() && !range.go_backwards;
    let (tx, rx) =
        mpsc::channel::<(Result<T, Status>, Option<Held>)>(defaults::SUBSCRIPTION_BUFFER);
    let buffered = metrics.subscription_buffered_bytes.clone();
    tokio::spawn(async move {
        metrics.subscriptions.inc();
        let reader = Reader {
            source,
            convert,
            tx,
            budget: Arc::new(Semaphore::new(defaults::SUBSCRIPTION_BUFFER_BYTES)),
            buffered,
            page: AtomicU32::new(FIRST_PAGE),
        };
        let result = async {
            let resume_from = if range.since_cursor > 0 {
                range.since_cursor
            } else {
                reader
                    .history(since, until, range.go_backwards, snapshot)
                    .await?;
                snapshot
            };
            if live {
                reader.live(resume_from, &mut watch, &recent).await?;
            }
            Ok::<_, Stop>(())
        }
        .await;
        if let Err(Stop::Failed(e)) = result {
            let _ = reader.tx.send((Err(Status::from(e)), None)).await;
        }
        metrics.subscriptions.dec();
    });
    // A reply's bytes return to the budget as the client's stream takes it (or as the channel
    // is dropped with the replies still in it).
    Ok(ReceiverStream::new(rx).map(|(reply, _held)| reply))
}

/// Events the first page of a subscription reads: small, so that large events cost little
/// before their size is known; later pages follow [`Reader::observe`].
const FIRST_PAGE: u32 = 64;

/// Bytes of one reply waiting in a subscription's channel, returned to its budget (and taken
/// off the gauge) when dropped.
struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

/// The event behind a page item (pages from storage own their events, the recent ring shares
/// them).
fn stored<E: std::borrow::Borrow<StoredEvent>>(event: &E) -> &StoredEvent {
    event.borrow()
}

/// The bytes a reply made from `event` takes, near enough: its body, its parents and the
/// fields around them.
fn reply_bytes(event: &StoredEvent) -> usize {
    event.body.len() + event.parents.len() * 32 + 64
}

/// Why a subscription task ends early.
enum Stop {
    /// The client went away.
    Gone,
    /// Reading failed; the client is told.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

impl From<crate::storage::StorageError> for Stop {
    fn from(e: crate::storage::StorageError) -> Self {
        Stop::Failed(e.into())
    }
}

struct Reader<T> {
    source: Source,
    convert: Convert<T>,
    tx: mpsc::Sender<(Result<T, Status>, Option<Held>)>,
    /// Bytes of replies this subscription may hold before the client takes them.
    budget: Arc<Semaphore>,
    /// `berty_node_subscription_buffered_bytes`.
    buffered: Gauge,
    /// Events to read per page, from the size of the events read so far.
    page: AtomicU32,
}

impl<T: Send + 'static> Reader<T> {
    async fn emit<E: std::borrow::Borrow<StoredEvent> + Sync>(
        &self,
        events: &[E],
    ) -> Result<(), Stop> {
        self.observe(events);
        for event in events {
            let event = stored(event);
            if let Some(reply) = (self.convert)(event)? {
                let bytes = reply_bytes(event).min(defaults::SUBSCRIPTION_BUFFER_BYTES);
                let permit = Arc::clone(&self.budget)
                    .acquire_many_owned(u32::try_from(bytes).unwrap_or(u32::MAX))
                    .await
                    .map_err(|_| Stop::Gone)?;
                let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                self.buffered.inc_by(bytes);
                let held = Held {
                    _permit: permit,
                    bytes,
                    gauge: self.buffered.clone(),
                };
                self.tx
                    .send((Ok(reply), Some(held)))
                    .await
                    .map_err(|_| Stop::Gone)?;
            }
        }
        Ok(())
    }

    /// Sizes the next pages from a page just read: as many events as fit
    /// [`defaults::SUBSCRIPTION_PAGE_BYTES`] at this page's mean size, within
    /// [`defaults::SUBSCRIPTION_MIN_PAGE`]..=[`defaults::EVENT_PAGE`].
    fn observe<E: std::borrow::Borrow<StoredEvent>>(&self, events: &[E]) {
        if events.is_empty() {
            return;
        }
        let bytes: usize = events.iter().map(|e| reply_bytes(stored(e))).sum();
        let mean = (bytes / events.len()).max(1);
        let fit = u32::try_from(defaults::SUBSCRIPTION_PAGE_BYTES / mean).unwrap_or(u32::MAX);
        self.page.store(
            fit.clamp(defaults::SUBSCRIPTION_MIN_PAGE, defaults::EVENT_PAGE),
            Ordering::Relaxed,
        );
    }

    /// Events to read in the next page.
    fn page(&self) -> u32 {
        self.page.load(Ordering::Relaxed)
    }

    /// Replays events with cursor <= `snapshot` between `since` and `until`, in total order.
    async fn history(
        &self,
        since: Option<OrderKey>,
        until: Option<OrderKey>,
        backwards: bool,
        snapshot: u64,
    ) -> Result<(), Stop> {
        let mut range = OrderRange {
            lower: since.map_or(Bound::Unbounded, Bound::Included),
            upper: until.map_or(Bound::Unbounded, Bound::Included),
            direction: if backwards {
                Direction::Backward
            } else {
                Direction::Forward
            },
            limit: self.page(),
        };
        loop {
            range.limit = self.page();
            let page = self
                .source
                .storage
                .events_range(
                    &self.source.log,
                    &self.source.kinds,
                    WITH_ENTRIES,
                    &range,
                    snapshot,
                )
                .await?;
            let page = open_messages(&*self.source.storage, &self.source.log, page).await?;
            self.emit(&page).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            if page.len() < range.limit as usize {
                return Ok(());
            }
            if backwards {
                range.upper = Bound::Excluded(last.order_key());
            } else {
                range.lower = Bound::Excluded(last.order_key());
            }
        }
    }

    /// Streams every event with cursor > `after`, in cursor order, until the client leaves:
    /// from the store's recent events when they hold everything after `after`, from storage
    /// otherwise.
    async fn live(
        &self,
        mut after: u64,
        watch: &mut watch::Receiver<u64>,
        recent: &RecentEvents,
    ) -> Result<(), Stop> {
        // The first look goes to storage whatever the watch says (as a resumed stream always
        // has), later ones only when the watch moved past what was sent.
        let mut first = true;
        loop {
            let page = self.page();
            let newest = *watch.borrow_and_update();
            let kept = if newest > after {
                recent.after(after, newest, &self.source.kinds, page as usize)
            } else {
                None
            };
            if let Some((events, seen)) = kept {
                self.emit(&events).await?;
                after = seen;
            } else if first || newest > after {
                let events = self
                    .source
                    .storage
                    .events_since_cursor(
                        &self.source.log,
                        &self.source.kinds,
                        WITH_ENTRIES,
                        after,
                        page,
                    )
                    .await?;
                let events = open_messages(&*self.source.storage, &self.source.log, events).await?;
                self.emit(&events).await?;
                match events.last() {
                    Some(last) if events.len() == page as usize => {
                        after = last.cursor;
                        continue;
                    }
                    // A short page holds every wanted event up to `newest` (read after the
                    // watch said so), even when the newest ones are of other kinds.
                    last => after = last.map_or(after, |e| e.cursor).max(newest),
                }
            }
            first = false;
            if *watch.borrow() > after {
                continue;
            }
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return Err(Stop::Failed(Error::stopped("the group store stopped")));
                    }
                }
                _ = self.tx.closed() => return Err(Stop::Gone),
            }
        }
    }
}

/// Resolves a `since`/`until` id to its order key: empty is no bound; a malformed or unknown
/// id is `INVALID_ARGUMENT`.
async fn resolve(
    storage: &dyn Storage,
    log: &LogId,
    field: &str,
    id: &[u8],
) -> Result<Option<OrderKey>, Error> {
    if id.is_empty() {
        return Ok(None);
    }
    let id = EntryId::from_slice(id).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{field}: an event id is 32 bytes, got {}",
            id.len()
        ))
    })?;
    match storage.event(log, &id).await? {
        Some(event) => Ok(Some(event.order_key())),
        None => Err(Error::InvalidArgument(format!(
            "{field}: unknown event id {id}"
        ))),
    }
}
