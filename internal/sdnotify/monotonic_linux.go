package sdnotify

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC from <time.h>, the clock systemd's
// MONOTONIC_USEC is read on.
const clockMonotonic = 1

// monotonicUsec reads CLOCK_MONOTONIC in microseconds. Go's time package
// keeps a monotonic reading but does not expose its absolute value, and
// the syscall package has no wrapper, hence the raw call.
func monotonicUsec() (uint64, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3, true
}
