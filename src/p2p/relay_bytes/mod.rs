//! Counting the bytes the circuit relay server forwards (`berty_node_relay_bytes_total`).
//! libp2p's relay server copies a circuit's bytes without counting them, so the count is taken
//! one floor down: every direct connection's muxer is wrapped in a [`CountingMuxer`], whose
//! substreams recognise, from their first bytes, the two sides of a circuit this node carries
//! (`sniff`) and then add every byte read from them to the counter.
//!
//! What is counted: bytes *read* from a circuit's two streams (the `hop` stream from its source
//! and the `stop` stream to its destination), after their multistream-select negotiation. Each
//! byte the relay forwards is read once, on one side, and written once on the other, so the
//! reads are the bytes relayed, both directions together. They include the circuit's own setup
//! messages read by the relay (a `CONNECT` of under 100 bytes from the source, a `STATUS` of a
//! few bytes from the destination) and the reservation requests peers send (a few bytes each),
//! which are not told apart from the circuit's payload.
//!
//! Relayed connections (through another relay, as a client) are not wrapped: libp2p's relay
//! server serves none over them.
//!
//! - `sniff`: telling a circuit's stream from its first bytes (pure).

pub mod sniff;

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::{
    muxing::{StreamMuxer, StreamMuxerEvent},
    upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo},
};
use prometheus_client::metrics::counter::Counter;

use sniff::{Opener, Sniffer, Verdict};

/// A connection's muxer whose substreams count the bytes of relayed circuits into `counter`.
#[derive(Debug)]
pub struct CountingMuxer<M> {
    inner: M,
    counter: Counter,
}

impl<M> CountingMuxer<M> {
    /// Wraps `inner`; circuits' bytes go to `counter`.
    pub fn new(inner: M, counter: Counter) -> Self {
        Self { inner, counter }
    }

    fn wrap<S>(&self, inner: S, opener: Opener) -> CountedSubstream<S> {
        CountedSubstream {
            inner,
            tally: Tally::Sniffing(Sniffer::new(opener)),
            counter: self.counter.clone(),
        }
    }
}

impl<M> StreamMuxer for CountingMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = CountedSubstream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let inner = ready!(Pin::new(&mut this.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(this.wrap(inner, Opener::Remote)))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let inner = ready!(Pin::new(&mut this.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(this.wrap(inner, Opener::Local)))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// Where a substream stands: still looking at its first bytes, counting, or neither.
#[derive(Debug)]
enum Tally {
    Sniffing(Sniffer),
    Counting,
    Ignoring,
}

/// A substream of a [`CountingMuxer`]: reads of a relayed circuit's stream are counted (one
/// atomic add each); every other substream costs a copy of at most its first
/// [`sniff::SNIFF_WINDOW`] bytes. Writes pass through.
#[derive(Debug)]
pub struct CountedSubstream<S> {
    inner: S,
    tally: Tally,
    counter: Counter,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedSubstream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match &mut this.tally {
            Tally::Counting => {
                this.counter.inc_by(read as u64);
            }
            Tally::Ignoring => {}
            Tally::Sniffing(sniffer) => match sniffer.feed(&buf[..read]) {
                Verdict::Undecided => {}
                Verdict::Circuit { payload } => {
                    this.counter.inc_by(payload as u64);
                    this.tally = Tally::Counting;
                }
                Verdict::Other => this.tally = Tally::Ignoring,
            },
        }
        Poll::Ready(Ok(read))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedSubstream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A multiplexer upgrade (yamux's, on TCP) whose muxer is wrapped in a [`CountingMuxer`].
#[derive(Debug, Clone)]
pub struct CountingUpgrade<U> {
    inner: U,
    counter: Counter,
}

impl<U> CountingUpgrade<U> {
    /// Wraps the muxers `inner` makes; circuits' bytes go to `counter`.
    pub fn new(inner: U, counter: Counter) -> Self {
        Self { inner, counter }
    }
}

impl<U: UpgradeInfo> UpgradeInfo for CountingUpgrade<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.inner.protocol_info()
    }
}

impl<C, U> InboundConnectionUpgrade<C> for CountingUpgrade<U>
where
    U: InboundConnectionUpgrade<C>,
    U::Future: Unpin,
{
    type Output = CountingMuxer<U::Output>;
    type Error = U::Error;
    type Future = Counting<U::Future>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        Counting {
            inner: self.inner.upgrade_inbound(socket, info),
            counter: self.counter,
        }
    }
}

impl<C, U> OutboundConnectionUpgrade<C> for CountingUpgrade<U>
where
    U: OutboundConnectionUpgrade<C>,
    U::Future: Unpin,
{
    type Output = CountingMuxer<U::Output>;
    type Error = U::Error;
    type Future = Counting<U::Future>;

    fn upgrade_outbound(self, socket: C, info: Self::Info) -> Self::Future {
        Counting {
            inner: self.inner.upgrade_outbound(socket, info),
            counter: self.counter,
        }
    }
}

/// The future of a [`CountingUpgrade`]: the inner upgrade's, its muxer wrapped.
#[derive(Debug)]
pub struct Counting<F> {
    inner: F,
    counter: Counter,
}

impl<F, M, E> Future for Counting<F>
where
    F: Future<Output = Result<M, E>> + Unpin,
{
    type Output = Result<CountingMuxer<M>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let muxer = ready!(Pin::new(&mut this.inner).poll(cx))?;
        Poll::Ready(Ok(CountingMuxer::new(muxer, this.counter.clone())))
    }
}

