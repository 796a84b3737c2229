//! The one diesel schema for both backends (matches `migrations/*/2026-11-28-000000_init`).

diesel::table! {
    access_keys (access_key_id) {
        access_key_id -> Text,
        account_id -> Text,
        user_name -> Nullable<Text>,
        secret_sealed -> Binary,
        master_key_id -> Integer,
        status -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    kms_keys (key_id) {
        key_id -> Text,
        account_id -> Text,
        region -> Text,
        arn -> Text,
        description -> Text,
        key_manager -> Text,
        key_state -> Text,
        created_at -> BigInt,
        deletion_date -> Nullable<BigInt>,
        rotation_enabled -> Bool,
        rotation_period_days -> Integer,
        next_rotation_at -> Nullable<BigInt>,
        current_term -> Integer,
        policy -> Nullable<Text>,
    }
}

diesel::table! {
    kms_key_material (key_id, term) {
        key_id -> Text,
        term -> Integer,
        sealed -> Binary,
        master_key_id -> Integer,
        created_at -> BigInt,
    }
}

diesel::table! {
    kms_aliases (account_id, region, alias_name) {
        account_id -> Text,
        region -> Text,
        alias_name -> Text,
        target_key_id -> Text,
        created_at -> BigInt,
        last_updated_at -> BigInt,
    }
}

diesel::table! {
    secrets (secret_id) {
        secret_id -> Text,
        account_id -> Text,
        region -> Text,
        name -> Text,
        arn -> Text,
        description -> Nullable<Text>,
        kms_key_id -> Nullable<Text>,
        created_at -> BigInt,
        last_changed_at -> BigInt,
        last_accessed_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
        purge_at -> Nullable<BigInt>,
        owning_service -> Nullable<Text>,
        primary_region -> Nullable<Text>,
        resource_policy -> Nullable<Text>,
        tag_list -> Bool,
        secret_type -> Nullable<Text>,
        external_rotation_metadata -> Nullable<Text>,
        external_rotation_role_arn -> Nullable<Text>,
        rotation_enabled -> Nullable<Bool>,
        rotation_lambda_arn -> Nullable<Text>,
        rotation_rules -> Nullable<Text>,
        last_rotated_at -> Nullable<BigInt>,
        next_rotation_at -> Nullable<BigInt>,
        cross_account_primary_arn -> Nullable<Text>,
        cross_account_status -> Nullable<Text>,
        cross_account_replica -> Bool,
    }
}

diesel::table! {
    secret_versions (secret_id, version_id) {
        secret_id -> Text,
        version_id -> Text,
        created_at -> BigInt,
        last_accessed_at -> Nullable<BigInt>,
        value_kind -> Nullable<Text>,
        ciphertext -> Nullable<Binary>,
        wrapped_dek -> Nullable<Binary>,
        kms_key_id -> Nullable<Text>,
        kms_term -> Nullable<Integer>,
    }
}

diesel::table! {
    secret_stages (secret_id, stage) {
        secret_id -> Text,
        stage -> Text,
        version_id -> Text,
    }
}

diesel::table! {
    secret_tags (secret_id, tag_key) {
        secret_id -> Text,
        tag_key -> Text,
        tag_value -> Text,
        position -> BigInt,
    }
}

diesel::table! {
    audit_events (chain_id, seq) {
        chain_id -> Text,
        seq -> BigInt,
        event_id -> Text,
        event_time -> BigInt,
        event_name -> Text,
        principal_arn -> Nullable<Text>,
        access_key_id -> Nullable<Text>,
        source_ip -> Nullable<Text>,
        resource_arn -> Nullable<Text>,
        error_code -> Nullable<Text>,
        decision -> Text,
        record -> Text,
        prev_hash -> Text,
        hash -> Text,
        account_id -> Nullable<Text>,
        event_source -> Nullable<Text>,
        read_only -> Nullable<Bool>,
        user_name -> Nullable<Text>,
        resource_type -> Nullable<Text>,
        resource_name -> Nullable<Text>,
    }
}

diesel::table! {
    /// A primary secret's replicas in other regions (`2026-12-06-000003_secret_replicas`).
    secret_replicas (primary_secret_id, region) {
        primary_secret_id -> Text,
        region -> Text,
        replica_secret_id -> Nullable<Text>,
        kms_key_id -> Text,
        status -> Text,
        status_message -> Nullable<Text>,
        created_at -> BigInt,
        peer -> Bool,
        cross_account -> Bool,
        replica_arn -> Nullable<Text>,
        replication_role_arn -> Nullable<Text>,
    }
}

diesel::table! {
    /// Changes of replicated primaries still to deliver to peer servers
    /// (`2026-12-06-000004_replication_outbox`).
    replication_outbox (seq) {
        seq -> BigInt,
        primary_secret_id -> Text,
        primary_arn -> Text,
        region -> Text,
        kind -> Text,
        force_overwrite -> Bool,
        replica_kms_key_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// The delivery state of each (secret, peer region) with changes in `replication_outbox`
    /// (`2026-12-07-000000_outbox_groups`).
    replication_outbox_groups (primary_secret_id, region) {
        primary_secret_id -> Text,
        region -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    /// On a peer: the last change applied per primary and replica region.
    replication_applied (primary_arn, region) {
        primary_arn -> Text,
        region -> Text,
        last_seq -> BigInt,
        applied_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    secret_replicas,
    secrets,
    secret_versions,
    secret_stages,
    secret_tags,
    kms_keys,
    kms_key_material,
    kms_aliases,
);

diesel::table! {
    audit_digests (chain_id, kind, seq_to) {
        chain_id -> Text,
        kind -> Text,
        seq_from -> BigInt,
        seq_to -> BigInt,
        last_hash -> Text,
        record_count -> BigInt,
        created_at -> BigInt,
        key_id -> Text,
        public_key -> Text,
        signature -> Text,
    }
}

diesel::table! {
    /// The deferred lookup index of audit_events (`sql/audit_lookup.sql`).
    audit_lookup (chain_id, seq) {
        chain_id -> Text,
        seq -> BigInt,
        event_time -> BigInt,
        event_name -> Text,
        principal_arn -> Nullable<Text>,
        access_key_id -> Nullable<Text>,
        source_ip -> Nullable<Text>,
        resource_arn -> Nullable<Text>,
        error_code -> Nullable<Text>,
        decision -> Text,
        account_id -> Nullable<Text>,
        event_source -> Nullable<Text>,
        read_only -> Nullable<Bool>,
        user_name -> Nullable<Text>,
        resource_type -> Nullable<Text>,
        resource_name -> Nullable<Text>,
    }
}

diesel::table! {
    /// Each lookup-index block's event time bounds (`sql/audit_lookup.sql`).
    audit_lookup_blocks (chain_id, blk) {
        chain_id -> Text,
        blk -> BigInt,
        min_time -> BigInt,
        max_time -> BigInt,
    }
}

diesel::table! {
    /// Which lookup-index blocks hold a record with a term (`sql/audit_lookup.sql`).
    audit_lookup_terms (term, chain_id, blk) {
        chain_id -> Text,
        term -> Text,
        blk -> BigInt,
    }
}

diesel::table! {
    /// How far each chain is in audit_lookup: every record with `seq <= indexed_through`.
    audit_index_state (chain_id) {
        chain_id -> Text,
        indexed_through -> BigInt,
        indexed_hash -> Text,
    }
}
