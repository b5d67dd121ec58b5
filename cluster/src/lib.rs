//! Framed point-to-point messaging between numbered servers.
