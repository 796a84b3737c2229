//! The KMS subset (`TrentService.*`): symmetric encryption keys, their aliases, their state
//! (enable, disable, scheduled deletion) and the rotation of their material.
//!
//! One file per AWS operation; `common` holds key lookups and state checks, `paging` the
//! `Limit`/`Marker` rules. Keys are never purged here: a key pending deletion stays in that
//! state until CancelKeyDeletion (a background purge is a separate job).

pub mod cancel_key_deletion;
pub mod common;
pub mod create_alias;
pub mod create_key;
pub mod delete_alias;
pub mod describe_key;
pub mod disable_key;
pub mod disable_key_rotation;
pub mod enable_key;
pub mod enable_key_rotation;
pub mod get_key_policy;
pub mod get_key_rotation_status;
pub mod list_aliases;
pub mod list_key_rotations;
pub mod list_keys;
pub mod paging;
pub mod put_key_policy;
pub mod rotate_key_on_demand;
pub mod schedule_key_deletion;

use crate::error::ApiError;
use crate::pipeline::ServiceCall;

/// Pick the KMS operation by name and run it.
pub async fn dispatch(name: &str, call: ServiceCall<'_, '_>) -> Result<Vec<u8>, ApiError> {
    match name {
        "CreateKey" => call.run::<create_key::CreateKey>().await,
        "DescribeKey" => call.run::<describe_key::DescribeKey>().await,
        "ListKeys" => call.run::<list_keys::ListKeys>().await,
        "CreateAlias" => call.run::<create_alias::CreateAlias>().await,
        "ListAliases" => call.run::<list_aliases::ListAliases>().await,
        "DeleteAlias" => call.run::<delete_alias::DeleteAlias>().await,
        "EnableKey" => call.run::<enable_key::EnableKey>().await,
        "DisableKey" => call.run::<disable_key::DisableKey>().await,
        "ScheduleKeyDeletion" => {
            call.run::<schedule_key_deletion::ScheduleKeyDeletion>()
                .await
        }
        "CancelKeyDeletion" => call.run::<cancel_key_deletion::CancelKeyDeletion>().await,
        "EnableKeyRotation" => call.run::<enable_key_rotation::EnableKeyRotation>().await,
        "DisableKeyRotation" => call.run::<disable_key_rotation::DisableKeyRotation>().await,
        "GetKeyRotationStatus" => {
            call.run::<get_key_rotation_status::GetKeyRotationStatus>()
                .await
        }
        "RotateKeyOnDemand" => call.run::<rotate_key_on_demand::RotateKeyOnDemand>().await,
        "ListKeyRotations" => call.run::<list_key_rotations::ListKeyRotations>().await,
        "GetKeyPolicy" => call.run::<get_key_policy::GetKeyPolicy>().await,
        "PutKeyPolicy" => call.run::<put_key_policy::PutKeyPolicy>().await,
        n if NOT_BUILT.contains(&n) => Err(crate::pipeline::not_built(n)),
        n => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to KMS.",
            n.chars().take(64).collect::<String>()
        ))),
    }
}

/// KMS operations that exist on AWS but are not built here.
const NOT_BUILT: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateGrant",
    "Decrypt",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyLastUsage",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListGrants",
    "ListKeyPolicies",
    "ListResourceTags",
    "ListRetirableGrants",
    "ReEncrypt",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];
