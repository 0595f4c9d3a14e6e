//! Where the system under test is: the local stack, or a cluster described by a target file.
