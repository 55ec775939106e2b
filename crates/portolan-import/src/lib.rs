//! Portolan import stage (under construction).
