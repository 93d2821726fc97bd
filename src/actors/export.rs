//! Export: everything this device holds, in the versioned `berty.node.wire.v1.Export` format
//! (see `proto/bertynode_wire.proto` and docs/api.md). Reads go page by page.

use actix::prelude::*;
use prost::Message as _;

use crate::{
    actors::account::AccountActor,
    defaults,
    error::Error,
    proto::wire,
    storage::SealedValues,
    storage::{value_keys::ValuePrefix, Storage},
};

/// Version of the export format written by this node.
pub const EXPORT_VERSION: u32 = 1;

/// Builds the export of this device.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, Error>")]
pub struct ExportData;

impl Handler<ExportData> for AccountActor {
    type Result = ResponseFuture<Result<Vec<u8>, Error>>;

    fn handle(&mut self, _: ExportData, _: &mut Self::Context) -> Self::Result {
        let storage = self.storage.clone();
        let values = self.values.clone();
        let account_keys = self.keys.to_bytes().to_vec();
        Box::pin(async move { export(storage.as_ref(), &values, account_keys).await })
    }
}

/// Reads the export. Storage offers no snapshot across logs and values, and the node keeps
/// running, so the order of the reads is what keeps the parts consistent:
///
/// 1. each log's events, then its entries: an event is committed with its entry or after
///    it, so every exported event names an exported entry;
/// 2. then the node values: what decoding learnt from an exported entry (a member's device,
///    a chain key shared with this member) was committed with it, so it is exported too (read
///    before the logs, an entry committed in between would be imported without what it
///    taught, and never decoded again); this device's sender chains are at or past every
///    exported message it wrote, so a restored device never reuses a message key.
///
/// What is committed meanwhile may be in the values without its entries; those entries come
/// by replication after an import and decode then (the first chain key shared wins).
async fn export(
    storage: &dyn Storage,
    values: &SealedValues,
    account_keys: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let mut export = wire::Export {
        version: EXPORT_VERSION,
        account_keys,
        ..Default::default()
    };
    for log in storage.logs().await? {
        let mut out = wire::ExportLog {
            log_id: log.to_bytes().to_vec(),
            ..Default::default()
        };
        let mut cursor = 0;
        loop {
            let page = storage
                .events_since_cursor(&log, &[], &[], cursor, defaults::EVENT_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            out.events
                .extend(page.into_iter().map(|e| wire::ExportEvent {
                    entry_id: e.entry_id.as_bytes().to_vec(),
                    kind: u32::from(e.kind),
                    body: e.body,
                }));
        }
        let mut cursor = 0;
        loop {
            let page = storage
                .since_cursor(&log, cursor, defaults::EVENT_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            out.entries.extend(page.into_iter().map(|e| e.bytes));
        }
        export.logs.push(out);
    }
    let mut after: Option<String> = None;
    loop {
        let page = values
            .page(ValuePrefix::All, after.as_deref(), defaults::EVENT_PAGE)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, value) in page {
            export.values.push(wire::ExportValue { key, value });
        }
    }
    Ok(export.encode_to_vec())
}
