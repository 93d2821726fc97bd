//! libp2p networking. One task owns the `Swarm` ([`swarm`]); everything else talks to it
//! through [`SwarmHandle`], a command channel with reply slots.

pub mod behaviour;
pub mod swarm;

pub use swarm::{spawn, P2pError, SwarmHandle, SwarmInfo};
