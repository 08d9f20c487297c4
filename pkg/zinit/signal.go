package zinit

import "strings"

// signalNames lists the names nix::Signal::from_str accepts on Linux x86_64,
// which is what zinit calls on the uppercased `signal.stop` value.
func signalNames() []string {
	return []string{
		"SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
		"SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
		"SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
		"SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM",
		"SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
	}
}

// ValidSignal reports whether zinit accepts name as `signal.stop`: it must be
// a signal name with its SIG prefix, in any letter case (SIGTERM, sigkill).
func ValidSignal(name string) bool {
	up := strings.ToUpper(name)
	for _, s := range signalNames() {
		if s == up {
			return true
		}
	}
	return false
}
