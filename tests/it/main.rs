#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should fail the test loudly"
)]

//! The one integration test binary: real servers on 127.0.0.1:0, driven by the official
//! `aws-sdk-secretsmanager` crate, plus raw signed requests for what the SDK will not send.

mod common;

mod agent_exec;
mod api_ops;
mod api_parity;
mod attacker;
mod audit;
mod console;
mod console_directory;
mod console_e2e;
mod cross_account_replica;
mod hostile;
mod ident_review;
mod identity;
mod jwt_algs;
mod kms;
mod layout;
mod ops;
mod org;
mod pg_read_cache;
mod policies;
mod protocol;
mod read_cache;
mod replication;
mod replication_peer;
mod review;
mod review2_actions;
mod review2_agentkms;
mod review2_assembly;
mod review2_console;
mod review2_inject;
mod review2_integrity;
mod review2_leaks;
mod review2_respol;
mod review2_sigv4;
mod review2_simulate;
mod review2_xacct;
mod review3_exhaust;
mod review3_model;
mod review3_multi;
mod review3_rotation;
mod review3_time;
mod review3_tokens;
mod review_authn;
mod review_isolation;
mod review_misc;
mod review_ops;
mod review_policy;
mod review_races;
mod review_replication;
mod review_sts;
mod rotation;
mod rotation_mysql;
mod rotation_pg;
mod rotation_webhook;
mod sdk_secrets;
mod store_backends;
mod sts_bad_input;
mod unauthenticated_audit;
mod wire;
