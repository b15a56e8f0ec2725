pub mod balancer;
