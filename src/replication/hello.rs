//! The link-key hello, as a pure state machine (no I/O, no actors): which groups two
//! replicas both hold, learnt without naming any group.
//!
//! 1. The **requester** sends a fresh nonce (`Hello`).
//! 2. The **responder** answers with a fresh nonce of its own and, for every group it holds,
//!    the tag `link_proof_tag(link_key, requester_nonce, responder_nonce, responder)`, in
//!    random order. It keeps the pair of nonces open, at most [`MAX_OPEN_HELLOS`] per peer.
//! 3. The requester finds the groups whose tags it can compute too (the responder holds
//!    them), and proves them back with its own tags (`Prove`, prover = the requester).
//! 4. The responder closes the open hello named by its nonce (once: a replayed proof finds
//!    nothing open) and accepts the groups whose tags match.
//!
//! Each side ends with the groups the other proved; the tag matching is written once
//! ([`matching_groups`]).

use std::collections::{HashMap, HashSet};

use crate::crypto::{link_proof_tag, LinkKey, LINK_NONCE_LEN};

/// Hellos of one peer answered and waiting for its proof, at most (a peer cannot make us keep
/// unbounded state).
pub const MAX_OPEN_HELLOS: usize = 8;

/// A nonce of the hello.
pub type Nonce = [u8; LINK_NONCE_LEN];

/// Why a hello step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The message breaks the protocol (the sender is penalised when it is the peer's reply).
    #[error("{0}")]
    Malformed(&'static str),
    /// A proof that answers no open hello of ours.
    #[error("{0}")]
    NotProven(&'static str),
    /// Too many hellos of this peer are open.
    #[error("too many hellos in progress")]
    Busy,
}

/// The groups (public key, link key) whose tag for these nonces and this prover is in `tags`.
pub fn matching_groups<'a>(
    groups: impl IntoIterator<Item = (&'a [u8; 32], &'a LinkKey)>,
    tags: &[Vec<u8>],
    requester_nonce: &Nonce,
    responder_nonce: &Nonce,
    prover: &[u8],
) -> Vec<[u8; 32]> {
    let tags: HashSet<&[u8]> = tags.iter().map(Vec::as_slice).collect();
    groups
        .into_iter()
        .filter(|(_, key)| {
            let tag = link_proof_tag(key, requester_nonce, responder_nonce, prover);
            tags.contains(tag.as_slice())
        })
        .map(|(pk, _)| *pk)
        .collect()
}

/// One tag per group for these nonces and this prover, in the order given.
fn tags_of<'a>(
    groups: impl IntoIterator<Item = &'a LinkKey>,
    requester_nonce: &Nonce,
    responder_nonce: &Nonce,
    prover: &[u8],
) -> Vec<Vec<u8>> {
    groups
        .into_iter()
        .map(|key| link_proof_tag(key, requester_nonce, responder_nonce, prover).to_vec())
        .collect()
}

/// The responder's side with one peer: the hellos it answered and not proven yet.
#[derive(Debug, Default)]
pub struct HelloResponder {
    /// Our nonce -> theirs.
    open: HashMap<Nonce, Nonce>,
}

/// The responder's reply to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The responder's nonce.
    pub nonce: Nonce,
    /// One tag per group the responder holds (shuffled by the caller).
    pub tags: Vec<Vec<u8>>,
}

/// The requester's proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The requester's nonce (from its hello).
    pub requester_nonce: Nonce,
    /// The responder's nonce (from its reply).
    pub responder_nonce: Nonce,
    /// One tag per group both hold, prover = the requester.
    pub tags: Vec<Vec<u8>>,
}

impl HelloResponder {
    /// Answers a hello with `nonce` (fresh, drawn by the caller) and the tags of every group,
    /// proving them as `local` (our peer id, as bytes).
    pub fn hello<'a>(
        &mut self,
        requester_nonce: Nonce,
        nonce: Nonce,
        groups: impl IntoIterator<Item = &'a LinkKey>,
        local: &[u8],
    ) -> Result<HelloReply, HelloError> {
        if self.open.len() >= MAX_OPEN_HELLOS {
            return Err(HelloError::Busy);
        }
        self.open.insert(nonce, requester_nonce);
        Ok(HelloReply {
            nonce,
            tags: tags_of(groups, &requester_nonce, &nonce, local),
        })
    }

    /// Checks the peer's proof (prover = `peer`, its peer id as bytes) against the open hello
    /// it names, which closes; returns the groups proven.
    pub fn prove<'a>(
        &mut self,
        proof: &Proof,
        groups: impl IntoIterator<Item = (&'a [u8; 32], &'a LinkKey)>,
        peer: &[u8],
        max_tags: usize,
    ) -> Result<Vec<[u8; 32]>, HelloError> {
        let Some(requester_nonce) = self.open.remove(&proof.responder_nonce) else {
            return Err(HelloError::NotProven(
                "no hello in progress with this nonce",
            ));
        };
        if proof.requester_nonce != requester_nonce {
            return Err(HelloError::NotProven("nonces do not match the hello"));
        }
        if proof.tags.len() > max_tags {
            return Err(HelloError::Malformed("too many tags"));
        }
        Ok(matching_groups(
            groups,
            &proof.tags,
            &requester_nonce,
            &proof.responder_nonce,
            peer,
        ))
    }

    /// Hellos answered and not proven yet.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

