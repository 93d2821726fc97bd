//! The four `*Subscribe` streams: history in the log's total order (`since`/`until`
//! inclusive, optionally backwards), then live events in arrival order, resumable by cursor.
//!
//! Each subscription runs in its own task that reads pages from storage and pushes replies
//! into a bounded channel. When the client is slow the task simply waits; writers never wait
//! for it, and nothing is lost because the task reads from storage, not from a buffer of live
//! events. Live events are found by cursor: the group store's `watch` channel says what the
//! newest event cursor is, and the task takes everything after the last cursor it sent from
//! the store's ring of recent events when the ring holds all of it, from storage otherwise
//! (a subscriber that fell behind reads storage, so it never holds the store back).

use std::{ops::Bound, sync::Arc};

use actix::Addr;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

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
) -> Result<ReceiverStream<Result<T, Status>>, Error> {
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
    let (tx, rx) = mpsc::channel(defaults::SUBSCRIPTION_BUFFER);
    tokio::spawn(async move {
        metrics.subscriptions.inc();
        let reader = Reader {
            source,
            convert,
            tx,
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
            let _ = reader.tx.send(Err(Status::from(e))).await;
        }
        metrics.subscriptions.dec();
    });
    Ok(ReceiverStream::new(rx))
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
    tx: mpsc::Sender<Result<T, Status>>,
}

impl<T: Send + 'static> Reader<T> {
    async fn emit<E: std::borrow::Borrow<StoredEvent> + Sync>(
        &self,
        events: &[E],
    ) -> Result<(), Stop> {
        for event in events {
            if let Some(reply) = (self.convert)(event.borrow())? {
                self.tx.send(Ok(reply)).await.map_err(|_| Stop::Gone)?;
            }
        }
        Ok(())
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
            limit: defaults::EVENT_PAGE,
        };
        loop {
            let page = self
                .source
                .storage
                .events_range(&self.source.log, &self.source.kinds, &range, snapshot)
                .await?;
            self.emit(&page).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            if page.len() < defaults::EVENT_PAGE as usize {
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
        let page = defaults::EVENT_PAGE as usize;
        // The first look goes to storage whatever the watch says (as a resumed stream always
        // has), later ones only when the watch moved past what was sent.
        let mut first = true;
        loop {
            let newest = *watch.borrow_and_update();
            let kept = if newest > after {
                recent.after(after, newest, &self.source.kinds, page)
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
                    .events_since_cursor(&self.source.log, &self.source.kinds, after, page as u32)
                    .await?;
                self.emit(&events).await?;
                match events.last() {
                    Some(last) if events.len() == page => {
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
