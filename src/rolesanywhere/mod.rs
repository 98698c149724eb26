//! IAM Roles Anywhere `CreateSession`: the canonical request ([`canonical`]), the signed
//! request ([`sign`]) and the HTTP client ([`session`]).

pub mod canonical;
pub mod session;
pub mod sign;
