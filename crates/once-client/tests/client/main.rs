//! The 1NCE client's integration tests, one binary: the provider's documented answers
//! (fixtures), HTTP behaviour against a scripted server (support), and the project's simulator.

mod support;

mod against_simulator;
mod fixtures;
mod http_behaviour;
