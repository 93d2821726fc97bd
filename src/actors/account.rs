//! [`AccountActor`]: the local account. It owns the registry of group store actors, starting
//! one per log on first use and replacing those that stopped.

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;

use crate::{
    actors::group_store::GroupStoreActor, crypto::AccountKeys, log::LogId, metrics::Metrics,
    storage::Storage,
};

/// The account actor.
pub struct AccountActor {
    keys: AccountKeys,
    storage: Arc<dyn Storage>,
    metrics: Metrics,
    stores: HashMap<LogId, Addr<GroupStoreActor>>,
}

impl AccountActor {
    /// The actor of the account with `keys`, persisting through `storage`.
    pub fn new(keys: AccountKeys, storage: Arc<dyn Storage>, metrics: Metrics) -> Self {
        Self {
            keys,
            storage,
            metrics,
            stores: HashMap::new(),
        }
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        tracing::info!(
            account = %hex::encode(&self.keys.account_pk().as_bytes()[..8]),
            device = %hex::encode(&self.keys.device_pk().as_bytes()[..8]),
            "account started"
        );
    }
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
