//! Strongroom: a self-hosted secrets manager speaking the AWS Secrets Manager API.
//!
//! The request pipeline (see `pipeline`): protocol → auth → policy → ops → store, with the
//! audit record written before the response leaves.

pub mod audit;
pub mod auth;
pub mod authn;
pub mod authz;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod crypto;
pub mod error;
pub mod identity;
pub mod kms;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod policy;
pub mod protocol;
pub mod queue;
pub mod quota;
pub mod replication;
pub mod rotation;
pub mod secrets;
pub mod server;
pub mod store;
