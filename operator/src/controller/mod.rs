//! The controller: kube-runtime glue around the pure render and certificate plan.

pub mod leader;