#[cfg(test)]
mod tests {
    use futures::{io::Cursor, AsyncReadExt, AsyncWriteExt};

    use super::{sniff::HOP_PROTOCOL, *};

    fn counted(
        bytes: Vec<u8>,
        opener: Opener,
        counter: &Counter,
    ) -> CountedSubstream<Cursor<Vec<u8>>> {
        CountedSubstream {
            inner: Cursor::new(bytes),
            tally: Tally::Sniffing(Sniffer::new(opener)),
            counter: counter.clone(),
        }
    }

    fn hop_stream(payload: usize) -> Vec<u8> {
        let mut bytes = vec![19];
        bytes.extend_from_slice(b"/multistream/1.0.0\n");
        bytes.push(HOP_PROTOCOL.len() as u8 + 1);
        bytes.extend_from_slice(HOP_PROTOCOL.as_bytes());
        bytes.push(b'\n');
        bytes.extend((0..payload).map(|i| i as u8));
        bytes
    }

    #[test]
    fn reads_of_a_circuit_stream_are_counted_after_its_negotiation() {
        futures::executor::block_on(async {
            let counter = Counter::default();
            let mut stream = counted(hop_stream(100_000), Opener::Remote, &counter);
            let mut buf = [0u8; 1000];
            let mut total = 0;
            loop {
                // Uneven reads, the first one splitting the negotiation.
                let size = 7 + total % 991;
                let read = stream.read(&mut buf[..size]).await.unwrap();
                if read == 0 {
                    break;
                }
                total += read;
            }
            assert_eq!(total, hop_stream(100_000).len());
            assert_eq!(counter.get(), 100_000);
            // Writes are not counted.
            stream.write_all(&[0; 500]).await.unwrap();
            assert_eq!(counter.get(), 100_000);
        });
    }

    #[test]
    fn a_relay_clients_stream_is_not_counted() {
        futures::executor::block_on(async {
            let counter = Counter::default();
            // The same hop negotiation on a substream this node opened: it is the client.
            let mut stream = counted(hop_stream(100_000), Opener::Local, &counter);
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            assert_eq!(all.len(), hop_stream(100_000).len());
            assert_eq!(counter.get(), 0);
        });
    }
}
