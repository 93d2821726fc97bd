//! [`InboundStreams`]: a behaviour that accepts the inbound streams of one protocol and hands
//! each to the swarm task, which serves it off the swarm. libp2p's request-response reads one
//! request per stream; a protocol whose clients send several on one stream needs the stream.
//!
//! A connection holds at most `max_per_connection` such streams open at once (the slot is
//! freed when the [`InboundStream`] is dropped); one beyond is dropped, which resets it.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use libp2p::{
    core::{
        transport::PortUse,
        upgrade::{DeniedUpgrade, ReadyUpgrade},
        Endpoint,
    },
    swarm::{
        handler::{ConnectionEvent, FullyNegotiatedInbound},
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId, Stream, StreamProtocol,
};

/// An accepted inbound stream. Dropping it frees its slot on the connection.
#[derive(Debug)]
pub struct InboundStream {
    /// The peer that opened it.
    pub peer: PeerId,
    /// The stream, its protocol negotiated.
    pub stream: Stream,
    _slot: Slot,
}

/// One of a connection's open streams; counted while it lives.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot among `open`, unless `max` are taken.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts the inbound streams of one protocol on every connection.
#[derive(Debug)]
pub struct InboundStreams {
    protocol: StreamProtocol,
    max_per_connection: usize,
    accepted: VecDeque<InboundStream>,
}

impl InboundStreams {
    /// Accepts `protocol`, at most `max_per_connection` streams open at once per connection.
    pub fn new(protocol: StreamProtocol, max_per_connection: usize) -> Self {
        Self {
            protocol,
            max_per_connection,
            accepted: VecDeque::new(),
        }
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            protocol: self.protocol.clone(),
            max_open: self.max_per_connection,
            open: Arc::new(AtomicUsize::new(0)),
            accepted: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for InboundStreams {
    type ConnectionHandler = Handler;
    type ToSwarm = InboundStream;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        stream: THandlerOutEvent<Self>,
    ) {
        self.accepted.push_back(stream);
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<InboundStream, THandlerInEvent<Self>>> {
        match self.accepted.pop_front() {
            Some(stream) => Poll::Ready(ToSwarm::GenerateEvent(stream)),
            None => Poll::Pending,
        }
    }
}

/// The per-connection side of [`InboundStreams`].
#[derive(Debug)]
pub struct Handler {
    peer: PeerId,
    protocol: StreamProtocol,
    max_open: usize,
    open: Arc<AtomicUsize>,
    accepted: VecDeque<InboundStream>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = InboundStream;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, InboundStream>> {
        match self.accepted.pop_front() {
            Some(stream) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(stream)),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), Infallible>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: stream,
            ..
        }) = event
        {
            match Slot::take(&self.open, self.max_open) {
                Some(slot) => self.accepted.push_back(InboundStream {
                    peer: self.peer,
                    stream,
                    _slot: slot,
                }),
                None => tracing::debug!(
                    peer = %self.peer,
                    protocol = %self.protocol,
                    max = self.max_open,
                    "too many inbound streams on one connection; one dropped"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed_on_drop() {
        let open = Arc::new(AtomicUsize::new(0));
        let first = Slot::take(&open, 2).unwrap();
        let second = Slot::take(&open, 2).unwrap();
        assert!(Slot::take(&open, 2).is_none());
        drop(first);
        let third = Slot::take(&open, 2);
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(open.load(Ordering::Acquire), 0);
    }
}
