//! The projectors' integration tests, one binary: the projector and the relay against the real
//! Postgres, NATS and Redis, in process and as child processes of the real `projectors` binary
//! (the fault tests), each test on its own database, stream, subject prefix and Redis prefix.

mod common;

mod end_to_end;
mod faults_failover;
mod faults_kill;
mod faults_nats;
mod faults_pipeline;
mod faults_read_your_writes;
mod faults_redis;
mod projection;
mod rebuild;
