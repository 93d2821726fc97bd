//! Stored events to `berty.protocol` replies.

use crate::{
    error::Error,
    group::{view::SettingScope, ViewBody, ViewEvent},
    proto::berty_protocol as pb,
    storage::StoredEvent,
};

fn event_base(event: &StoredEvent) -> pb::EventBase {
    pb::EventBase {
        id: event.entry_id.as_bytes().to_vec(),
        parent_ids: event
            .parents
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
    }
}

fn group_store_event(
    group_pk: &[u8; 32],
    event: &StoredEvent,
    view: &ViewEvent,
    account_pk: Vec<u8>,
) -> pb::GroupStoreEvent {
    pb::GroupStoreEvent {
        event_base: Some(event_base(event)),
        group_pub_key: group_pk.to_vec(),
        group_member_pub_key: view.member_pk.to_vec(),
        group_device_pub_key: view.device_pk.to_vec(),
        account_pub_key: account_pk,
        cursor: event.cursor,
    }
}

/// A message event, or `None` for any other kind.
pub fn message(
    group_pk: &[u8; 32],
    event: &StoredEvent,
) -> Result<Option<pb::group_message_subscribe::Reply>, Error> {
    let view = ViewEvent::decode(&event.body)?;
    let payload = match &view.body {
        ViewBody::Message { payload } => payload,
        ViewBody::KeyedMessage(_) => {
            return Err(Error::Internal(format!(
                "stored message {} was not opened",
                event.entry_id
            )))
        }
        _ => return Ok(None),
    };
    Ok(Some(pb::group_message_subscribe::Reply {
        event: Some(pb::GroupMessageStoreEvent {
            group_store_event: Some(group_store_event(group_pk, event, &view, Vec::new())),
            payload: payload.clone(),
        }),
    }))
}

/// A member event, or `None` for any other kind.
pub fn member(
    group_pk: &[u8; 32],
    event: &StoredEvent,
) -> Result<Option<pb::group_member_subscribe::Reply>, Error> {
    let view = ViewEvent::decode(&event.body)?;
    let ViewBody::Member { account_pk, meta } = &view.body else {
        return Ok(None);
    };
    Ok(Some(pb::group_member_subscribe::Reply {
        event: Some(pb::GroupMemberStoreEvent {
            group_store_event: Some(group_store_event(
                group_pk,
                event,
                &view,
                account_pk.clone(),
            )),
            meta: meta.clone(),
        }),
    }))
}

/// A setting event, or `None` for any other kind.
pub fn setting(
    group_pk: &[u8; 32],
    event: &StoredEvent,
) -> Result<Option<pb::group_setting_store_subscribe::Reply>, Error> {
    let view = ViewEvent::decode(&event.body)?;
    let ViewBody::Setting { scope, key, value } = &view.body else {
        return Ok(None);
    };
    let setting_type = match scope {
        SettingScope::Group => pb::GroupSettingStoreSettingType::Group,
        SettingScope::Member => pb::GroupSettingStoreSettingType::Member,
    };
    Ok(Some(pb::group_setting_store_subscribe::Reply {
        event: Some(pb::GroupSettingStoreEvent {
            group_store_event: Some(group_store_event(group_pk, event, &view, Vec::new())),
            setting_type: setting_type as i32,
            key: key.clone(),
            value: value.clone(),
        }),
    }))
}

/// An account event, or `None` for any other kind.
pub fn account(event: &StoredEvent) -> Result<Option<pb::account_subscribe::Reply>, Error> {
    let view = ViewEvent::decode(&event.body)?;
    let ViewBody::Account {
        event_type,
        subject,
        data,
    } = &view.body
    else {
        return Ok(None);
    };
    Ok(Some(pb::account_subscribe::Reply {
        event: Some(pb::AccountStoreEvent {
            subject_public_key_bytes: subject.clone(),
            data: data.clone(),
            event_base: Some(event_base(event)),
            event_type: *event_type,
            cursor: event.cursor,
        }),
    }))
}
