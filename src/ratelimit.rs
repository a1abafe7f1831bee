//! Rate limits and circuit breakers (being written).
