//! protocol_decode: the AWS JSON 1.1 request decoding never panics and stays consistent.
//!
//! Input: `X-Amz-Target value \n body`. Properties:
//! - `decode_target` never panics; `Ok((service, op))` only for `<prefix>.<op>` with an
//!   alphanumeric op of 1..=64 characters, the service decided by the prefix alone; every
//!   error is `UnknownOperationException` with a bounded message.
//! - `parse_body::<Value>` agrees with `serde_json` (differential): an all-whitespace body is
//!   `{}`; otherwise it succeeds exactly when the body is UTF-8, serde_json accepts it and it
//!   nests at most 32 levels, and holds no NUL character outside a top-level `SecretString`
//!   (refused as `ValidationException`), and then yields the same value. Other errors are
//!   `SerializationException`; none quotes a value (no `"` or `` ` `` in the message).
//! - every operation's `Input` type: parse, then `validate`, `target`, `context_keys` and
//!   `extra_actions`, never panic; a parse error never quotes a value either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use strongroom::ops::kms_ops::{
    cancel_key_deletion::CancelKeyDeletion, create_alias::CreateAlias, create_key::CreateKey,
    delete_alias::DeleteAlias, describe_key::DescribeKey, disable_key::DisableKey,
    disable_key_rotation::DisableKeyRotation, enable_key::EnableKey,
    enable_key_rotation::EnableKeyRotation, get_key_rotation_status::GetKeyRotationStatus,
    list_aliases::ListAliases, list_key_rotations::ListKeyRotations, list_keys::ListKeys,
    rotate_key_on_demand::RotateKeyOnDemand, schedule_key_deletion::ScheduleKeyDeletion,
};
use strongroom::ops::{
    batch_get_secret_value::BatchGetSecretValue, create_secret::CreateSecret,
    delete_secret::DeleteSecret, describe_secret::DescribeSecret,
    get_random_password::GetRandomPassword, get_secret_value::GetSecretValue,
    list_secret_version_ids::ListSecretVersionIds, list_secrets::ListSecrets,
    put_secret_value::PutSecretValue, restore_secret::RestoreSecret, tag_resource::TagResource,
    untag_resource::UntagResource, update_secret::UpdateSecret,
    update_secret_version_stage::UpdateSecretVersionStage, Operation,
};
use strongroom::protocol::{decode_target, parse_body};

fn check_target(t: &str) {
    match decode_target(Some(t)) {
        Ok((service, op)) => {
            assert!(!op.is_empty() && op.len() <= 64, "op length {}", op.len());
            assert!(op.chars().all(|c| c.is_ascii_alphanumeric()), "op {op:?}");
            // `<prefix>.<op>` exactly, and the prefix alone decides the service.
            let (prefix, last) = t.rsplit_once('.').expect("accepted targets have a dot");
            assert_eq!(last, op);
            let other = decode_target(Some(&format!("{prefix}.SomeOtherOperation")));
            assert_eq!(
                other.map(|(s, _)| s).ok(),
                Some(service),
                "service depends on the op"
            );
            assert!(!service.signing_name().is_empty());
        }
        Err(e) => {
            assert_eq!(e.code(), "UnknownOperationException");
            // At most 128 characters of the target are echoed.
            assert!(e.message().chars().count() <= 128 + 64, "{}", e.message());
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A NUL character in a string or a member name, but in a top-level `SecretString`'s value.
fn nul_outside_secret_string(v: &Value, top: bool) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(|i| nul_outside_secret_string(i, false)),
        Value::Object(o) => o.iter().any(|(k, v)| {
            k.contains('\0')
                || (!(top && k == "SecretString") && nul_outside_secret_string(v, false))
        }),
        _ => false,
    }
}

fn check_value_body(body: &[u8]) {
    let ours = parse_body::<Value>(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(ours.expect("empty body is {}"), serde_json::json!({}));
        return;
    }
    let utf8 = std::str::from_utf8(body).is_ok();
    let reference = serde_json::from_slice::<Value>(body);
    match (&ours, &reference) {
        (Ok(a), Ok(b)) => {
            assert!(utf8);
            assert_eq!(a, b);
            assert!(depth(b) <= 32, "accepted depth {}", depth(b));
            assert!(
                !nul_outside_secret_string(b, true),
                "a NUL outside a SecretString was accepted"
            );
        }
        (Ok(_), Err(e)) => panic!("parse_body accepted what serde_json rejects: {e}"),
        (Err(e), Ok(b)) if e.code() == "ValidationException" => {
            assert!(
                nul_outside_secret_string(b, true),
                "parse_body refused JSON without a NUL: {}",
                e.message()
            );
        }
        (Err(e), Ok(b)) => {
            assert_eq!(e.code(), "SerializationException");
            assert!(
                !utf8 || depth(b) > 32,
                "parse_body rejected valid JSON of depth {}: {}",
                depth(b),
                e.message()
            );
        }
        (Err(e), Err(_)) => assert_eq!(e.code(), "SerializationException"),
    }
    if let Err(e) = &ours {
        assert!(
            !e.message().contains(['"', '`']),
            "error quotes a value: {}",
            e.message()
        );
    }
}

fn check_op<O: Operation>(body: &[u8]) {
    match parse_body::<O::Input>(body) {
        Ok(input) => {
            let _ = O::validate(&input);
            let _ = O::target(&input);
            let _ = O::context_keys(&input);
            let _ = O::extra_actions(&input);
        }
        Err(e) => {
            // A NUL outside a SecretString is refused as a validation error (see above).
            let nul = e.code() == "ValidationException"
                && serde_json::from_slice::<Value>(body)
                    .is_ok_and(|v| nul_outside_secret_string(&v, true));
            if !nul {
                assert_eq!(e.code(), "SerializationException", "{}", O::NAME);
            }
            assert!(
                !e.message().contains(['"', '`']),
                "{}: error quotes a value: {}",
                O::NAME,
                e.message()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (target, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    assert!(decode_target(None).is_err());
    check_target(&String::from_utf8_lossy(target));

    check_value_body(body);

    check_op::<BatchGetSecretValue>(body);
    check_op::<CreateSecret>(body);
    check_op::<DeleteSecret>(body);
    check_op::<DescribeSecret>(body);
    check_op::<GetRandomPassword>(body);
    check_op::<GetSecretValue>(body);
    check_op::<ListSecretVersionIds>(body);
    check_op::<ListSecrets>(body);
    check_op::<PutSecretValue>(body);
    check_op::<RestoreSecret>(body);
    check_op::<TagResource>(body);
    check_op::<UntagResource>(body);
    check_op::<UpdateSecret>(body);
    check_op::<UpdateSecretVersionStage>(body);
    check_op::<CancelKeyDeletion>(body);
    check_op::<CreateAlias>(body);
    check_op::<CreateKey>(body);
    check_op::<DeleteAlias>(body);
    check_op::<DescribeKey>(body);
    check_op::<DisableKey>(body);
    check_op::<DisableKeyRotation>(body);
    check_op::<EnableKey>(body);
    check_op::<EnableKeyRotation>(body);
    check_op::<GetKeyRotationStatus>(body);
    check_op::<ListAliases>(body);
    check_op::<ListKeyRotations>(body);
    check_op::<ListKeys>(body);
    check_op::<RotateKeyOnDemand>(body);
    check_op::<ScheduleKeyDeletion>(body);
});
