//go:build !linux

package sdnotify

// monotonicUsec: systemd runs on Linux only; elsewhere there is nobody to
// tell, and RELOADING=1 goes without a timestamp.
func monotonicUsec() (uint64, bool) { return 0, false }
