//! Portolan render stage (under construction).
