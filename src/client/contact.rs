//! `client contact ...`: this account's contact reference, requests, and contacts.

use clap::Subcommand;

use super::{
    connection::Connector,
    encoding::{encode, parse_key, parse_reference, Binary},
    output,
    payload::MetaArgs,
    print_bytes,
};
use crate::proto::berty_protocol::{
    contact_block, contact_remove, contact_request_accept, contact_request_disable,
    contact_request_enable, contact_request_enqueue, contact_request_reference,
    contact_request_reset_link, contact_unblock,
};

/// Contact calls. CONTACT is the contact's account public key (base64url, base64 or hex).
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Print this account's contact request reference, to give to people who may add you; an
    /// empty line while requests are disabled (ContactRequestReference).
    Reference,
    /// Draw a new reference so old ones stop reaching you; prints it
    /// (ContactRequestResetReference).
    ResetReference,
    /// Accept incoming contact requests (ContactRequestEnable).
    Enable,
    /// Stop accepting incoming contact requests (ContactRequestDisable).
    Disable,
    /// Ask another account to become a contact; delivered whenever it is reachable
    /// (ContactRequestEnqueue).
    Enqueue {
        /// The other account's reference (from its `contact reference`).
        #[arg(value_name = "REFERENCE", value_parser = parse_reference)]
        reference: Binary,
        /// What the other side sees with the request (for example your name).
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Accept a received contact request (ContactRequestAccept).
    Accept {
        /// The requester's account public key (`subject_public_key_bytes` of its
        /// ContactRequested account event).
        #[arg(value_name = "CONTACT", value_parser = parse_key)]
        contact: Binary,
    },
    /// Remove a contact: leave the contact's group (ContactRemove).
    Remove {
        /// The contact's account public key.
        #[arg(value_name = "CONTACT", value_parser = parse_key)]
        contact: Binary,
    },
    /// Block a contact: drop its requests and messages (ContactBlock).
    Block {
        /// The contact's account public key.
        #[arg(value_name = "CONTACT", value_parser = parse_key)]
        contact: Binary,
    },
    /// Unblock a contact (ContactUnblock).
    Unblock {
        /// The contact's account public key.
        #[arg(value_name = "CONTACT", value_parser = parse_key)]
        contact: Binary,
    },
}

/// Runs one `contact` command against the node.
pub async fn run(command: ContactCommand, connector: &Connector) -> anyhow::Result<()> {
    let mut client = connector.connect().await?;
    match command {
        ContactCommand::Reference => {
            let reply = client
                .contact_request_reference(contact_request_reference::Request {})
                .await?
                .into_inner();
            if reply.reference.is_empty() {
                output::print_stderr(
                    "note: contact requests are disabled (no reference); \
                     `client contact enable` turns them on",
                );
            }
            output::print_line(&encode(&reply.reference))?;
            Ok(())
        }
        ContactCommand::ResetReference => {
            let reply = client
                .contact_request_reset_reference(contact_request_reset_link::Request {})
                .await?
                .into_inner();
            print_bytes(&reply.reference, "reference")
        }
        ContactCommand::Enable => {
            client
                .contact_request_enable(contact_request_enable::Request {})
                .await?;
            Ok(())
        }
        ContactCommand::Disable => {
            client
                .contact_request_disable(contact_request_disable::Request {})
                .await?;
            Ok(())
        }
        ContactCommand::Enqueue { reference, meta } => {
            client
                .contact_request_enqueue(contact_request_enqueue::Request {
                    reference: reference.0,
                    meta: meta.bytes(),
                })
                .await?;
            Ok(())
        }
        ContactCommand::Accept { contact } => {
            client
                .contact_request_accept(contact_request_accept::Request {
                    contact_pub_key: contact.0,
                })
                .await?;
            Ok(())
        }
        ContactCommand::Remove { contact } => {
            client
                .contact_remove(contact_remove::Request {
                    contact_pub_key: contact.0,
                })
                .await?;
            Ok(())
        }
        ContactCommand::Block { contact } => {
            client
                .contact_block(contact_block::Request {
                    contact_pub_key: contact.0,
                })
                .await?;
            Ok(())
        }
        ContactCommand::Unblock { contact } => {
            client
                .contact_unblock(contact_unblock::Request {
                    contact_pub_key: contact.0,
                })
                .await?;
            Ok(())
        }
    }
}
