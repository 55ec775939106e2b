//! Portolan probe stage (under construction).
