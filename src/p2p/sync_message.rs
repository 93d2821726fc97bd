//! The messages of our sync protocol (`/berty-node/sync/1.0.0`) as domain types, and their
//! conversion from and to the generated wire types (`proto::wire::Sync*`), the only place that
//! touches them: the codec parses every frame into a [`SyncRequest`] or [`SyncResponse`]
//! (one [`SyncParseError`] per message that does not parse), and replication never sees the
//! generated types.

use crate::{
    log::{EntryId, LogId, LogKind, OrderKey},
    proto::wire::{
        self, sync_request::Request, sync_response::Response, SyncError, SyncHead, SyncLog,
    },
};

/// The length of a hello nonce.
pub const NONCE_LEN: usize = 32;

/// `SyncError.code`: the requester has not proven it holds the group's link key.
pub const ERROR_NOT_PROVEN: u32 = 1;
/// `SyncError.code`: the request is malformed.
pub const ERROR_MALFORMED: u32 = 2;
/// `SyncError.code`: temporarily unavailable.
pub const ERROR_UNAVAILABLE: u32 = 3;

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// Step 1 of the link-key proof: the requester's fresh nonce.
    Hello {
        /// The nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// Step 2: the requester's tags for the groups both hold.
    Prove {
        /// The requester's nonce.
        requester_nonce: [u8; NONCE_LEN],
        /// The responder's nonce.
        responder_nonce: [u8; NONCE_LEN],
        /// The tags.
        tags: Vec<Vec<u8>>,
    },
    /// The heads of these logs.
    Heads {
        /// The logs.
        logs: Vec<LogId>,
    },
    /// Entries of a log in total order.
    Fetch(Fetch),
    /// New entries of a log.
    Announce(Announcement),
}

/// A fetch: entries of `log` with a Lamport clock from `from_lamport`, after `after` in total
/// order when set, at most `limit` (capped by the responder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The log.
    pub log: LogId,
    /// The lowest Lamport clock.
    pub from_lamport: u64,
    /// Where the previous page ended.
    pub after: Option<OrderKey>,
    /// The most entries wanted.
    pub limit: u32,
}

/// New heads of a log and, when small, the new entries (pushed, or gossiped sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The log.
    pub log: LogId,
    /// Its heads (malformed heads on the wire are left out).
    pub heads: Vec<OrderKey>,
    /// The encoded entries, in total order (may be empty).
    pub entries: Vec<Vec<u8>>,
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// The responder's nonce and its tags.
    Hello {
        /// The nonce.
        nonce: [u8; NONCE_LEN],
        /// The tags.
        tags: Vec<Vec<u8>>,
    },
    /// How many tags the responder recognised.
    Prove {
        /// The count.
        accepted: u32,
    },
    /// The heads of each log asked for (logs that do not parse are left out).
    Heads(Vec<(LogId, Vec<OrderKey>)>),
    /// A page of entries.
    Fetch {
        /// The encoded entries, in total order.
        entries: Vec<Vec<u8>>,
        /// The responder stopped at a cap: more follow.
        more: bool,
    },
    /// The announcement is taken.
    Announce,
    /// The request was not served.
    Error {
        /// One of the `ERROR_*` codes.
        code: u32,
        /// Why.
        message: String,
    },
}

impl SyncResponse {
    /// An error response.
    pub fn error(code: u32, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// A message that does not parse: what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyncParseError(pub &'static str);

fn nonce(bytes: &[u8]) -> Result<[u8; NONCE_LEN], SyncParseError> {
    bytes
        .try_into()
        .map_err(|_| SyncParseError("nonce must be 32 bytes"))
}

fn log_from_wire(log: Option<&SyncLog>) -> Result<LogId, SyncParseError> {
    let malformed = SyncParseError("malformed log");
    let log = log.ok_or(malformed.clone())?;
    let group_pk: [u8; 32] = log
        .group_pk
        .as_slice()
        .try_into()
        .map_err(|_| malformed.clone())?;
    let kind = u8::try_from(log.kind)
        .ok()
        .and_then(LogKind::from_byte)
        .ok_or(malformed)?;
    Ok(LogId::new(group_pk, kind))
}

fn log_to_wire(log: &LogId) -> SyncLog {
    SyncLog {
        group_pk: log.group_pk().to_vec(),
        kind: u32::from(log.kind().as_byte()),
    }
}

fn head_from_wire(head: &SyncHead) -> Option<OrderKey> {
    Some(OrderKey {
        lamport: head.lamport,
        id: EntryId::from_slice(&head.id)?,
    })
}

fn head_to_wire(head: &OrderKey) -> SyncHead {
    SyncHead {
        id: head.id.as_bytes().to_vec(),
        lamport: head.lamport,
    }
}

impl TryFrom<wire::SyncAnnounce> for Announcement {
    type Error = SyncParseError;

    fn try_from(announce: wire::SyncAnnounce) -> Result<Self, SyncParseError> {
        Ok(Self {
            log: log_from_wire(announce.log.as_ref())?,
            heads: announce.heads.iter().filter_map(head_from_wire).collect(),
            entries: announce.entries,
        })
    }
}

impl From<Announcement> for wire::SyncAnnounce {
    fn from(announce: Announcement) -> Self {
        Self {
            log: Some(log_to_wire(&announce.log)),
            heads: announce.heads.iter().map(head_to_wire).collect(),
            entries: announce.entries,
        }
    }
}

impl Announcement {
    /// The encoded form (what gossip seals).
    pub fn encode(self) -> Vec<u8> {
        prost::Message::encode_to_vec(&wire::SyncAnnounce::from(self))
    }

    /// Parses an encoded announcement (an opened gossip message).
    pub fn decode(bytes: &[u8]) -> Result<Self, SyncParseError> {
        let announce = <wire::SyncAnnounce as prost::Message>::decode(bytes)
            .map_err(|_| SyncParseError("announcement does not decode"))?;
        Self::try_from(announce)
    }
}

impl SyncRequest {
    /// The kind of request, as the metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Prove { .. } => "prove",
            Self::Heads { .. } => "heads",
            Self::Fetch(_) => "fetch",
            Self::Announce(_) => "announce",
        }
    }
}

