//! Contact helpers shared by the contact tests: nodes that know a rendezvous server, and the
//! calls and waits the tests repeat.

use berty_node::proto::berty_protocol as pb;
use pb::AccountEventType as T;

use super::protocol::{account, next, within, Backend, Client, Home, Identity, Range, TestNode};

/// Serves `home` with `r` as its only rendezvous server, replication on.
pub async fn serve_with_rendezvous(home: Home, id: Identity, r: &TestNode) -> TestNode {
    let server = r.process.p2p_addrs[0].clone();
    TestNode::serve_with(
        home,
        id,
        &[
            ("BERTY_NODE__P2P__RENDEZVOUS", server.as_str()),
            ("BERTY_NODE__P2P__REPLICATION", "true"),
        ],
    )
    .await
}

/// A fresh node with `r` as its only rendezvous server.
pub async fn person(backend: Backend, r: &TestNode) -> TestNode {
    let home = Home::new(backend).await;
    let id = home.init().await;
    serve_with_rendezvous(home, id, r).await
}

/// `ContactRequestEnqueue`, which must succeed.
pub async fn enqueue(client: &mut Client, reference: &[u8], meta: &[u8]) {
    within(
        "ContactRequestEnqueue",
        client.contact_request_enqueue(pb::contact_request_enqueue::Request {
            reference: reference.to_vec(),
            meta: meta.to_vec(),
        }),
    )
    .await
    .expect("ContactRequestEnqueue");
}

/// Waits for the first account event of `node` (history, then live) of type `kind` whose
/// subject is `subject` (any subject when empty).
pub async fn wait_for_account_event(
    node: &mut TestNode,
    kind: T,
    subject: &[u8],
) -> pb::AccountStoreEvent {
    let mut stream = account(&mut node.client, Range::live())
        .await
        .expect("AccountSubscribe");
    loop {
        let event = next(&mut stream).await.event.expect("event");
        if event.event_type == kind as i32
            && (subject.is_empty() || event.subject_public_key_bytes == subject)
        {
            return event;
        }
    }
}
