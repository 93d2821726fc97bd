//! Telling a relay server's circuit stream from the first bytes read on a substream. Pure: no
//! I/O, no allocation.
//!
//! A substream starts with a multistream-select negotiation, plaintext at the muxer's level:
//! varint-length-prefixed lines, `/multistream/1.0.0\n` first, then protocol names. The relay
//! server carries a circuit between the `hop` stream the source opened to it (inbound here) and
//! the `stop` stream it opened to the destination (outbound here). The two other combinations
//! are this node as a relay client (it reserves or dials through a relay, or is dialled through
//! one): not circuits this node carries.
//!
//! Reading an inbound substream shows the remote's proposals; reading an outbound one shows the
//! remote's answers, which echo the protocol it accepted. Either way the wanted protocol name is
//! seen on the read side, so only reads are sniffed.

/// At most this many bytes of a substream are looked at; undecided by then, it is no circuit.
pub const SNIFF_WINDOW: usize = 128;

/// The multistream-select header line, as read (without its length prefix).
const HEADER: &[u8] = b"/multistream/1.0.0\n";

/// The relay protocol a circuit's source speaks to the relay (`libp2p::relay::HOP_PROTOCOL_NAME`).
pub const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// The relay protocol the relay speaks to a circuit's destination.
pub const STOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/stop";

/// Who opened a substream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// The remote peer (an inbound substream).
    Remote,
    /// This node (an outbound substream).
    Local,
}

impl Opener {
    /// The protocol that makes a substream opened this way one side of a relayed circuit.
    pub fn circuit_protocol(self) -> &'static str {
        match self {
            Opener::Remote => HOP_PROTOCOL,
            Opener::Local => STOP_PROTOCOL,
        }
    }
}

/// What the bytes read so far say about a substream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not known yet: feed the next read.
    Undecided,
    /// One side of a circuit this node relays; `payload` bytes of the chunk just fed come after
    /// the negotiation (they are the circuit's).
    Circuit {
        /// Bytes of the last chunk after the negotiated protocol's line.
        payload: usize,
    },
    /// Anything else: stop looking.
    Other,
}

/// Reads the first [`SNIFF_WINDOW`] bytes of one substream, stopping at the first verdict.
#[derive(Debug, Clone)]
pub struct Sniffer {
    wanted: &'static [u8],
    window: [u8; SNIFF_WINDOW],
    filled: usize,
    parsed: usize,
    header_seen: bool,
}

/// One step of parsing the window.
enum Line {
    /// A whole line at `start..end` (with its `\n`, without its length prefix).
    Whole { start: usize, end: usize },
    /// The window ends inside the next line.
    Partial,
    /// Not a multistream-select line.
    Malformed,
}

impl Sniffer {
    /// A sniffer for a substream opened by `opener`.
    pub fn new(opener: Opener) -> Self {
        Self {
            wanted: opener.circuit_protocol().as_bytes(),
            window: [0; SNIFF_WINDOW],
            filled: 0,
            parsed: 0,
            header_seen: false,
        }
    }

    /// Takes the bytes of one read (copying at most what fits in the window) and says what the
    /// substream is, if that is known now. Call it until it answers something other than
    /// [`Verdict::Undecided`], then no more.
    pub fn feed(&mut self, chunk: &[u8]) -> Verdict {
        let before = self.filled;
        let take = chunk.len().min(SNIFF_WINDOW - before);
        self.window[before..before + take].copy_from_slice(&chunk[..take]);
        self.filled += take;
        loop {
            match self.next_line() {
                Line::Partial if self.filled == SNIFF_WINDOW => return Verdict::Other,
                Line::Partial => return Verdict::Undecided,
                Line::Malformed => return Verdict::Other,
                Line::Whole { start, end } => {
                    self.parsed = end;
                    let line = &self.window[start..end];
                    if !self.header_seen {
                        if line != HEADER {
                            return Verdict::Other;
                        }
                        self.header_seen = true;
                    } else if &line[..line.len() - 1] == self.wanted {
                        // The line ends in this chunk (earlier chunks were parsed whole), so
                        // `end > before`.
                        return Verdict::Circuit {
                            payload: chunk.len().saturating_sub(end - before),
                        };
                    }
                    // `na`, another proposal, or the echo of another protocol: a later line
                    // may still name the wanted one.
                }
            }
        }
    }