impl TryFrom<wire::SyncRequest> for SyncRequest {
    type Error = SyncParseError;

    fn try_from(request: wire::SyncRequest) -> Result<Self, SyncParseError> {
        Ok(match request.request {
            Some(Request::Hello(hello)) => Self::Hello {
                nonce: nonce(&hello.nonce)?,
            },
            Some(Request::Prove(prove)) => Self::Prove {
                requester_nonce: nonce(&prove.requester_nonce)?,
                responder_nonce: nonce(&prove.responder_nonce)?,
                tags: prove.tags,
            },
            Some(Request::Heads(heads)) => Self::Heads {
                logs: heads
                    .logs
                    .iter()
                    .map(|l| log_from_wire(Some(l)))
                    .collect::<Result<_, _>>()?,
            },
            Some(Request::Fetch(fetch)) => Self::Fetch(Fetch {
                log: log_from_wire(fetch.log.as_ref())?,
                from_lamport: fetch.from_lamport,
                after: match fetch.after.as_ref() {
                    Some(after) => {
                        Some(head_from_wire(after).ok_or(SyncParseError("malformed `after`"))?)
                    }
                    None => None,
                },
                limit: fetch.limit,
            }),
            Some(Request::Announce(announce)) => Self::Announce(announce.try_into()?),
            None => return Err(SyncParseError("empty request")),
        })
    }
}

impl From<SyncRequest> for wire::SyncRequest {
    fn from(request: SyncRequest) -> Self {
        let request = match request {
            SyncRequest::Hello { nonce } => Request::Hello(wire::SyncHello {
                nonce: nonce.to_vec(),
            }),
            SyncRequest::Prove {
                requester_nonce,
                responder_nonce,
                tags,
            } => Request::Prove(wire::SyncProve {
                requester_nonce: requester_nonce.to_vec(),
                responder_nonce: responder_nonce.to_vec(),
                tags,
            }),
            SyncRequest::Heads { logs } => Request::Heads(wire::SyncHeads {
                logs: logs.iter().map(log_to_wire).collect(),
            }),
            SyncRequest::Fetch(fetch) => Request::Fetch(wire::SyncFetch {
                log: Some(log_to_wire(&fetch.log)),
                from_lamport: fetch.from_lamport,
                after: fetch.after.as_ref().map(head_to_wire),
                limit: fetch.limit,
            }),
            SyncRequest::Announce(announce) => Request::Announce(announce.into()),
        };
        Self {
            request: Some(request),
        }
    }
}

impl TryFrom<wire::SyncResponse> for SyncResponse {
    type Error = SyncParseError;

    fn try_from(response: wire::SyncResponse) -> Result<Self, SyncParseError> {
        Ok(match response.response {
            Some(Response::Hello(hello)) => Self::Hello {
                nonce: nonce(&hello.nonce).map_err(|_| SyncParseError("bad hello nonce"))?,
                tags: hello.tags,
            },
            Some(Response::Prove(prove)) => Self::Prove {
                accepted: prove.accepted,
            },
            Some(Response::Heads(heads)) => {
                let mut logs = Vec::with_capacity(heads.logs.len());
                for log_heads in heads.logs {
                    let Ok(log) = log_from_wire(log_heads.log.as_ref()) else {
                        continue;
                    };
                    let heads = log_heads
                        .heads
                        .iter()
                        .map(|h| head_from_wire(h).ok_or(SyncParseError("malformed head")))
                        .collect::<Result<_, _>>()?;
                    logs.push((log, heads));
                }
                Self::Heads(logs)
            }
            Some(Response::Fetch(fetch)) => Self::Fetch {
                entries: fetch.entries,
                more: fetch.more,
            },
            Some(Response::Announce(_)) => Self::Announce,
            Some(Response::Error(error)) => Self::Error {
                code: error.code,
                message: error.message,
            },
            None => return Err(SyncParseError("empty response")),
        })
    }
}

