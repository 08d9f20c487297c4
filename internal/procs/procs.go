// Package procs sizes the Go scheduler for this project's programs, whose
// goroutines spend much of their time in blocking file system calls.
//
// A goroutine in a blocking system call keeps its P (its right to run Go
// code) until the runtime's monitor notices and hands the P to another
// thread, which it checks every 20 µs to 10 ms. A flist pack makes tens of
// thousands of such calls (open and read per file; create, write and
// rename per blob), and with as many Ps as CPUs each call could leave a
// core idle: on 2 cores a pack kept them 80–90% busy; with twice as many
// Ps, 94–98% (README, "Flist packing").
package procs

import (
	"os"
	"runtime"
)

// cpus is the runtime's own choice, read before ForBlockingIO changes it.
var cpus = runtime.GOMAXPROCS(0)

// ForBlockingIO gives the scheduler two Ps per CPU, unless the GOMAXPROCS
// environment variable chose the number. Call it once, at program start.
func ForBlockingIO() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(2 * cpus)
}

// CPUs is the number of CPUs the program may use (the runtime's default
// GOMAXPROCS, or the environment's): what throughput is measured against,
// whatever ForBlockingIO did.
func CPUs() int { return cpus }
