//go:build unix

package fhirpath

import (
	"syscall"
	"time"
)

// processCPUTime returns the user plus system CPU time of the process, so
// benchmarks can report CPU cost that does not depend on machine load.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