/// The requester's side of one hello.
#[derive(Debug, Clone)]
pub struct HelloRequester {
    nonce: Nonce,
}

impl HelloRequester {
    /// A hello with `nonce` (fresh, drawn by the caller).
    pub fn new(nonce: Nonce) -> Self {
        Self { nonce }
    }

    /// The nonce to send.
    pub fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// Takes the responder's reply (`responder`: its peer id as bytes): the groups it proved,
    /// and our proof of the same groups as `local`.
    pub fn on_reply<'a>(
        &self,
        reply: &HelloReply,
        groups: impl IntoIterator<Item = (&'a [u8; 32], &'a LinkKey)> + Clone,
        responder: &[u8],
        local: &[u8],
        max_tags: usize,
    ) -> Result<(Vec<[u8; 32]>, Proof), HelloError> {
        if reply.tags.len() > max_tags {
            return Err(HelloError::Malformed("too many tags"));
        }
        let shared = matching_groups(
            groups.clone(),
            &reply.tags,
            &self.nonce,
            &reply.nonce,
            responder,
        );
        let keys: HashMap<&[u8; 32], &LinkKey> = groups.into_iter().collect();
        let tags = tags_of(
            shared.iter().filter_map(|pk| keys.get(pk).copied()),
            &self.nonce,
            &reply.nonce,
            local,
        );
        Ok((
            shared,
            Proof {
                requester_nonce: self.nonce,
                responder_nonce: reply.nonce,
                tags,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> LinkKey {
        LinkKey::from_bytes([n; 32])
    }

    struct Side {
        id: Vec<u8>,
        groups: Vec<([u8; 32], LinkKey)>,
    }

    impl Side {
        fn new(id: u8, groups: &[u8]) -> Self {
            Self {
                id: vec![id; 38],
                groups: groups.iter().map(|g| ([*g; 32], key(*g))).collect(),
            }
        }
        fn pairs(&self) -> impl Iterator<Item = (&[u8; 32], &LinkKey)> + Clone {
            self.groups.iter().map(|(pk, k)| (pk, k))
        }
        fn keys(&self) -> impl Iterator<Item = &LinkKey> {
            self.groups.iter().map(|(_, k)| k)
        }
    }

    /// A full hello between `a` (requester) and `b` (responder).
    fn run(a: &Side, b: &Side) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
        let mut responder = HelloResponder::default();
        let requester = HelloRequester::new([1; 32]);
        let reply = responder
            .hello(requester.nonce(), [2; 32], b.keys(), &b.id)
            .unwrap();
        let (a_learnt, proof) = requester
            .on_reply(&reply, a.pairs(), &b.id, &a.id, 100)
            .unwrap();
        let b_learnt = responder.prove(&proof, b.pairs(), &a.id, 100).unwrap();
        (a_learnt, b_learnt)
    }

    #[test]
    fn both_roles_learn_exactly_the_shared_groups() {
        let a = Side::new(10, &[1, 2, 3]);
        let b = Side::new(20, &[2, 3, 4]);
        let (mut a_learnt, mut b_learnt) = run(&a, &b);
        a_learnt.sort();
        b_learnt.sort();
        assert_eq!(a_learnt, vec![[2; 32], [3; 32]]);
        assert_eq!(b_learnt, a_learnt);
    }

    #[test]
    fn nothing_shared_proves_nothing() {
        let (a_learnt, b_learnt) = run(&Side::new(10, &[1]), &Side::new(20, &[2]));
        assert!(a_learnt.is_empty() && b_learnt.is_empty());
    }

    #[test]
    fn tags_bound_to_another_prover_are_refused() {
        let a = Side::new(10, &[1]);
        let b = Side::new(20, &[1]);
        let mut responder = HelloResponder::default();
        let requester = HelloRequester::new([1; 32]);
        let reply = responder
            .hello(requester.nonce(), [2; 32], b.keys(), &b.id)
            .unwrap();
        // The requester believes the reply came from someone else: the tags do not match.
        let (shared, _) = requester
            .on_reply(&reply, a.pairs(), &[99; 38], &a.id, 100)
            .unwrap();
        assert!(shared.is_empty());
        // A proof made for another prover (a relayed proof) proves nothing.
        let (_, proof) = requester
            .on_reply(&reply, a.pairs(), &b.id, &a.id, 100)
            .unwrap();
        let proven = responder.prove(&proof, b.pairs(), &[77; 38], 100).unwrap();
        assert!(proven.is_empty());
    }

    #[test]
    fn wrong_tags_prove_nothing() {
        let b = Side::new(20, &[1, 2]);
        let mut responder = HelloResponder::default();
        let reply = responder.hello([1; 32], [2; 32], b.keys(), &b.id).unwrap();
        let proof = Proof {
            requester_nonce: [1; 32],
            responder_nonce: reply.nonce,
            tags: vec![vec![0; 32], reply.tags[0].clone()],
        };
        // The responder's own tags (prover = responder) do not prove anything for the peer.
        assert!(responder
            .prove(&proof, b.pairs(), &[10; 38], 100)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_replayed_proof_finds_no_open_hello() {
        let a = Side::new(10, &[1]);
        let b = Side::new(20, &[1]);
        let mut responder = HelloResponder::default();
        let requester = HelloRequester::new([1; 32]);
        let reply = responder
            .hello(requester.nonce(), [2; 32], b.keys(), &b.id)
            .unwrap();
        let (_, proof) = requester
            .on_reply(&reply, a.pairs(), &b.id, &a.id, 100)
            .unwrap();
        assert_eq!(
            responder.prove(&proof, b.pairs(), &a.id, 100).unwrap(),
            vec![[1; 32]]
        );
        assert_eq!(
            responder.prove(&proof, b.pairs(), &a.id, 100),
            Err(HelloError::NotProven(
                "no hello in progress with this nonce"
            ))
        );
    }

    #[test]
    fn a_proof_with_another_requester_nonce_is_refused_and_closes_the_hello() {
        let b = Side::new(20, &[1]);
        let mut responder = HelloResponder::default();
        let reply = responder.hello([1; 32], [2; 32], b.keys(), &b.id).unwrap();
        let proof = Proof {
            requester_nonce: [9; 32],
            responder_nonce: reply.nonce,
            tags: Vec::new(),
        };
        assert_eq!(
            responder.prove(&proof, b.pairs(), &[10; 38], 100),
            Err(HelloError::NotProven("nonces do not match the hello"))
        );
        assert_eq!(responder.open(), 0);
    }

    #[test]
    fn open_hellos_are_capped() {
        let b = Side::new(20, &[1]);
        let mut responder = HelloResponder::default();
        for n in 0..MAX_OPEN_HELLOS {
            responder
                .hello([1; 32], [n as u8; 32], b.keys(), &b.id)
                .unwrap();
        }
        assert_eq!(
            responder.hello([1; 32], [200; 32], b.keys(), &b.id),
            Err(HelloError::Busy)
        );
        // A proof closes one: there is room again.
        let proof = Proof {
            requester_nonce: [1; 32],
            responder_nonce: [0; 32],
            tags: Vec::new(),
        };
        responder.prove(&proof, b.pairs(), &[10; 38], 100).unwrap();
        assert!(responder.hello([1; 32], [201; 32], b.keys(), &b.id).is_ok());
    }

    #[test]
    fn too_many_tags_are_refused_on_both_sides() {
        let a = Side::new(10, &[1]);
        let b = Side::new(20, &[1, 2, 3]);
        let mut responder = HelloResponder::default();
        let requester = HelloRequester::new([1; 32]);
        let reply = responder
            .hello(requester.nonce(), [2; 32], b.keys(), &b.id)
            .unwrap();
        assert_eq!(
            requester
                .on_reply(&reply, a.pairs(), &b.id, &a.id, 2)
                .map(|_| ()),
            Err(HelloError::Malformed("too many tags"))
        );
        let proof = Proof {
            requester_nonce: [1; 32],
            responder_nonce: reply.nonce,
            tags: vec![vec![0; 32]; 3],
        };
        assert_eq!(
            responder.prove(&proof, b.pairs(), &a.id, 2),
            Err(HelloError::Malformed("too many tags"))
        );
    }
}
