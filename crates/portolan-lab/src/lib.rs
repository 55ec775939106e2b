//! Portolan lab stage (under construction).
