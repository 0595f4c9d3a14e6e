//! Process facts read from the OS: signals and `/proc/<pid>/stat` state. Used by the stack to
//! act and by the fault layer to verify, independently, that an action took effect.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Sends `sig` to `pid`; false if the process does not exist.
pub fn signal(pid: u32, sig: Signal) -> bool {
    signal::kill(Pid::from_raw(pid as i32), sig).is_ok()
}

/// The state letter of a process (`R`, `S`, `T` stopped, `Z` zombie, ...), or `None` if gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// True when the process is gone or a zombie (dead but not yet reaped).
pub fn is_dead(pid: u32) -> bool {
    matches!(state(pid), None | Some('Z') | Some('X'))
}

/// True when the process is stopped by a signal (SIGSTOP).
pub fn is_stopped(pid: u32) -> bool {
    matches!(state(pid), Some('T') | Some('t'))
}

/// Called at node start-up: die with the parent that started us (even if it is SIGKILLed).
pub fn die_with_parent() {
    let Ok(text) = std::env::var(crate::sim::stack::PARENT_ENV) else {
        return;
    };
    let Ok(parent) = text.parse::<i32>() else {
        return;
    };
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // The parent may have died before the call above: then nobody will signal us.
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_continue_are_visible_in_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!is_stopped(pid));
        assert!(signal(pid, Signal::SIGSTOP));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(is_stopped(pid));
        assert!(signal(pid, Signal::SIGCONT));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(is_dead(pid));
    }
}
