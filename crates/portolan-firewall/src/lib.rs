//! Portolan firewall stage (under construction).
