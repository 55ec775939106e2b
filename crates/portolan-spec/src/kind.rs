//! What kind of failure an error is, so that the binary can choose its exit
//! status from a typed value (docs/exit-codes.md) instead of from the text.

/// Whose the fault is: every library error says it with a `kind()` method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The user's input (a file, a name or a value given) is wrong: the
    /// answer is "no" (exit 1).
    Input,
    /// The machine cannot do the job: a privilege, a tool, a file that
    /// cannot be written (exit 2).
    Environment,
    /// A bug in Portolan (exit 2).
    Internal,
}
