//! [`AccountActor`]: the local account. It owns the registry of group store actors, starting
//! one per log on first use and replacing those that stopped.

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;

use crate::{
    actors::group_store::GroupStoreActor, log::LogId, metrics::Metrics, storage::Storage,
};

/// The account actor.
pub struct AccountActor {
    storage: Arc<dyn Storage>,
    metrics: Metrics,
    stores: HashMap<LogId, Addr<GroupStoreActor>>,
}

impl AccountActor {
    /// An account actor over `storage`.
    pub fn new(storage: Arc<dyn Storage>, metrics: Metrics) -> Self {
        Self {
            storage,
            metrics,
            stores: HashMap::new(),
        }
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;
}

/// The address of the store actor of a log, started if it is not running.
#[derive(Message)]
#[rtype(result = "Addr<GroupStoreActor>")]
pub struct OpenGroupStore(pub LogId);

impl Handler<OpenGroupStore> for AccountActor {
    type Result = MessageResult<OpenGroupStore>;

    fn handle(&mut self, msg: OpenGroupStore, _: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.stores.get(&msg.0) {
            if addr.connected() {
                return MessageResult(addr.clone());
            }
        }
        // Drop registrations of stores that stopped while idle.
        self.stores.retain(|_, addr| addr.connected());
        let addr =
            GroupStoreActor::new(msg.0, self.storage.clone(), self.metrics.clone()).start();
        self.stores.insert(msg.0, addr.clone());
        MessageResult(addr)
    }
}