impl From<SyncResponse> for wire::SyncResponse {
    fn from(response: SyncResponse) -> Self {
        let response = match response {
            SyncResponse::Hello { nonce, tags } => Response::Hello(wire::SyncHelloReply {
                nonce: nonce.to_vec(),
                tags,
            }),
            SyncResponse::Prove { accepted } => Response::Prove(wire::SyncProveReply { accepted }),
            SyncResponse::Heads(logs) => Response::Heads(wire::SyncHeadsReply {
                logs: logs
                    .iter()
                    .map(|(log, heads)| wire::SyncLogHeads {
                        log: Some(log_to_wire(log)),
                        heads: heads.iter().map(head_to_wire).collect(),
                    })
                    .collect(),
            }),
            SyncResponse::Fetch { entries, more } => {
                Response::Fetch(wire::SyncFetchReply { entries, more })
            }
            SyncResponse::Announce => Response::Announce(wire::SyncAnnounceReply {}),
            SyncResponse::Error { code, message } => Response::Error(SyncError { code, message }),
        };
        Self {
            response: Some(response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> LogId {
        LogId::new([7; 32], LogKind::Messages)
    }

    fn head(n: u8) -> OrderKey {
        OrderKey {
            lamport: u64::from(n),
            id: EntryId([n; 32]),
        }
    }

    #[test]
    fn every_request_survives_the_wire() {
        let requests = [
            SyncRequest::Hello { nonce: [1; 32] },
            SyncRequest::Prove {
                requester_nonce: [1; 32],
                responder_nonce: [2; 32],
                tags: vec![vec![3; 32]],
            },
            SyncRequest::Heads { logs: vec![log()] },
            SyncRequest::Fetch(Fetch {
                log: log(),
                from_lamport: 4,
                after: Some(head(5)),
                limit: 10,
            }),
            SyncRequest::Announce(Announcement {
                log: log(),
                heads: vec![head(6)],
                entries: vec![vec![1, 2]],
            }),
        ];
        for request in requests {
            let wire = wire::SyncRequest::from(request.clone());
            assert_eq!(SyncRequest::try_from(wire), Ok(request));
        }
    }

    #[test]
    fn every_response_survives_the_wire() {
        let responses = [
            SyncResponse::Hello {
                nonce: [1; 32],
                tags: vec![vec![2; 32]],
            },
            SyncResponse::Prove { accepted: 3 },
            SyncResponse::Heads(vec![(log(), vec![head(1), head(2)])]),
            SyncResponse::Fetch {
                entries: vec![vec![9]],
                more: true,
            },
            SyncResponse::Announce,
            SyncResponse::error(ERROR_MALFORMED, "why"),
        ];
        for response in responses {
            let wire = wire::SyncResponse::from(response.clone());
            assert_eq!(SyncResponse::try_from(wire), Ok(response));
        }
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let cases: [(wire::SyncRequest, &str); 5] = [
            (wire::SyncRequest { request: None }, "empty request"),
            (
                wire::SyncRequest {
                    request: Some(Request::Hello(wire::SyncHello { nonce: vec![1; 31] })),
                },
                "nonce must be 32 bytes",
            ),
            (
                wire::SyncRequest {
                    request: Some(Request::Heads(wire::SyncHeads {
                        logs: vec![SyncLog {
                            group_pk: vec![1; 32],
                            kind: 9,
                        }],
                    })),
                },
                "malformed log",
            ),
            (
                wire::SyncRequest {
                    request: Some(Request::Fetch(wire::SyncFetch {
                        log: Some(log_to_wire(&log())),
                        after: Some(SyncHead {
                            id: vec![1; 5],
                            lamport: 1,
                        }),
                        ..Default::default()
                    })),
                },
                "malformed `after`",
            ),
            (
                wire::SyncRequest {
                    request: Some(Request::Announce(wire::SyncAnnounce::default())),
                },
                "malformed log",
            ),
        ];
        for (request, why) in cases {
            assert_eq!(SyncRequest::try_from(request), Err(SyncParseError(why)));
        }
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let bad_nonce = wire::SyncResponse {
            response: Some(Response::Hello(wire::SyncHelloReply {
                nonce: vec![1; 3],
                tags: Vec::new(),
            })),
        };
        assert_eq!(
            SyncResponse::try_from(bad_nonce),
            Err(SyncParseError("bad hello nonce"))
        );
        let bad_head = wire::SyncResponse {
            response: Some(Response::Heads(wire::SyncHeadsReply {
                logs: vec![wire::SyncLogHeads {
                    log: Some(log_to_wire(&log())),
                    heads: vec![SyncHead {
                        id: vec![],
                        lamport: 0,
                    }],
                }],
            })),
        };
        assert_eq!(
            SyncResponse::try_from(bad_head),
            Err(SyncParseError("malformed head"))
        );
    }
}
