//go:build race

package main

// raceEnabled: the test binary runs under -race, so the binary under test
// is built with it too and the process-level tests look for races in it.
const raceEnabled = true
