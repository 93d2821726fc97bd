//! [`plan_registrations`]: what storing one batch of registrations does, decided in memory
//! from what the batch's lookups read (pure). The SQL ([`super::sql`]) then writes the plan.

use std::collections::HashMap;

use super::{NewRegistration, RegisterOutcome, RegistrationCaps};

/// What one batch writes, decided before writing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RegisterPlan<'a> {
    /// One per registration given, in order.
    pub(crate) outcomes: Vec<RegisterOutcome>,
    /// Ids of stored registrations replaced by the batch.
    pub(crate) replaced: Vec<i64>,
    /// Registrations to insert, in batch order (a registration replaced later in the same
    /// batch is left out).
    pub(crate) inserts: Vec<&'a NewRegistration>,
    /// The registrations held by each peer that gets a new one, once the batch commits.
    pub(crate) peer_counts: HashMap<&'a [u8], u64>,
    /// Number of stored registrations once the batch commits.
    pub(crate) count: u64,
}

/// Decides what storing `batch` does, given the stored registrations with the batch's
/// (peer, namespace) keys (`(id, peer id, namespace)`), the number of registrations each of
/// the batch's peers holds (absent: none) and the number of stored registrations, none of
/// them expired.
pub(crate) fn plan_registrations<'a>(
    batch: &'a [NewRegistration],
    stored: &[(i64, Vec<u8>, String)],
    peer_counts: &HashMap<Vec<u8>, u64>,
    count: u64,
    caps: RegistrationCaps,
) -> RegisterPlan<'a> {
    let mut existing: HashMap<(&[u8], &str), i64> = stored
        .iter()
        .map(|(id, peer, namespace)| ((peer.as_slice(), namespace.as_str()), *id))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut replaced = Vec::new();
    let mut inserts: Vec<Option<&NewRegistration>> = Vec::with_capacity(batch.len());
    let mut planned: HashMap<(&[u8], &str), usize> = HashMap::new();
    let mut counts: HashMap<&'a [u8], u64> = HashMap::new();
    let mut count = count;
    for registration in batch {
        let peer = registration.peer_id.as_slice();
        let key = (peer, registration.namespace.as_str());
        let replacing = if let Some(earlier) = planned.get(&key) {
            inserts[*earlier] = None;
            true
        } else if let Some(id) = existing.remove(&key) {
            replaced.push(id);
            true
        } else {
            false
        };
        if !replacing {
            let held = counts
                .entry(peer)
                .or_insert_with(|| peer_counts.get(peer).copied().unwrap_or(0));
            if *held >= u64::from(caps.per_peer) {
                outcomes.push(RegisterOutcome::PeerLimit);
                continue;
            }
            if count >= caps.total {
                outcomes.push(RegisterOutcome::TotalLimit);
                continue;
            }
            *held += 1;
            count += 1;
        }
        planned.insert(key, inserts.len());
        inserts.push(Some(registration));
        outcomes.push(RegisterOutcome::Registered {
            replaced: replacing,
        });
    }
    let peer_counts = counts
        .into_iter()
        .filter(|(peer, held)| peer_counts.get(*peer).copied().unwrap_or(0) != *held)
        .collect();
    RegisterPlan {
        outcomes,
        replaced,
        inserts: inserts.into_iter().flatten().collect(),
        peer_counts,
        count,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: RegistrationCaps = RegistrationCaps {
        per_peer: 2,
        total: 4,
    };

    fn registration(peer: u8, namespace: &str, expires_at: u64) -> NewRegistration {
        NewRegistration {
            namespace: namespace.to_owned(),
            peer_id: vec![peer],
            record: vec![peer, expires_at as u8],
            expires_at,
        }
    }

    fn registered(replaced: bool) -> RegisterOutcome {
        RegisterOutcome::Registered { replaced }
    }

    #[test]
    fn plan_inserts_new_registrations_within_the_caps() {
        let batch = [
            registration(1, "a", 10),
            registration(1, "b", 10),
            registration(1, "c", 10),
            registration(2, "a", 10),
            registration(3, "a", 10),
            registration(4, "a", 10),
        ];
        let plan = plan_registrations(&batch, &[], &HashMap::new(), 0, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(false),
                registered(false),
                RegisterOutcome::PeerLimit,
                registered(false),
                registered(false),
                RegisterOutcome::TotalLimit,
            ]
        );
        assert_eq!(
            plan.inserts,
            vec![&batch[0], &batch[1], &batch[3], &batch[4]]
        );
        assert!(plan.replaced.is_empty());
        assert_eq!(plan.count, 4);
        assert_eq!(
            plan.peer_counts,
            HashMap::from([(&[1][..], 2), (&[2][..], 1), (&[3][..], 1)])
        );
    }

    #[test]
    fn plan_replaces_stored_and_earlier_registrations_without_counting_them_twice() {
        let stored = vec![(7, vec![1], "a".to_owned()), (8, vec![1], "b".to_owned())];
        let counts = HashMap::from([(vec![1], 2)]);
        let batch = [
            registration(1, "a", 20),
            registration(1, "a", 30),
            registration(1, "c", 30),
            registration(1, "b", 40),
        ];
        let plan = plan_registrations(&batch, &stored, &counts, 4, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                registered(true),
                RegisterOutcome::PeerLimit,
                registered(true),
            ]
        );
        assert_eq!(plan.replaced, vec![7, 8]);
        assert_eq!(plan.inserts, vec![&batch[1], &batch[3]]);
        assert_eq!(plan.count, 4, "refreshes keep the count");
        assert!(plan.peer_counts.is_empty(), "no count changed");
    }

    #[test]
    fn plan_uses_the_stored_count_of_a_peer() {
        // Peer 1 holds 3 registrations (more than the cap, which was lowered), none in "c".
        let counts = HashMap::from([(vec![1], 3), (vec![2], 1)]);
        let stored = vec![(3, vec![1], "c".to_owned())];
        let batch = [
            registration(1, "c", 50),
            registration(1, "d", 50),
            registration(2, "d", 50),
            registration(2, "e", 50),
        ];
        let plan = plan_registrations(&batch, &stored, &counts, 4, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                RegisterOutcome::PeerLimit,
                RegisterOutcome::TotalLimit,
                RegisterOutcome::TotalLimit,
            ]
        );
        let plan = plan_registrations(&batch, &stored, &counts, 1, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                RegisterOutcome::PeerLimit,
                registered(false),
                RegisterOutcome::PeerLimit,
            ]
        );
        assert_eq!(plan.peer_counts, HashMap::from([(&[2][..], 2)]));
        assert_eq!(plan.count, 2);
    }
}