    /// Parses the line at `self.parsed`: an unsigned varint length (at most two bytes, as
    /// multistream-select writes them), then that many bytes ending with `\n`.
    fn next_line(&self) -> Line {
        let bytes = &self.window[self.parsed..self.filled];
        let (len, prefix) = match bytes {
            [] => return Line::Partial,
            [b, ..] if b & 0x80 == 0 => (usize::from(*b), 1),
            [_] => return Line::Partial,
            [lo, hi, ..] if hi & 0x80 == 0 => (usize::from(lo & 0x7f) | usize::from(*hi) << 7, 2),
            _ => return Line::Malformed,
        };
        if len == 0 || self.parsed + prefix + len > SNIFF_WINDOW {
            return Line::Malformed;
        }
        let Some(line) = bytes.get(prefix..prefix + len) else {
            return Line::Partial;
        };
        if line.last() != Some(&b'\n') {
            return Line::Malformed;
        }
        let start = self.parsed + prefix;
        Line::Whole {
            start,
            end: start + len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One multistream-select line as written: its varint length, the text, `\n`.
    fn line(text: &str) -> Vec<u8> {
        let len = text.len() + 1;
        assert!(len < 0x80, "one-byte lengths in these tests");
        let mut out = vec![len as u8];
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        out
    }

    fn negotiation(protocol: &str) -> Vec<u8> {
        [line("/multistream/1.0.0"), line(protocol)].concat()
    }

    /// Feeds `bytes` in chunks of `size` until a verdict; returns it and the payload bytes seen
    /// (the circuit's payload in the deciding chunk plus every later chunk).
    fn sniff(opener: Opener, bytes: &[u8], size: usize) -> (Verdict, usize) {
        let mut sniffer = Sniffer::new(opener);
        let mut chunks = bytes.chunks(size);
        for chunk in chunks.by_ref() {
            match sniffer.feed(chunk) {
                Verdict::Undecided => continue,
                Verdict::Circuit { payload } => {
                    let rest: usize = chunks.map(<[u8]>::len).sum();
                    return (Verdict::Circuit { payload }, payload + rest);
                }
                Verdict::Other => return (Verdict::Other, 0),
            }
        }
        (Verdict::Undecided, 0)
    }

    #[test]
    fn only_hop_inbound_and_stop_outbound_are_circuits() {
        let data = [7u8; 40];
        for (opener, protocol, circuit) in [
            (Opener::Remote, HOP_PROTOCOL, true),
            (Opener::Local, STOP_PROTOCOL, true),
            // This node reserving or dialling through a relay, or dialled through one.
            (Opener::Local, HOP_PROTOCOL, false),
            (Opener::Remote, STOP_PROTOCOL, false),
        ] {
            let stream = [negotiation(protocol), data.to_vec()].concat();
            let (verdict, payload) = sniff(opener, &stream, stream.len());
            if circuit {
                assert_eq!(
                    verdict,
                    Verdict::Circuit { payload: 40 },
                    "{opener:?} {protocol}"
                );
                assert_eq!(payload, 40);
            } else {
                assert_eq!(verdict, Verdict::Other, "{opener:?} {protocol}");
            }
        }
    }

    #[test]
    fn a_negotiation_split_across_reads_is_recognised_at_any_split() {
        let data: Vec<u8> = (0..200u8).collect();
        let stream = [negotiation(HOP_PROTOCOL), data].concat();
        for size in 1..stream.len() {
            let (verdict, payload) = sniff(Opener::Remote, &stream, size);
            assert!(
                matches!(verdict, Verdict::Circuit { .. }),
                "chunks of {size}: {verdict:?}"
            );
            assert_eq!(
                payload, 200,
                "chunks of {size}: payload after the negotiation"
            );
        }
        // Cut anywhere before the protocol line ends, it is still undecided.
        let header_and_name = negotiation(HOP_PROTOCOL).len();
        for cut in 0..header_and_name {
            let (verdict, _) = sniff(Opener::Remote, &stream[..cut], 1);
            assert_eq!(verdict, Verdict::Undecided, "cut at {cut}");
        }
    }

    #[test]
    fn the_answers_of_an_outbound_negotiation_are_read_too() {
        // This node proposed stop; the remote answers with the header and the echo, then the
        // stop protocol's reply follows. A declined proposal (`na`) is skipped.
        let stream = [
            line("/multistream/1.0.0"),
            line("na"),
            line(STOP_PROTOCOL),
            vec![1, 2, 3],
        ]
        .concat();
        for size in [1, 5, stream.len()] {
            let (verdict, payload) = sniff(Opener::Local, &stream, size);
            assert!(matches!(verdict, Verdict::Circuit { .. }), "{verdict:?}");
            assert_eq!(payload, 3, "chunks of {size}");
        }
        // Another protocol accepted, then bytes of its own: no circuit.
        let other = [negotiation("/ipfs/id/1.0.0"), vec![0xff; 100]].concat();
        assert_eq!(sniff(Opener::Local, &other, 7).0, Verdict::Other);
    }

    #[test]
    fn garbage_is_no_circuit() {
        // No header.
        assert_eq!(
            sniff(Opener::Remote, &line(HOP_PROTOCOL), 64).0,
            Verdict::Other
        );
        // A line without its newline.
        let mut no_newline = line("/multistream/1.0.0");
        *no_newline.last_mut().unwrap() = b'x';
        assert_eq!(sniff(Opener::Remote, &no_newline, 64).0, Verdict::Other);
        // A zero length, a varint longer than two bytes, a line longer than the window.
        for bytes in [
            vec![0u8, 1, 2],
            vec![0x80, 0x80, 0x01],
            vec![0xff, 0x01, b'/'],
        ] {
            assert_eq!(
                sniff(Opener::Remote, &bytes, 64).0,
                Verdict::Other,
                "{bytes:?}"
            );
        }
        // Random bytes.
        let noise: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(sniff(Opener::Remote, &noise, 13).0, Verdict::Other);
        // The wanted name as a prefix of a longer one is another protocol.
        let longer = negotiation(&format!("{HOP_PROTOCOL}/v2"));
        assert_eq!(
            sniff(Opener::Remote, &[longer, vec![0; 200]].concat(), 9).0,
            Verdict::Other
        );
    }

    #[test]
    fn a_long_stream_is_decided_within_the_window() {
        // Valid lines that never name the protocol fill the window: no circuit, and the sniffer
        // stops there however long the stream runs.
        let mut stream = line("/multistream/1.0.0");
        while stream.len() < 4096 {
            stream.extend(line("/some/other/protocol/1.0.0"));
        }
        let mut sniffer = Sniffer::new(Opener::Remote);
        let mut fed = 0;
        let verdict = loop {
            let chunk = &stream[fed..fed + 10];
            fed += chunk.len();
            match sniffer.feed(chunk) {
                Verdict::Undecided => continue,
                verdict => break verdict,
            }
        };
        assert_eq!(verdict, Verdict::Other);
        assert!(fed <= SNIFF_WINDOW + 10, "decided after {fed} bytes");

        // A megabyte after a hop negotiation, read in uneven chunks, is counted whole.
        let payload: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
        let stream = [negotiation(HOP_PROTOCOL), payload].concat();
        assert_eq!(sniff(Opener::Remote, &stream, 4093).1, 1 << 20);
    }
}
