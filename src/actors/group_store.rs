//! [`GroupStoreActor`]: the single writer of one log of one group on this node.
//!
//! It checks the Lamport rule against stored parents, appends through storage (committed
//! before it replies), and fans new entries out to subscribers. It is started on first use by
//! the account actor and stops itself after a period with no traffic and no subscriber.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix::prelude::*;
use tokio::sync::broadcast;

use crate::{
    defaults,
    error::Error,
    log::{EntryId, LogId, LogKind, OrderKey},
    metrics::{LogKindLabels, Metrics},
    storage::{Appended, NewEntry, Storage, StoredEntry},
};

/// Capacity of the live-entry channel; a subscriber that falls further behind is told it
/// lagged and catches up from storage by cursor.
const LIVE_CHANNEL_CAPACITY: usize = 4096;

/// The actor owning one log.
pub struct GroupStoreActor {
    log: LogId,
    storage: Arc<dyn Storage>,
    metrics: Metrics,
    live: broadcast::Sender<Arc<StoredEntry>>,
    last_activity: Instant,
}

impl GroupStoreActor {
    /// A store for `log`; nothing is read until a message asks for it.
    pub fn new(log: LogId, storage: Arc<dyn Storage>, metrics: Metrics) -> Self {
        let (live, _) = broadcast::channel(LIVE_CHANNEL_CAPACITY);
        Self {
            log,
            storage,
            metrics,
            live,
            last_activity: Instant::now(),
        }
    }
}

impl Actor for GroupStoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.group_store_actors.inc();
        tracing::debug!(log = ?self.log, "group store started");
        ctx.run_interval(defaults::GROUP_STORE_IDLE_CHECK, |actor, ctx| {
            let idle = actor.last_activity.elapsed() >= defaults::GROUP_STORE_IDLE;
            if idle && actor.live.receiver_count() == 0 {
                tracing::debug!(log = ?actor.log, "group store idle, stopping");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.group_store_actors.dec();
    }
}

/// Appends entries (already parsed and signature-checked) to the log; replies once committed.
#[derive(Message)]
#[rtype(result = "Result<Vec<Appended>, Error>")]
pub struct AppendEntries(pub Vec<NewEntry>);

impl Handler<AppendEntries> for GroupStoreActor {
    type Result = AtomicResponse<Self, Result<Vec<Appended>, Error>>;

    fn handle(&mut self, msg: AppendEntries, _: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let storage = self.storage.clone();
        let log = self.log;
        let entries = msg.0;
        AtomicResponse::new(Box::pin(
            async move {
                check_lamport(&*storage, &log, &entries).await?;
                let appended = storage.append(&log, &entries).await?;
                Ok((entries, appended))
            }
            .into_actor(self)
            .map(|result: Result<_, Error>, actor, _| {
                let (entries, appended) = result?;
                actor.publish(entries, &appended);
                Ok(appended)
            }),
        ))
    }
}

impl GroupStoreActor {
    fn publish(&self, entries: Vec<NewEntry>, appended: &[Appended]) {
        let kind = match self.log.kind() {
            LogKind::Metadata => "metadata",
            LogKind::Messages => "messages",
        };
        let counter = self.metrics.entries_appended.get_or_create(&LogKindLabels { kind });
        for (entry, outcome) in entries.into_iter().zip(appended) {
            if let Appended::New { cursor } = outcome {
                counter.inc();
                // No receiver is fine: nobody is listening live.
                let _ = self.live.send(Arc::new(StoredEntry {
                    id: entry.id,
                    lamport: entry.lamport,
                    parents: entry.parents,
                    bytes: entry.bytes,
                    cursor: *cursor,
                }));
            }
        }
    }
}

/// Checks the Lamport rule (clock = max of parents' clocks + 1; 1 for a root) for a batch,
/// looking parents up in storage or earlier in the batch.
async fn check_lamport(
    storage: &dyn Storage,
    log: &LogId,
    entries: &[NewEntry],
) -> Result<(), Error> {
    let mut known: HashMap<EntryId, u64> = HashMap::new();
    let wanted: Vec<EntryId> = entries
        .iter()
        .flat_map(|e| e.parents.iter().copied())
        .collect();
    for OrderKey { lamport, id } in storage.order_keys(log, &wanted).await? {
        known.insert(id, lamport);
    }
    for entry in entries {
        let mut max = 0u64;
        for parent in &entry.parents {
            let lamport = known.get(parent).copied().ok_or_else(|| {
                Error::InvalidArgument(format!("entry {} names unknown parent {parent}", entry.id))
            })?;
            max = max.max(lamport);
        }
        if Some(entry.lamport) != max.checked_add(1) {
            return Err(Error::InvalidArgument(format!(
                "entry {} has Lamport clock {}, expected {}",
                entry.id,
                entry.lamport,
                max.saturating_add(1)
            )));
        }
        known.insert(entry.id, entry.lamport);
    }
    Ok(())
}

/// The log's current heads in total order.
#[derive(Message)]
#[rtype(result = "Result<Vec<OrderKey>, Error>")]
pub struct Heads;

impl Handler<Heads> for GroupStoreActor {
    type Result = ResponseFuture<Result<Vec<OrderKey>, Error>>;

    fn handle(&mut self, _: Heads, _: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let storage = self.storage.clone();
        let log = self.log;
        Box::pin(async move { Ok(storage.heads(&log).await?) })
    }
}

/// A receiver of every entry newly stored from now on, in arrival (cursor) order.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<Arc<StoredEntry>>")]
pub struct SubscribeLog;

impl Handler<SubscribeLog> for GroupStoreActor {
    type Result = MessageResult<SubscribeLog>;

    fn handle(&mut self, _: SubscribeLog, _: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        MessageResult(self.live.subscribe())
    }
}
